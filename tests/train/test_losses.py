"""Training losses: MSE under both reductions; the SSIM term is the scorer's formula, weighted as asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from impeccable.train.losses import signal_leakage, training_loss


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


def _section_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A clean layered section about the robust zero level 0.5, and white noise on it (robust units)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(256, dtype=torch.float32)
    trace = torch.sin(2 * np.pi * t / 24) * torch.exp(-((t - 128) / 90) ** 2)
    clean = 0.5 + 0.1 * trace.expand(2, 1, 48, 256).clone()
    noise = 0.05 * torch.randn(clean.shape, generator=g)
    return clean, noise


def test_leakage_is_zero_when_nothing_is_removed_and_when_only_noise_orthogonal_to_the_signal_is():
    clean, noise = _section_pair()
    noisy = clean + noise
    assert float(signal_leakage(noisy, noisy, clean, 0.5)) == 0.0  # the output is the input
    # A removed part orthogonal to the signal everywhere: a trace-to-trace alternation (the clean section is the
    # same on every trace, so each window's product averages out).
    alternating = 0.05 * (torch.arange(48) % 2 * 2 - 1).float().view(1, 1, 48, 1).expand_as(clean)
    leak = float(signal_leakage(clean, clean + alternating, clean, 0.5))
    assert leak < 1e-4 * float(((clean - 0.5) ** 2).mean())


def test_leakage_is_the_power_of_the_signal_taken():
    clean, noise = _section_pair()
    noisy = clean + noise
    power = float(((clean - 0.5) ** 2).mean())
    leaks = []
    for share in (0.1, 0.3, 0.6):
        pred = clean - share * (clean - 0.5)  # the noise removed exactly, and a share of the signal with it
        leaks.append(float(signal_leakage(pred, noisy, clean, 0.5)))
    # a^2 of the signal's power, less where the floor damps the weak flanks; noise adds a small chance term.
    for share, leak in zip((0.1, 0.3, 0.6), leaks):
        assert 0.5 * share**2 * power < leak < 1.1 * share**2 * power
    assert leaks[0] < leaks[1] < leaks[2]


def test_leakage_gradient_moves_the_output_back_towards_the_signal():
    clean, noise = _section_pair()
    noisy = clean + noise
    pred = (clean - 0.3 * (clean - 0.5)).requires_grad_()  # signal taken
    loss = signal_leakage(pred, noisy, clean, 0.5)
    loss.backward()
    # Descending the gradient moves the output back towards the signal: -grad lines up with (clean - pred).
    assert float((-pred.grad * (clean - pred.detach())).sum()) > 0
