"""Training losses: the seed's MSE, optionally plus the challenge's own metric (SSIM) as a term.

Why SSIM: the score is SSIM, and an MSE-trained network that cannot yet tell signal from noise hedges by
smoothing, which MSE rewards and SSIM punishes (SSIM compares local contrast and structure, so a blurred
section scores below the noisy input it came from). Two of the challenge's finalists trained on MSE + SSIM.
The SSIM term is torchmetrics' uniform 7x7 window with data range 1 and K1 = 0.01, K2 = 0.03: the same
formula as the scorer (scikit-image defaults on 0..255), on the [0, 1] scale the network works in.

Signal leakage (``leak_weight``, field-ready models only): MSE charges a removed piece of signal and a piece of
noise left behind alike, but a processor does not: noise left is visible and honest, signal taken is damage
that nobody sees in the output. On every field case the models lose to a band-pass, they lose by taking signal
(fault-zone reflectors removed with steep coherent noise). The term charges the removed part's local projection
on the clean signal (local orthogonality, Chen & Fomel 2015): in the signal-recovery window
(:data:`impeccable.core.signal_recovery.RADIUS`), ``<r s>^2 / <s s>`` with ``r = input - output`` and ``s`` the
clean section about its zero level, i.e. the power of the signal removed there. Removing a share ``a`` of the
signal costs ``a^2 <s s>`` in MSE and ``leak_weight * a^2 <s s>`` more here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from impeccable.core.signal_recovery import FLOOR, RADIUS

LOSSES = ("mse", "mse+ssim")


def training_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse", reduction: str = "mean",
                  ssim_weight: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to optimize and the per-pixel MSE (logged whatever the loss).

    Args:
        pred: ``(N, 1, H, W)`` network output in [0, 1]; any float dtype (computed in float32).
        target: ``(N, 1, H, W)`` float32 clean sections, min-max scaled to [0, 1].
        kind: ``"mse"`` or ``"mse+ssim"`` (``MSE + ssim_weight * (1 - SSIM)``).
        reduction: ``"mean"`` or ``"sum"`` of the squared errors; with ``"sum"`` the SSIM term is scaled by the
            same pixel count, so the weight means the same under both reductions.
        ssim_weight: Weight of ``1 - SSIM`` (mean over the batch).

    Returns:
        ``(loss, mse)``: the scalar to back-propagate, and the detached per-pixel MSE.
    """
    pred = pred.float()
    squared = F.mse_loss(pred, target, reduction=reduction)
    scale = target.numel() if reduction == "sum" else 1
    mse = squared.detach() / scale
    if kind == "mse":
        return squared, mse
    if kind != "mse+ssim":
        raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")
    return squared + ssim_weight * scale * (1.0 - ssim_index(pred, target)), mse


def signal_leakage(pred: torch.Tensor, source: torch.Tensor, target: torch.Tensor, zero: float) -> torch.Tensor:
    """Mean power of the signal in the removed part (see the module docstring), in the units of the MSE.

    Args:
        pred: ``(N, 1, traces, samples)`` network output; any float dtype (computed in float32).
        source: Same shape, the network's input (the noisy section in the same units).
        target: Same shape, the clean section in the input's units.
        zero: The data's zero level in those units (:attr:`impeccable.core.amplitude.Scaling.pad_value`).

    Returns:
        A scalar: ``mean(<r s>^2 / (<s s> + floor))``, ``<.>`` the triangle window of signal recovery, the floor a
        share of each image's mean signal power (:data:`impeccable.core.signal_recovery.FLOOR`) so that quiet
        zones, where any removal looks like all of the signal, do not dominate.
    """
    removed = source.float() - pred.float()
    signal = target.float() - zero
    rs, ss = _local_mean(removed * signal, RADIUS), _local_mean(signal * signal, RADIUS)
    floor = FLOOR * ss.mean(dim=(1, 2, 3), keepdim=True) + 1e-12
    return (rs * rs / (ss + floor)).mean()


def _local_mean(x: torch.Tensor, radius: tuple[int, int]) -> torch.Tensor:
    """Signal recovery's window in torch: a box of ``2 * radius + 1`` applied twice (edges average what exists)."""
    kernel = (2 * radius[0] + 1, 2 * radius[1] + 1)
    for _ in range(2):
        x = F.avg_pool2d(x, kernel, stride=1, padding=radius, count_include_pad=False)
    return x


def ssim_index(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of a batch, the scorer's formula on the [0, 1] scale (uniform 7x7, K1 0.01, K2 0.03)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(pred, target, gaussian_kernel=False, kernel_size=7, data_range=1.0)
