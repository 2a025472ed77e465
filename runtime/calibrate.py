"""The block math of the last two passes (DESIGN §3): the amplitude fit's sums, the output in its scale.

After every section was predicted (unit-scale predictions), the fit pass takes per block of inlines the
per-inline sums of the least-squares amplitude fit (:mod:`impeccable.core.calibration`) and, for the ``uint8``
scale, the final field's min/max (:func:`block_sums`); the output pass scales each block (:func:`output_block`:
``input``, the fitted prediction in the input's units blended with the input by ``strength``; ``unit``;
``uint8``). The passes themselves, per slab and reduced, are in :mod:`impeccable.runtime.passes`.
"""

from __future__ import annotations

import numpy as np

from impeccable.core.amplitude import MINMAX, Scaling, VolumeStats, to_uint8
from impeccable.core.calibration import AmplitudeFit, inline_sums
from impeccable.runtime.volumes import live_mask


def live_rows(reader, start: int, stop: int) -> np.ndarray | None:
    """The reader's live-trace mask for inlines ``start:stop`` (``(inline, crossline)`` bool), if it has one."""
    live = live_mask(reader)
    return None if live is None else np.asarray(live[start:stop], dtype=bool)


def unit_field(inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats, strength: float,
               scaling: Scaling = MINMAX) -> np.ndarray:
    """The ``unit``-scale output: the prediction blended with the input in the model's units by ``strength``."""
    if strength == 1.0:
        return unit
    x = scaling.normalize(inputs, stats)
    return (x - np.float32(strength) * (x - unit)).astype(np.float32)


def block_sums(inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats, strength: float,
               live: np.ndarray | None, scaling: Scaling = MINMAX) -> tuple[np.ndarray, float, float]:
    """One block's share of pass 1: per-inline fit sums, and the min/max of its ``unit``-scale output field."""
    field = unit_field(inputs, unit, stats, strength, scaling)
    if live is not None:  # the range of the traces that will be written
        field = field[live]
    if not field.size:
        return inline_sums(inputs, unit, stats, live), np.inf, -np.inf
    return inline_sums(inputs, unit, stats, live), float(field.min()), float(field.max())


def output_block(inputs: np.ndarray, unit: np.ndarray, fit: AmplitudeFit, stats: VolumeStats, scale: str,
                 strength: float, unit_range: tuple[float, float], live: np.ndarray | None,
                 scaling: Scaling = MINMAX) -> tuple[np.ndarray, np.ndarray]:
    """A block of the output in its scale, and the same block in the input's units (for the QC and preview).

    Dead or absent traces (``live`` False) are zero in every scale but ``uint8`` (where the writer decides).

    Returns:
        ``(written, in_input_units)``, each ``(inline, crossline, sample)``.
    """
    in_units = fit.apply(inputs, unit, stats, strength)
    if scale == "input":
        written = in_units
    elif scale == "unit":
        written = unit_field(inputs, unit, stats, strength, scaling)
    else:
        written = to_uint8(unit_field(inputs, unit, stats, strength, scaling), *unit_range)
    if live is not None and not live.all():
        in_units = np.where(live[:, :, None], in_units, np.float32(0))
        if scale != "uint8":
            written = np.where(live[:, :, None], written, np.zeros((), written.dtype))
    return written, in_units
