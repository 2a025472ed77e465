"""The passes of a run over whole-inline slabs, and their reducers: statistics, amplitude fit, output with QC.

A run is: statistics (:func:`stats_part` per slab -> :func:`reduce_stats`), predictions
(:func:`impeccable.runtime.predict.predict_volume` per slab of each view into a prediction store), amplitude fit
(:func:`fit_part` per slab -> :func:`reduce_fit`), output (:func:`write_part` per slab, each writing its inlines
and returning its QC sums -> :func:`reduce_qc`). Every part is reduced per inline and added exactly, and every
part is JSON-ready (a cluster records it as the slab's done-flag), so the result does not depend on how the
volume was cut: one process runs the parts over blocks of inlines in a loop (:func:`reader_stats`,
:func:`fit_amplitudes`, :func:`write_output`), a cluster runs them as tasks, the dask API as a graph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from impeccable.core.amplitude import MINMAX, Scaling, VolumeStats, merge_stats, stats_part as block_stats
from impeccable.core.calibration import AmplitudeFit
from impeccable.core.qc import leakage_inlines, merge_qc, qc_part, sample_interval_ms
from impeccable.runtime.batching import block_inlines
from impeccable.runtime.calibrate import block_sums, live_rows, output_block
from impeccable.runtime.volumes import VolumeReader, live_mask

#: Reads inlines ``start:stop`` of the unit-scale prediction as ``(inline, crossline, sample)`` float32.
PredictionBlocks = Callable[[int, int], np.ndarray]


def blocks(count: int, step: int):
    """``(start, stop)`` of consecutive blocks of ``step`` inlines over ``count``."""
    for start in range(0, count, step):
        yield start, min(start + step, count)


def stats_part(reader: VolumeReader, chunk: int | None = None) -> dict:
    """The statistics of a volume (or a slab of one), to merge with others' (:func:`reduce_stats`).

    The finite samples are summed per inline, over that inline's live traces only (absent and dead traces
    stay out of the statistics). Why per inline whatever the mask: a SEG-Y reader finds all-zero (dead)
    traces as it reads them, so its mask depends on what it has read so far; cutting by inline makes the
    float64 sums, hence the NaN fill (the finite mean), the same in one process and in a cluster whose
    workers each read a few slabs.

    Args:
        reader: The volume or slab, canonical ``(inline, crossline, sample)``.
        chunk: Inlines per read [default: :func:`~impeccable.runtime.batching.block_inlines`].
    """
    parts = []
    for start, stop in blocks(reader.shape[0], chunk or block_inlines(reader.shape)):
        block = reader.read(inlines=slice(start, stop))
        live = live_mask(reader)  # after the read, which finds all-zero traces
        if live is None:
            parts.append(block_stats(block, chunk=max(1, block.shape[0])))
        else:  # ``(1, n_live, sample)`` per inline
            parts += [block_stats(row[live[start + i]][None]) for i, row in enumerate(block)]
    return {"vmin": min((p["vmin"] for p in parts), default=np.inf),
            "vmax": max((p["vmax"] for p in parts), default=-np.inf),
            "nonfinite": sum(p["nonfinite"] for p in parts), "count": sum(p["count"] for p in parts),
            "sums": [x for p in parts for x in p["sums"]],
            # the robust scaling's per-slice figures (core.amplitude.merge_stats takes their medians)
            "medians": [x for p in parts for x in p.get("medians", ())],
            "spreads": [x for p in parts for x in p.get("spreads", ())]}


def reduce_stats(parts: list[dict]) -> VolumeStats:
    """The volume's statistics from its slabs' parts (exact per-inline sums); a constant volume is refused."""
    stats = merge_stats(parts)
    stats.check_not_constant()
    return stats


def reader_stats(reader: VolumeReader, chunk: int | None = None) -> VolumeStats:
    """Min/max/mean of the finite samples and non-finite count of a whole volume (not checked for constant)."""
    return merge_stats([stats_part(reader, chunk)])


def fit_part(reader: VolumeReader, predictions: PredictionBlocks, stats: VolumeStats, strength: float,
             start: int, stop: int, scaling: Scaling = MINMAX) -> dict:
    """Inlines ``start:stop``'s share of the amplitude fit: per-inline sums and the unit field's min/max.

    ``scaling``: the model's (its card's), in whose units the predictions are.
    """
    sums, lo, hi = block_sums(reader.read(inlines=slice(start, stop)), predictions(start, stop), stats, strength,
                              live_rows(reader, start, stop), scaling)
    return {"sums": sums.tolist(), "lo": lo, "hi": hi}


def reduce_fit(parts: list[dict], stats: VolumeStats,
               scaling: Scaling = MINMAX) -> tuple[AmplitudeFit, tuple[float, float]]:
    """The amplitude fit of the whole volume and its final unit field's ``(min, max)``, from the slabs' parts
    (``scaling``: the model's)."""
    sums = np.concatenate([np.asarray(p["sums"], dtype=np.float64).reshape(-1, 6) for p in parts])
    return AmplitudeFit.from_sums(sums, stats, scaling), (min(p["lo"] for p in parts), max(p["hi"] for p in parts))


def fit_amplitudes(reader: VolumeReader, predictions: PredictionBlocks, stats: VolumeStats, strength: float,
                   step: int, scaling: Scaling = MINMAX) -> tuple[AmplitudeFit, tuple[float, float]]:
    """The fit pass over a whole volume by blocks of ``step`` inlines (:func:`fit_part`, :func:`reduce_fit`)."""
    return reduce_fit([fit_part(reader, predictions, stats, strength, a, b, scaling)
                       for a, b in blocks(reader.shape[0], step)], stats, scaling)


def write_part(reader: VolumeReader, predictions: PredictionBlocks, write: Callable[[int, int, np.ndarray], None],
               fit: AmplitudeFit, stats: VolumeStats, scale: str, strength: float,
               unit_range: tuple[float, float], start: int, stop: int, scaling: Scaling = MINMAX) -> dict:
    """Inlines ``start:stop`` of the output: scaled, handed to ``write(start, stop, block)``, measured for the QC.

    Args:
        reader: The whole input, canonical ``(inline, crossline, sample)`` (the QC samples its inlines).
        predictions: Unit-scale prediction blocks of whole inlines.
        write: Stores output inlines ``start:stop``.
        fit: From :func:`reduce_fit`.
        stats: The input's statistics.
        scale: ``input``, ``unit`` or ``uint8``.
        strength: 0..1.
        unit_range: The final unit field's (min, max) (``uint8``).
        scaling: The model's scaling (its card's), in whose units the predictions are.

    Returns:
        The QC part (:func:`impeccable.core.qc.qc_part`, exact per-inline sums; :func:`reduce_qc` merges them).
    """
    inputs = reader.read(inlines=slice(start, stop))
    live = live_rows(reader, start, stop)
    written, in_units = output_block(inputs, predictions(start, stop), fit, stats, scale, strength, unit_range, live,
                                     scaling)
    write(start, stop, written)
    return qc_part(start, inputs, in_units, live, mean=fit.mean, sampled=leakage_inlines(reader.shape[0]))


def qc_interval(reader: VolumeReader, sampling=None) -> tuple[float | None, bool]:
    """The QC spectra's ``(sample interval, depth)``: the run's (``--sample-interval``, the file) else the reader's.

    ``sampling``: the run's :class:`~impeccable.runtime.predict.Sampling`, if any. A depth volume's interval
    (metres) is the reader's, its spectra in cycles per km.
    """
    depth = bool(getattr(reader, "depth", False))
    if sampling is not None and sampling.data_ms is not None and not depth:
        return float(sampling.data_ms), False
    return sample_interval_ms(reader), depth


def reduce_qc(parts: list[dict], interval: tuple[float | None, bool] = (None, False)) -> dict:
    """The QC figures (:func:`impeccable.core.qc.merge_qc`: report, warnings, summary) from the slabs' parts.

    ``interval``: :func:`qc_interval`'s ``(sample interval, depth)``; unknown: spectra per cycles/sample.
    """
    return merge_qc(parts, interval[0], interval[1])


def write_output(reader: VolumeReader, predictions: PredictionBlocks, write: Callable[[int, int, np.ndarray], None],
                 fit: AmplitudeFit, stats: VolumeStats, scale: str, strength: float,
                 unit_range: tuple[float, float], step: int, scaling: Scaling = MINMAX, sampling=None) -> dict:
    """The output pass over a whole volume by blocks of ``step`` inlines; returns the QC figures.

    ``sampling``: the run's :class:`~impeccable.runtime.predict.Sampling` (the QC's frequency axis).
    """
    parts = [write_part(reader, predictions, write, fit, stats, scale, strength, unit_range, a, b, scaling)
             for a, b in blocks(reader.shape[0], step)]
    return reduce_qc(parts, qc_interval(reader, sampling))


def output_section(reader: VolumeReader, predictions: PredictionBlocks, fit: AmplitudeFit, stats: VolumeStats,
                   scale: str, strength: float, unit_range: tuple[float, float], section: tuple[str, int],
                   scaling: Scaling = MINMAX) -> np.ndarray:
    """One section of the output in the input's units (the preview's), float32.

    ``section``: ``("inline", i)``, returned as ``(1, crossline, sample)``, or ``("crossline", j)`` (a volume
    too narrow for inline sections, :func:`~impeccable.runtime.output.preview_section`), returned as
    ``(inline, 1, sample)``. Recomputed from the input and the predictions with the output pass's own function,
    rather than read back from the output, whose scale (``unit``, ``uint8``) or sample format (IBM float,
    integers) is not the input's units.
    """
    view, index = section
    ranges = [(index, index + 1)] if view == "inline" else list(blocks(reader.shape[0], block_inlines(reader.shape)))
    pieces = []
    for start, stop in ranges:
        inputs = reader.read(inlines=slice(start, stop))
        _, in_units = output_block(inputs, predictions(start, stop), fit, stats, scale, strength, unit_range,
                                   live_rows(reader, start, stop), scaling)
        pieces.append(np.array(in_units if view == "inline" else in_units[:, index:index + 1]))
    return np.concatenate(pieces)
