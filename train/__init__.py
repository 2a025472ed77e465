"""Training: fit the UNet++ / EfficientNetV2-S denoiser on noisy/clean section pairs (``impeccable-train``).

Modules: :mod:`~impeccable.train.config` (the frozen config), :mod:`~impeccable.train.dataset` (volumes,
statistics, sections), :mod:`~impeccable.train.validate` (the challenge score on held-out volumes),
:mod:`~impeccable.train.state` (the resumable checkpoint), :mod:`~impeccable.train.loop` (the loop) and
:mod:`~impeccable.train.cli`. Importing this package does not import torch; :func:`train` does.
"""

from __future__ import annotations

from typing import Any

from impeccable.train.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(*args: Any, **kwargs: Any) -> Any:
    """Run :func:`impeccable.train.loop.train` (imported on first use: it needs torch)."""
    from impeccable.train.loop import train as _train

    return _train(*args, **kwargs)
