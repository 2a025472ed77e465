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


def linearize_sigmoid_head(model: nn.Module) -> nn.Module:
    """Turn a sigmoid-output network into its linear twin at the sigmoid's midpoint, in place.

    ``sigmoid(z) ~ 0.5 + z / 4`` near ``z = 0``: scaling the segmentation head's last convolution by 1/4 and
    adding 0.5 to its bias gives a network that matches the sigmoid one where its output is mid-range and,
    unlike it, can reach any value (a field-ready model predicts the clean section in the input's units, which
    may leave ``[0, 1]``). The way a sigmoid-trained model starts a field-ready fine-tune.

    Returns:
        The same model, its head's activation set to identity.
    """
    import torch

    head = model.segmentation_head
    conv = head[0]
    with torch.no_grad():
        conv.weight.mul_(0.25)
        conv.bias.mul_(0.25).add_(0.5)
    head[-1] = smp.base.modules.Activation(None)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of a model."""
    return sum(p.numel() for p in model.parameters())

