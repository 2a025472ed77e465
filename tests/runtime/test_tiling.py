"""Tiling: padded single windows equal the untiled path bit for bit; larger sections blend without seams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from impeccable.core.errors import InputError
from impeccable.core.geometry import pad_sections
from impeccable.core import tiling

WINDOW = (320, 1280)


def _sections(n: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, rows, cols), dtype=np.float32)


@pytest.mark.parametrize("shape", [(3, 300, 1259), (2, 320, 1280), (1, 1, 1), (2, 17, 1280)])
def test_a_section_that_fits_one_window_is_exactly_the_untiled_path(shape):
    sections = _sections(*shape)
    tiles, plan = tiling.split(sections, WINDOW)
    assert plan.tiles_per_section == 1
    np.testing.assert_array_equal(tiles, pad_sections(sections, WINDOW))
    pred = np.random.default_rng(1).random(tiles.shape, dtype=np.float32)
    np.testing.assert_array_equal(tiling.merge(pred, plan), pred[:, 0, :shape[1], :shape[2]])


@pytest.mark.parametrize(("length", "window", "overlap", "count"), [
    (700, 320, 64, 3), (2600, 1280, 128, 3), (576, 320, 64, 2), (577, 320, 64, 3), (321, 320, 64, 2),
    (320, 320, 64, 1), (64, 320, 64, 1),
])
def test_tile_count_matches_the_documented_cost(length, window, overlap, count):
    plan = tiling.plan_tiles((1, length, 10), (window, 10), (overlap, 0))
    assert len(plan.row_starts) == count
    if length > window:
        assert count == math.ceil((length - overlap) / (window - overlap))
    # tiles cover the section, stay inside it, and overlap their neighbours by at least `overlap`
    starts = plan.row_starts
    assert starts[0] == 0 and starts[-1] + window >= length
    assert all(0 <= s and s + window <= max(length, window) for s in starts)
    assert all(window - (b - a) >= overlap for a, b in zip(starts, starts[1:]))


def test_default_overlap_and_the_700_by_2600_cost():
    assert tiling.default_overlap(WINDOW) == (64, 128)
    plan = tiling.plan_tiles((1, 700, 2600), WINDOW)
    assert plan.tiles_per_section == 9


@pytest.mark.parametrize("shape", [(2, 700, 2600), (1, 300, 2600), (2, 700, 1000), (1, 321, 1281)])
def test_identity_predictions_merge_back_to_the_input(shape):
    sections = _sections(*shape, seed=3)
    tiles, plan = tiling.split(sections, WINDOW)
    assert tiles.shape == (shape[0] * plan.tiles_per_section, 1, *WINDOW)
    assert tiles.dtype == np.float32 and tiles.flags.c_contiguous
    merged = tiling.merge(tiles, plan)
    assert merged.shape == shape and merged.dtype == np.float32
    np.testing.assert_allclose(merged, sections, rtol=0, atol=2e-6)


def _smooth_section(rows: int, cols: int) -> np.ndarray:
    r = np.arange(rows, dtype=np.float64)[:, None]
    c = np.arange(cols, dtype=np.float64)[None, :]
    field = 0.5 + 0.2 * np.sin(2 * np.pi * r / 350) * np.cos(2 * np.pi * c / 900)
    return field.astype(np.float32)[None]


def _tile_biased(tiles: np.ndarray) -> np.ndarray:
    """A smooth stand-in network whose output depends on where a pixel sits in its tile (as a CNN's does)."""
    rows, cols = tiles.shape[-2:]
    bias = 0.1 * np.arange(rows)[:, None] / rows + 0.1 * np.arange(cols)[None, :] / cols
    return (tiles + bias).astype(np.float32)


def _border_and_other_jumps(pred: np.ndarray, starts: tuple[int, ...], window: int, axis: int):
    jumps = np.abs(np.diff(pred[0], axis=axis))
    border = sorted({s for s in starts[1:]} | {s + window for s in starts[:-1]})
    at = np.zeros(jumps.shape[axis], dtype=bool)
    for b in border:  # the jump between index b - 1 and b
        at[b - 1] = True
    take = (lambda m: jumps[m]) if axis == 0 else (lambda m: jumps[:, m])
    return take(at).max(), take(~at).max()


def test_no_seams_on_a_700_by_2600_section():
    section = _smooth_section(700, 2600)
    tiles, plan = tiling.split(section, WINDOW)
    pred = tiling.merge(_tile_biased(tiles), plan)
    for axis, starts, window in ((0, plan.row_starts, WINDOW[0]), (1, plan.col_starts, WINDOW[1])):
        border, other = _border_and_other_jumps(pred, starts, window, axis)
        assert border <= 1.5 * other, (axis, border, other)

    # The same check does see a seam: pasting the tiles without blending leaves jumps at the borders.
    naive = np.zeros_like(section)
    preds = _tile_biased(tiles).reshape(len(plan.row_starts), len(plan.col_starts), *WINDOW)
    for i, r in enumerate(plan.row_starts):
        for j, c in enumerate(plan.col_starts):
            naive[0, r:r + WINDOW[0], c:c + WINDOW[1]] = preds[i, j]
    border, other = _border_and_other_jumps(naive, plan.row_starts, WINDOW[0], 0)
    assert border > 5 * other


@pytest.mark.parametrize(("shape", "overlap"), [((1, 0, 10), None), ((1, 10, 10), (320, 0)), ((1, 10, 10), (-1, 0))])
def test_bad_plans_are_refused(shape, overlap):
    with pytest.raises(InputError):
        tiling.plan_tiles(shape, WINDOW, overlap)


@pytest.mark.parametrize("shape", [(3, 300, 1259), (2, 700, 1300)])
def test_mirror_appends_the_tiles_of_the_trace_mirrored_sections(shape):
    sections = _sections(*shape, seed=5)
    plain, plan = tiling.split(sections, WINDOW)
    both, plan2 = tiling.split(sections, WINDOW, mirror=True)
    flipped, _ = tiling.split(np.ascontiguousarray(sections[:, ::-1]), WINDOW)
    assert plan2 == plan and both.flags.c_contiguous
    np.testing.assert_array_equal(both, np.concatenate([plain, flipped]))
    half = plain.shape[0]
    np.testing.assert_allclose(tiling.merge(both[half:], plan)[:, ::-1], sections, atol=2e-6)
