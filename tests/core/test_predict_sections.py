"""core.tiling.predict_sections / blend: the one inference path (tiles, flip TTA, batches) every stage uses."""

from __future__ import annotations

import numpy as np
import pytest

from impeccable.core import tiling
from impeccable.core.errors import InputError

WINDOW = (32, 64)


def _tile_biased(images: np.ndarray) -> np.ndarray:
    """Depends on the whole image (its mean) and on the row position: tiles and mirrors all disagree."""
    rows = np.arange(images.shape[2], dtype=np.float32)[None, None, :, None] / images.shape[2]
    return (images + images.mean(axis=(2, 3), keepdims=True) ** 2 + 0.1 * rows).astype(np.float32)


class Counting:
    """An engine that records the size of every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, images):
        self.calls.append(images.shape[0])
        assert images.flags.c_contiguous
        return _tile_biased(images)


@pytest.mark.parametrize("shape", [(3, 20, 50), (2, 70, 150)])  # fits the window; tiled on both axes
@pytest.mark.parametrize("tta", [False, True])
def test_predict_sections_is_the_pipelines_split_run_blend(shape, tta):
    sections = np.random.default_rng(0).random(shape, dtype=np.float32)
    tiles, plan = tiling.split(sections, WINDOW, mirror=tta)
    expected = tiling.blend(_tile_biased(tiles), plan, tta)
    for batch in (1, 3, 1000):
        engine = Counting()
        out = tiling.predict_sections(sections, engine, WINDOW, tta=tta, batch=batch)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
        assert out.shape == shape and out.dtype == np.float32
        assert sum(engine.calls) == tiles.shape[0] and max(engine.calls) == min(batch, tiles.shape[0])


def test_flip_tta_mirrors_the_section_before_padding():
    """A model that returns its input gives the input back, TTA or not: the padding stays at the end."""
    sections = np.random.default_rng(1).random((2, 20, 50), dtype=np.float32)
    for tta in (False, True):
        out = tiling.predict_sections(sections, lambda x: x.copy(), WINDOW, tta=tta, batch=2)
        np.testing.assert_allclose(out, sections, atol=1e-6)


def test_a_batch_below_one_is_refused():
    with pytest.raises(InputError, match="batch size must be positive"):
        tiling.predict_sections(np.zeros((1, 8, 8), np.float32), lambda x: x, WINDOW, batch=0)
