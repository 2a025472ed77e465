"""Training: fit the UNet++ / EfficientNetV2-S denoiser on noisy/clean section pairs (``impeccable-train``).

Modules: :mod:`~impeccable.train.config` (the frozen config), :mod:`~impeccable.train.dataset` (volumes,
statistics, sections), :mod:`~impeccable.train.validate` (the challenge score on held-out volumes),
:mod:`~impeccable.train.state` (the resumable checkpoint), :mod:`~impeccable.train.loop` (the loop) and
:mod:`~impeccable.train.cli`. Importing this package does not import torch (a runtime-only install can import
it): :class:`TrainConfig` and :func:`train` load their modules, which need the ``[train]`` extra, on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "main", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":  # config validates loss names against the torch losses
        from impeccable.train.config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train(*args: Any, **kwargs: Any) -> Any:
    """Run :func:`impeccable.train.loop.train` (imported on first use: it needs torch)."""
    from impeccable.train.loop import train as _train

    return _train(*args, **kwargs)


def main() -> None:
    """The ``impeccable-train`` console script: one ``Error:`` line and exit 1 without the ``[train]`` extra,
    else :func:`impeccable.train.cli.main` (whose module imports torch)."""
    import sys

    import click

    from impeccable.core.extras import MissingExtra, require

    try:
        require("train", "impeccable-train")
    except MissingExtra as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    from impeccable.train.cli import main as cli_main

    cli_main()
