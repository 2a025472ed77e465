"""Build the denoising network from its card."""

from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import nn


def build_model(card: dict) -> nn.Module:
    """Build the network a card describes, with random (or encoder-pretrained) weights.

    The network takes ``(N, 1, rows, cols)`` float32 in ``[0, 1]`` and returns the same shape in ``[0, 1]``
    (the sigmoid is part of the network, smp's ``activation="sigmoid"``).

    Args:
        card: A model card (:mod:`impeccable.core.card`); ``card["smp"]`` holds the keyword arguments of
            ``segmentation_models_pytorch.create_model`` including ``arch``.
    """
    kwargs = dict(card["smp"])
    arch = kwargs.pop("arch")
    # Pretrained encoder weights cannot be downloaded by the toolkit; local files are loaded by the trainer.
    kwargs["encoder_weights"] = None
    model = smp.create_model(arch, **kwargs)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of a model."""
    return sum(p.numel() for p in model.parameters())

