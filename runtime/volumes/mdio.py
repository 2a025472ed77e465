"""MDIO surveys (TGS ``multidimio``, v1 layout): a Zarr v3 group read and written through :mod:`impeccable.runtime.volumes.zarr`.

An MDIO store holds the volume as ``amplitude`` ``(inline, crossline, time)`` beside its coordinates,
``trace_mask`` (the cells that hold a trace: irregular surveys), ``headers`` (every trace header) and the
SEG-Y file headers. The reader takes ``amplitude`` (or ``--dataset``) and the trace mask as its live traces:
absent cells stay out of the statistics and the amplitude fit, are filled for the model as a SEG-Y
survey's are, and are written as zeros. The output is a copy of the input store with a new ``amplitude``
(section-aligned chunks; MDIO's default 128^3 chunks cut the sections) and without the input's stored
statistics (``statsV1``: they described the noisy volume), so ``mdio.mdio_to_segy`` exports it with the
input's headers. No ``multidimio`` import is needed here: the layout is plain Zarr.

Known difference from the SEG-Y reader: a present trace whose samples are all zero is live here (MDIO keeps
no dead-trace flag of its own); the SEG-Y reader treats it as dead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impeccable.runtime.volumes.zarr import ZarrReader, ZarrSink, ZarrWriter  # noqa: F401 (its sink is Zarr's)

#: The volume variable of an MDIO v1 store.
VOLUME = "amplitude"
#: The variable marking the grid cells that hold a trace.
TRACE_MASK = "trace_mask"


class MdioReader(ZarrReader):
    """An MDIO store's volume in ``(inline, crossline, sample)`` order, with its trace mask as live traces.

    Args:
        path: The ``.mdio`` store.
        time_axis: As :class:`ZarrReader` (MDIO names its time dimension, so ``auto`` finds it).
        dataset: The volume variable [default: ``amplitude``].
    """

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None):
        super().__init__(path, time_axis=time_axis, dataset=dataset or VOLUME)
        self._live = None
        import zarr

        group = zarr.open_group(store=str(self.path), mode="r")
        if TRACE_MASK in group.array_keys():
            mask = np.asarray(group[TRACE_MASK][:], dtype=bool)
            if mask.shape == self.shape[:2] and not mask.all():
                self._live = mask

    @property
    def live_mask(self) -> np.ndarray | None:
        """``(inline, crossline)`` bool of the cells holding a trace, None when every cell does."""
        return self._live


class MdioWriter(ZarrWriter):
    """An MDIO output: the input store copied with the denoised volume (see the module's docstring)."""
