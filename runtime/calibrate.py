"""The last two passes of a run: fit the amplitude map, then scale, QC and write the output (DESIGN §3).

After every section was predicted (unit-scale predictions in a canonical scratch array), the run reads the
input and the predictions again, a block of inlines at a time:

1. :func:`fit_amplitudes`: the per-inline sums of the least-squares amplitude fit
   (:mod:`impeccable.core.calibration`) and, for the ``uint8`` scale, the final field's min/max.
2. :func:`write_output`: each block in the output's scale (``input``: the fitted prediction in the input's
   units, blended with the input by ``strength``; ``unit``; ``uint8``), written, and fed to the QC
   (:mod:`impeccable.core.qc`, always in the input's units).

Both passes take only blocks of whole inlines and reduce per inline, so the distributed runner calls the
same functions per slab and gets identical results. Memory: one block of inlines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from impeccable.core.amplitude import VolumeStats, normalize, to_uint8
from impeccable.core.calibration import AmplitudeFit, inline_sums
from impeccable.core.qc import QualityControl, leakage_inlines, sample_interval_ms
from impeccable.runtime.volumes import live_mask

#: Reads inlines ``start:stop`` of the unit-scale prediction as ``(inline, crossline, sample)`` float32.
PredictionBlocks = Callable[[int, int], np.ndarray]


def live_rows(reader, start: int, stop: int) -> np.ndarray | None:
    """The reader's live-trace mask for inlines ``start:stop`` (``(inline, crossline)`` bool), if it has one."""
    live = live_mask(reader)
    return None if live is None else np.asarray(live[start:stop], dtype=bool)


def unit_field(inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats, strength: float) -> np.ndarray:
    """The ``unit``-scale output: the prediction blended with the normalized input by ``strength`` (float32)."""
    if strength == 1.0:
        return unit
    x = normalize(inputs, stats)
    return (x - np.float32(strength) * (x - unit)).astype(np.float32)


def block_sums(inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats, strength: float,
               live: np.ndarray | None) -> tuple[np.ndarray, float, float]:
    """One block's share of pass 1: per-inline fit sums, and the min/max of its ``unit``-scale output field."""
    field = unit_field(inputs, unit, stats, strength)
    if live is not None:  # the range of the traces that will be written
        field = field[live]
    if not field.size:
        return inline_sums(inputs, unit, stats, live), np.inf, -np.inf
    return inline_sums(inputs, unit, stats, live), float(field.min()), float(field.max())


def fit_amplitudes(reader, predictions: PredictionBlocks, stats: VolumeStats, strength: float,
                   step: int) -> tuple[AmplitudeFit, tuple[float, float]]:
    """Pass 1 over the whole volume: the amplitude fit and the final unit field's (min, max).

    Args:
        reader: The input, canonical ``(inline, crossline, sample)``.
        predictions: Unit-scale prediction blocks of whole inlines.
        stats: The input's statistics.
        strength: ``--strength``, 0..1.
        step: Inlines per block.
    """
    rows, lo, hi = [], np.inf, -np.inf
    for start in range(0, reader.shape[0], step):
        stop = min(start + step, reader.shape[0])
        sums, bmin, bmax = block_sums(reader.read(inlines=slice(start, stop)), predictions(start, stop), stats,
                                      strength, live_rows(reader, start, stop))
        rows.append(sums)
        lo, hi = min(lo, bmin), max(hi, bmax)
    return AmplitudeFit.from_sums(np.concatenate(rows), stats), (lo, hi)


def output_block(inputs: np.ndarray, unit: np.ndarray, fit: AmplitudeFit, stats: VolumeStats, scale: str,
                 strength: float, unit_range: tuple[float, float], live: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A block of the output in its scale, and the same block in the input's units (for the QC and preview).

    Dead or absent traces (``live`` False) are zero in every scale but ``uint8`` (where the writer decides).

    Returns:
        ``(written, in_input_units)``, each ``(inline, crossline, sample)``.
    """
    in_units = fit.apply(inputs, unit, stats, strength)
    if scale == "input":
        written = in_units
    elif scale == "unit":
        written = unit_field(inputs, unit, stats, strength)
    else:
        written = to_uint8(unit_field(inputs, unit, stats, strength), *unit_range)
    if live is not None and not live.all():
        in_units = np.where(live[:, :, None], in_units, np.float32(0))
        if scale != "uint8":
            written = np.where(live[:, :, None], written, np.zeros((), written.dtype))
    return written, in_units


#: A volume fewer crosslines wide than this is previewed along its middle crossline (a 2-D line stored as one
#: crossline, e.g. Penobscot xl 1155 as (601, 1, 1501), has 1-trace inlines).
PREVIEW_MIN_TRACES = 16


def preview_section(shape: tuple[int, int, int]) -> tuple[str, int]:
    """The section ``--preview`` draws: ``("inline", middle)``, or ``("crossline", middle)`` for a narrow volume."""
    if shape[1] < PREVIEW_MIN_TRACES and shape[0] > shape[1]:
        return "crossline", shape[1] // 2
    return "inline", shape[0] // 2


def kept_section(in_units: np.ndarray, start: int, keep: tuple[str, int] | int | None) -> np.ndarray | None:
    """The part of a block ``(inline, crossline, sample)`` starting at inline ``start`` in section ``keep``.

    Returns ``(1, crossline, sample)`` for an inline section inside the block, ``(inline, 1, sample)`` for a
    crossline section (every block holds a piece), or None.
    """
    if keep is None:
        return None
    view, index = ("inline", keep) if isinstance(keep, int) else keep
    if view == "crossline":
        return np.array(in_units[:, index:index + 1])
    if start <= index < start + in_units.shape[0]:
        return np.array(in_units[index - start:index - start + 1])
    return None


def write_output(reader, predictions: PredictionBlocks, write: Callable[[int, int, np.ndarray], None],
                 fit: AmplitudeFit, stats: VolumeStats, scale: str, strength: float,
                 unit_range: tuple[float, float], step: int, keep: tuple[str, int] | int | None = None
                 ) -> tuple[dict, np.ndarray | None]:
    """Pass 2: scale each block, hand it to ``write(start, stop, block)``, and measure the QC figures.

    Args:
        reader: The input, canonical ``(inline, crossline, sample)``.
        predictions: Unit-scale prediction blocks of whole inlines.
        write: Stores output inlines ``start:stop``.
        fit: From :func:`fit_amplitudes`.
        stats: The input's statistics.
        scale: ``input``, ``unit`` or ``uint8``.
        strength: 0..1.
        unit_range: The final unit field's (min, max) (``uint8``).
        step: Inlines per block.
        keep: The section whose output, in the input's units, is returned (the preview's,
            :func:`preview_section`); an int is an inline.

    Returns:
        ``(qc_report, kept)``: the QC figures (:meth:`QualityControl.report`) and section ``keep`` as
        ``(1, crossline, sample)`` (an inline) or ``(inline, 1, sample)`` (a crossline) float32 in the input's
        units, or None.
    """
    qc = QualityControl(mean=fit.mean, sampled=leakage_inlines(reader.shape[0]),
                        sample_interval_ms=sample_interval_ms(reader))
    kept = []
    for start in range(0, reader.shape[0], step):
        stop = min(start + step, reader.shape[0])
        inputs = reader.read(inlines=slice(start, stop))
        live = live_rows(reader, start, stop)
        written, in_units = output_block(inputs, predictions(start, stop), fit, stats, scale, strength,
                                         unit_range, live)
        write(start, stop, written)
        qc.add(start, inputs, in_units, live)
        piece = kept_section(in_units, start, keep)
        if piece is not None:
            kept.append(piece)
    return qc.report(), (np.concatenate(kept) if kept else None)
