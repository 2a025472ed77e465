"""impeccable: denoise 3-D seismic volumes (DESIGN §1).

The stages are subpackages (``impeccable.core``, ``impeccable.runtime``, ...), each mapped from its top-level
folder by setup.py. This package itself only offers the notebook entry point, :func:`denoise`, imported on
first use so that ``import impeccable`` stays light (no numpy, no engine).
"""

from __future__ import annotations

__all__ = ["denoise"]


def denoise(volume, model=None, engine=None, time_axis="auto", **options):
    """Denoise a numpy, xarray or dask volume: see :func:`impeccable.runtime.api.denoise`."""
    from impeccable.runtime.api import denoise as _denoise

    return _denoise(volume, model=model, engine=engine, time_axis=time_axis, **options)
