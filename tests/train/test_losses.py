"""Training losses: MSE under both reductions; the SSIM term is the scorer's formula, weighted as asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from impeccable.train.losses import training_loss


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(2, 1, 64, 96, generator=g)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    return noisy, clean


def test_mse_loss_is_plain_mse_under_both_reductions():
    pred, target = _pair()
    loss, mse = training_loss(pred, target)
    assert float(loss) == pytest.approx(float(F.mse_loss(pred, target))) and float(mse) == pytest.approx(float(loss))
    summed, mse_sum = training_loss(pred, target, reduction="sum")
    assert float(summed) == pytest.approx(float(loss) * target.numel(), rel=1e-5)
    assert float(mse_sum) == pytest.approx(float(mse), rel=1e-5)


def test_ssim_term_is_the_scorers_formula():
    pred, target = _pair()
    loss, mse = training_loss(pred, target, "mse+ssim", ssim_weight=1.0)
    ssim = 1.0 - (float(loss) - float(mse))
    reference = np.mean([structural_similarity(t[0].numpy(), p[0].numpy(), data_range=1.0)
                         for p, t in zip(pred, target)])
    assert ssim == pytest.approx(reference, abs=2e-3)  # border handling differs by a few pixels' share


def test_ssim_term_is_zero_on_a_perfect_prediction_and_scales_with_its_weight():
    pred, target = _pair()
    assert float(training_loss(target, target, "mse+ssim")[0]) == pytest.approx(0.0, abs=1e-6)
    mse_only = float(training_loss(pred, target)[0])
    half, full = (float(training_loss(pred, target, "mse+ssim", ssim_weight=w)[0]) - mse_only for w in (0.5, 1.0))
    assert half > 0.01 and full == pytest.approx(2 * half, rel=1e-5)
    assert float(training_loss(pred, target, "mse+ssim", ssim_weight=0.0)[0]) == pytest.approx(mse_only)


def test_gradients_flow_through_the_ssim_term():
    pred, target = _pair()
    pred.requires_grad_(True)
    loss, _ = training_loss(pred, target, "mse+ssim")
    loss.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0


def test_unknown_loss_is_refused():
    pred, target = _pair()
    with pytest.raises(ValueError, match="unknown loss"):
        training_loss(pred, target, "l1")
