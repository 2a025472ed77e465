"""Validation: the inference pipeline on the scoring sections, scored like the challenge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from impeccable.core.amplitude import to_uint8
from impeccable.data.scoring import score_sections, score_volumes, section_indices
from impeccable.core import tiling
from impeccable.train.validate import predict_sections, validate


class Identity(nn.Module):
    """Returns its input: a perfect check of padding, tiling and mirroring."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


# With TTA, a wrong mirror-back would average the section with its mirror image and fail.
@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("shape", [(3, 24, 200), (2, 100, 300)])  # fits the window; needs tiling
def test_predict_sections_identity(shape, tta):
    sections = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = predict_sections(Identity(), sections, (64, 256), batch_size=4, tta=tta)
    np.testing.assert_allclose(out, sections, atol=1e-6)


class TileBiased(nn.Module):
    """Adds each image's own mean: tiles of one section disagree, so the blend decides the result."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x.mean(dim=(2, 3), keepdim=True) ** 2


@pytest.mark.parametrize("tta", [False, True])
def test_validation_predicts_exactly_as_the_runtime_tiles_and_blends(tta):
    """Larger sections are tiled with the runtime's overlap, blended with its ramps and flip-averaged as the
    pipeline does (the old validation used half-overlapping tiles and a plain average)."""
    sections = np.random.default_rng(1).random((2, 150, 600), dtype=np.float32)
    window = (64, 256)
    out = predict_sections(TileBiased(), sections, window, batch_size=3, tta=tta)
    tiles, plan = tiling.split(sections, window, mirror=tta)
    assert plan.tiles_per_section > 1
    expected = tiling.blend(TileBiased()(torch.from_numpy(tiles)).numpy(), plan, tta)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def _six_section_score(clean: np.ndarray, noisy: np.ndarray) -> float:
    """The challenge's formula on a volume's six sections, uint8 on their shared min/max (validation's convention)."""
    def sections(v):
        return {f"i{n}": v[i] for n, i in enumerate(section_indices(v.shape[0]))} | {
            f"x{n}": v[:, x] for n, x in enumerate(section_indices(v.shape[1]))}

    def uint8(parts):
        lo, hi = min(p.min() for p in parts.values()), max(p.max() for p in parts.values())
        return {k: to_uint8(p, float(lo), float(hi)) for k, p in parts.items()}

    return score_sections(uint8(sections(clean)), uint8(sections(noisy)))


def test_noisy_baseline_is_the_challenge_formula_on_the_six_sections(volumes):
    result = validate(Identity(), volumes, [1, 2], (64, 256))
    for i in (1, 2):
        noisy, clean = volumes.arrays(i)
        expected = _six_section_score(np.asarray(clean, np.float64), np.asarray(noisy, np.float64))
        assert result["volumes"][volumes.ids[i]]["noisy_score"] == pytest.approx(expected, abs=1e-12)
        # Within a few hundredths of the whole-volume score on these volumes.
        assert expected == pytest.approx(score_volumes(np.asarray(clean), np.asarray(noisy)), abs=0.02)
    # Truth, noisy and prediction share the uint8 convention, so the identity "denoiser" scores as the noisy
    # input (up to float rounding at uint8 steps); with the prediction alone on another range it did not.
    assert result["val_score"] == pytest.approx(result["val_noisy_score"], abs=1e-3)
    assert set(result) == {"val_score", "val_noisy_score", "val_loss", "volumes"}
