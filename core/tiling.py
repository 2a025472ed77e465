"""The inference math of every stage: window plan, tiling with blending, flip TTA (DESIGN §2).

One numpy module, torch-free, used by the runtime's pipeline, training's validation, the export's plan check
and the parity test helpers, so that every score and every parity figure is computed on what users get.

A section that fits the window is zero-padded at the end of both axes (the seed's contract,
:func:`impeccable.core.geometry.pad_sections`) and its prediction cropped back: bit for bit the untiled result.

A section larger than the window on either axis is cut into window-sized tiles that overlap their neighbours
by at least ``overlap`` traces/samples (default: a fifth of the window's traces and a tenth of its samples,
64 x 128 for 320 x 1280); the last tile of each axis is aligned with the section's end, so it may overlap more.
An axis that fits the window takes one tile, zero-padded at the end as above. Predictions are blended with
separable weights that ramp linearly across each overlap (and stay 1 at the section's own edges), normalized by
their sum: two neighbours' ramps add up to 1, so the blend fades from one tile to the next with no seam.

Flip TTA mirrors the trace axis of each SECTION before tiling and padding (the padding stays at the end), and
the mirrored half of the predictions is blended, mirrored back and averaged with the plain half.

The padding value is the model card's (``pad_value``: the seed's 0, or the data's zero level 0.5 for robust-
scaled models, :class:`impeccable.core.amplitude.Scaling`). Data at another sample interval than the model's
are resampled to it before tiling and only the removed part is brought back (``resampling``,
:mod:`impeccable.core.resample`): the plan carries both, so :func:`blend` undoes what :func:`split` did. Field-ready
cards also ask for an output guard (``guard``, :mod:`impeccable.core.output_guard`): each blended section is kept
from holding more energy than its input at any frequency, and optionally gets back the signal that leaked into
its removed part; it works at the model's interval, before the removed part is brought back.

Cost: ``ceil((L - overlap) / (window - overlap))`` tiles along an axis of length ``L > window``. A 700 x 2600
section takes 3 x 3 = 9 images of 320 x 1280, against 4.4 windows of area: about twice the work of an
untiled section of the same area; the wider the overlap, the smoother the blend and the higher that cost.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from impeccable.core.errors import InputError
from impeccable.core.geometry import pad_sections
from impeccable.core.output_guard import OutputGuard
from impeccable.core.resample import Resampling
from impeccable.core.section_gain import SectionGain


def default_overlap(window: tuple[int, int]) -> tuple[int, int]:
    """A fifth of the window's traces and a tenth of its samples: (64, 128) for 320 x 1280."""
    return window[0] // 5, window[1] // 10


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Starts of windows of ``window`` covering ``[0, length)``, neighbours overlapping by at least ``overlap``.

    One window at 0 when it fits; else a step of ``window - overlap`` and a last window flush with the end.
    """
    if length <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, length - window, step))
    return starts + [length - window]


def _ramp(window: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1-D blend weight of one tile: ramps over the overlap, except at the section's own edges."""
    w = np.ones(window, dtype=np.float32)
    if overlap > 0:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not first:
            w[:overlap] = ramp
        if not last:
            w[-overlap:] = ramp[::-1]
    return w


@dataclass(frozen=True)
class TilePlan:
    """Where each tile of each section came from.

    Attributes:
        shape: ``(n, traces, samples)`` of the tiled sections.
        window: ``(rows, cols)`` of a tile.
        row_starts: Tile start rows (traces).
        col_starts: Tile start columns (samples).
        resampling: The sections were resampled to the model's interval before tiling (``shape`` is then at
            the model's interval), or None.
        source: With ``resampling`` or ``guard``: the sections as given, ``(n, traces, samples)`` float32 at the
            data's interval (the output is ``source`` less the removed part brought back; the guard compares with it).
        guard: The card's output guard, applied to each blended section, or None.
        gains: ``(n, samples)`` float32 section gains (the card's ``section_gain``, at the model's interval) the
            tiles were balanced with, or None.
    """

    shape: tuple[int, int, int]
    window: tuple[int, int]
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]
    resampling: Resampling | None = None
    source: np.ndarray | None = None
    guard: OutputGuard | None = None
    gains: np.ndarray | None = None

    @property
    def tiles_per_section(self) -> int:
        """Model images per section (1 when the section fits the window)."""
        return len(self.row_starts) * len(self.col_starts)


def plan_tiles(shape: tuple[int, int, int], window: tuple[int, int],
               overlap: tuple[int, int] | None = None) -> TilePlan:
    """The tile layout of ``n`` sections of ``(traces, samples)`` for a model window.

    Raises:
        InputError: An empty section, or an overlap that is negative or not smaller than the window.
    """
    _, rows, cols = shape
    overlap = default_overlap(window) if overlap is None else tuple(overlap)
    if rows < 1 or cols < 1:
        raise InputError("empty section", received=f"(traces, samples) = ({rows}, {cols})",
                         expected="at least one trace and one sample", todo="check the volume's shape")
    if any(not 0 <= o < w for o, w in zip(overlap, window)):
        raise InputError("tile overlap does not fit the window", received=overlap, expected=f"0 <= overlap < {window}",
                         todo="use the default overlap")
    return TilePlan(tuple(shape), tuple(window), tuple(window_starts(rows, window[0], overlap[0])),
                    tuple(window_starts(cols, window[1], overlap[1])))


def split(sections: np.ndarray, window: tuple[int, int], overlap: tuple[int, int] | None = None,
          mirror: bool = False, pad_value: float = 0.0, resampling: Resampling | None = None,
          guard: OutputGuard | None = None, gain: SectionGain | None = None) -> tuple[np.ndarray, TilePlan]:
    """Tiles of a stack of sections (and of their trace-mirrored copies, for flip TTA).

    Args:
        sections: ``(n, traces, samples)`` float32, in the model's units.
        window: ``(rows, cols)`` of the model input.
        overlap: Overlap of neighbouring tiles in traces and samples [default: :func:`default_overlap`].
        mirror: Also tile ``sections[:, ::-1, :]``, after the plain tiles in the same array (one engine batch
            carries both). The section is mirrored before padding, so the padding stays at the end.
        pad_value: Fills the window beyond the data (the card's padding).
        resampling: Resample the samples to the model's interval first (:mod:`impeccable.core.resample`).
        guard: :func:`blend` applies this output guard (:mod:`impeccable.core.output_guard`).
        gain: Balance each section's amplitude trend before tiling, restored by :func:`blend`
            (:mod:`impeccable.core.section_gain`).

    Returns:
        ``(k * n * tiles_per_section, 1, rows, cols)`` float32 C-contiguous tiles (``k`` = 2 with ``mirror``,
        else 1; section-major) and the plan to merge each half back with :func:`merge`.
    """
    source = sections if resampling is not None or guard else None
    if resampling is not None:
        sections = resampling.to_model(sections)
    plan = plan_tiles(sections.shape, window, overlap)
    gains = None
    if gain is not None:
        gains = gain.gains(sections)
        sections = gain.balance(sections, gains)
    if source is not None or gains is not None:
        plan = TilePlan(plan.shape, plan.window, plan.row_starts, plan.col_starts, resampling, source, guard, gains)
    rows, cols = window
    n, n_rows, n_cols = plan.shape
    sources = (sections, sections[:, ::-1, :]) if mirror else (sections,)
    if plan.tiles_per_section == 1:
        if not mirror:
            return pad_sections(sections, window, pad_value), plan
        # pad_sections' layout, written straight into one array: no intermediate copies
        tiles = np.full((2 * n, 1, rows, cols), pad_value, dtype=np.float32)
        for k, source in enumerate(sources):
            tiles[k * n:(k + 1) * n, 0, :n_rows, :n_cols] = source
        return tiles, plan
    grid = (len(plan.row_starts), len(plan.col_starts))
    tiles = np.full((len(sources), n, *grid, 1, rows, cols), pad_value, dtype=np.float32)
    for k, source in enumerate(sources):
        for i, r in enumerate(plan.row_starts):
            for j, c in enumerate(plan.col_starts):
                block = source[:, r:r + rows, c:c + cols]
                tiles[k, :, i, j, 0, :block.shape[1], :block.shape[2]] = block
    return tiles.reshape(-1, 1, rows, cols), plan


def merge(predictions: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Blend tile predictions back into ``(n, traces, samples)`` float32 sections (inverse of :func:`split`)."""
    n, rows_total, cols_total = plan.shape
    rows, cols = plan.window
    if plan.tiles_per_section == 1:
        return predictions[:, 0, :rows_total, :cols_total]
    preds = predictions.reshape(n, len(plan.row_starts), len(plan.col_starts), rows, cols)
    out = np.zeros((n, rows_total, cols_total), dtype=np.float32)
    weight = np.zeros((rows_total, cols_total), dtype=np.float32)
    overlap_r = _overlap_of(plan.row_starts, rows)
    overlap_c = _overlap_of(plan.col_starts, cols)
    for i, r in enumerate(plan.row_starts):
        wr = _ramp(rows, overlap_r, i == 0, i == len(plan.row_starts) - 1)[: rows_total - r]
        for j, c in enumerate(plan.col_starts):
            wc = _ramp(cols, overlap_c, j == 0, j == len(plan.col_starts) - 1)[: cols_total - c]
            w = np.outer(wr, wc)
            h, k = w.shape
            out[:, r:r + h, c:c + k] += preds[:, i, j, :h, :k] * w
            weight[r:r + h, c:c + k] += w
    return out / weight


def _overlap_of(starts: tuple[int, ...], window: int) -> int:
    """The smallest overlap between consecutive tiles (the last tile may overlap more)."""
    if len(starts) < 2:
        return 0
    return min(window - (b - a) for a, b in zip(starts, starts[1:]))


def blend(predictions: np.ndarray, plan: TilePlan, tta: bool) -> np.ndarray:
    """``(n, traces, samples)`` float32 sections from the predictions of :func:`split`'s tiles.

    Args:
        predictions: ``(k * n * tiles_per_section, 1, rows, cols)`` float32, in the order :func:`split` made the
            tiles (``k`` = 2 with ``tta``: the plain tiles, then the mirrored ones).
        plan: The plan :func:`split` returned.
        tta: The second half holds the trace-mirrored sections' tiles: mirrored back and averaged.
    """
    plain = plan.shape[0] * plan.tiles_per_section
    pred = merge(predictions[:plain], plan)
    if tta:
        pred = np.add(pred, merge(predictions[plain:], plan)[:, ::-1, :])
        pred *= np.float32(0.5)
    if plan.gains is not None:
        pred = SectionGain.restore(pred, plan.gains)
    if plan.resampling is None:
        return plan.guard.apply(pred, plan.source) if plan.guard else pred
    # The guard judges the model's output against what the model saw, at the model's interval: its windows and
    # slopes then mean the same at any data interval (applied after resampling back, F3 at 2 ms and at 4 ms
    # differed 0.137-0.154; here 0.025-0.027). Only what the model removed goes back (core.resample explains why).
    at_model = plan.resampling.to_model(plan.source)
    if plan.guard:
        pred = plan.guard.apply(pred, at_model)
    removed = plan.resampling.to_data(at_model - pred, plan.source.shape[-1])
    return np.subtract(plan.source, removed, dtype=np.float32)


def predict_sections(sections: np.ndarray, run_batch: Callable[[np.ndarray], np.ndarray], window: tuple[int, int],
                     tta: bool = True, batch: int = 8, overlap: tuple[int, int] | None = None,
                     pad_value: float = 0.0, resampling: Resampling | None = None,
                     guard: OutputGuard | None = None, gain: SectionGain | None = None) -> np.ndarray:
    """Denoise normalized sections the runtime's way: tile (and mirror), run in batches, blend (and average).

    Args:
        sections: ``(n, traces, samples)`` float32 in ``[0, 1]`` (normalized over their volume).
        run_batch: The model: ``float32[N, 1, rows, cols] -> float32[N, 1, rows, cols]`` (an engine, or a
            torch network behind a numpy <-> torch wrapper).
        window: ``(rows, cols)`` of the model input.
        tta: Flip TTA: also predict the trace-mirrored sections and average.
        batch: Images per ``run_batch`` call (tiles and their mirrored copies alike; the last call may be partial).
        overlap: Tile overlap [default: :func:`default_overlap`].
        pad_value: Fills the window beyond the data (the card's padding).
        resampling: From the sections' sample interval to the model's, or None.
        guard: The card's output guard (:mod:`impeccable.core.output_guard`), or None.
        gain: The card's section gain (:mod:`impeccable.core.section_gain`), or None.

    Returns:
        ``(n, traces, samples)`` float32 predictions.

    Raises:
        InputError: A batch below 1, an empty section or an overlap that does not fit the window.
    """
    if int(batch) < 1:
        raise InputError("batch size must be positive", received=batch, expected=">= 1",
                         todo="pass a batch of 1 or more")
    tiles, plan = split(sections, window, overlap, mirror=tta, pad_value=pad_value, resampling=resampling,
                        guard=guard, gain=gain)
    outs = [run_batch(tiles[start:start + batch]) for start in range(0, tiles.shape[0], batch)]
    return blend(np.concatenate(outs) if len(outs) > 1 else outs[0], plan, tta)
