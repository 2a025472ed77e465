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


def _help_without_torch() -> None:
    """Let ``impeccable-train --help`` list its options without the ``[train]`` extra.

    The command's module reads the loss names from :mod:`impeccable.train.losses`, which imports torch; for
    the help alone, a stand-in module holds the same names, read from that file's source (not copied, so
    they cannot drift). The help exits before anything else runs.
    """
    import ast
    import importlib.util
    import sys
    import types
    from pathlib import Path

    source = Path(importlib.util.find_spec("impeccable.train.losses").origin).read_text()
    names = next(ast.literal_eval(node.value) for node in ast.parse(source).body
                 if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "LOSSES" for t in node.targets))
    stand_in = types.ModuleType("impeccable.train.losses")
    stand_in.LOSSES = names
    sys.modules["impeccable.train.losses"] = stand_in


def main() -> None:
    """The ``impeccable-train`` console script: one ``Error:`` line and exit 1 without the ``[train]`` extra,
    else :func:`impeccable.train.cli.main` (whose module imports torch)."""
    import sys

    import click

    from impeccable.core.extras import MissingExtra, require

    try:
        require("train", "impeccable-train")
    except MissingExtra as exc:
        if not {"-h", "--help"} & set(sys.argv[1:]):
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        _help_without_torch()
    from impeccable.train.cli import main as cli_main

    cli_main()
