"""Training losses: the seed's MSE, optionally plus the challenge's own metric (SSIM) as a term.

Why SSIM: the score is SSIM, and an MSE-trained network that cannot yet tell signal from noise hedges by
smoothing, which MSE rewards and SSIM punishes (SSIM compares local contrast and structure, so a blurred
section scores below the noisy input it came from). Two of the challenge's finalists trained on MSE + SSIM.
The SSIM term is torchmetrics' uniform 7x7 window with data range 1 and K1 = 0.01, K2 = 0.03: the same
formula as the scorer (scikit-image defaults on 0..255), on the [0, 1] scale the network works in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def ssim_index(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of a batch, the scorer's formula on the [0, 1] scale (uniform 7x7, K1 0.01, K2 0.03)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(pred, target, gaussian_kernel=False, kernel_size=7, data_range=1.0)
