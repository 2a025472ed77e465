"""Cut sections into model-window tiles and blend the predictions back (DESIGN §2).

A section that fits the window is zero-padded at the end of both axes (the seed's contract) and its
prediction is cropped back: exactly the untiled result. A larger section is cut into window-sized tiles that
overlap by ``overlap`` traces/samples; predictions are blended with weights that ramp linearly over the
overlap and are normalized by their sum, so no seam shows and the section's own edges keep full weight.
Cost: ``ceil((L - overlap) / (window - overlap))`` tiles per axis, e.g. a 700 x 2600 section takes 3 x 3 tiles
of 320 x 1280 with the default overlap of (64, 128) traces/samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impeccable.core.geometry import pad_sections



def default_overlap(window: tuple[int, int]) -> tuple[int, int]:
    """A fifth of the window's traces and a tenth of its samples: (64, 128) for 320 x 1280."""
    return window[0] // 5, window[1] // 10


def _starts(length: int, window: int, overlap: int) -> list[int]:
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
    """

    shape: tuple[int, int, int]
    window: tuple[int, int]
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def tiles_per_section(self) -> int:
        return len(self.row_starts) * len(self.col_starts)


def plan_tiles(shape: tuple[int, int, int], window: tuple[int, int],
               overlap: tuple[int, int] | None = None) -> TilePlan:
    """The tile layout of ``n`` sections of ``(traces, samples)`` for a model window."""
    _, rows, cols = shape
    overlap = overlap or default_overlap(window)
    return TilePlan(tuple(shape), tuple(window), tuple(_starts(rows, window[0], overlap[0])),
                    tuple(_starts(cols, window[1], overlap[1])))


def split(sections: np.ndarray, window: tuple[int, int],
          overlap: tuple[int, int] | None = None) -> tuple[np.ndarray, TilePlan]:
    """Tiles of a stack of sections.

    Args:
        sections: ``(n, traces, samples)`` float32.
        window: ``(rows, cols)`` of the model input.
        overlap: Overlap of neighbouring tiles in traces and samples [default: :func:`default_overlap`].

    Returns:
        ``(n * tiles_per_section, 1, rows, cols)`` float32 tiles (section-major) and the plan to merge them.
    """
    plan = plan_tiles(sections.shape, window, overlap)
    rows, cols = window
    if plan.tiles_per_section == 1:
        return pad_sections(sections, window), plan
    n = sections.shape[0]
    tiles = np.zeros((n, len(plan.row_starts), len(plan.col_starts), 1, rows, cols), dtype=np.float32)
    for i, r in enumerate(plan.row_starts):
        for j, c in enumerate(plan.col_starts):
            block = sections[:, r:r + rows, c:c + cols]
            tiles[:, i, j, 0, :block.shape[1], :block.shape[2]] = block
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
