"""Optional extras: which import names each one provides, and the one-line error when a command's is missing.

A command that needs an extra checks with ``find_spec`` (nothing imported) before it imports anything heavy,
so a runtime-only install answers ``impeccable-train`` with what to install instead of a traceback.
"""

from __future__ import annotations

import importlib.util

from impeccable.core.errors import ImpeccableError

#: extra -> (import names it provides that its commands need, what they are called on PyPI).
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "train": (("torch", "segmentation_models_pytorch", "timm", "safetensors"),
              "torch, segmentation-models-pytorch, timm, safetensors"),
}


def install_hint(extra: str | None = None) -> str:
    """How to install the package (with ``extra``): from a clone, since impeccable is not on PyPI.

    ``pip install 'impeccable[gpu]'`` would ask the package index for a name it does not have; a clone
    installs with ``pip install '.[gpu]'``, another project with ``pip install 'impeccable[gpu] @ git+URL'``.
    """
    return f"pip install '.[{extra}]' in the impeccable clone (not on PyPI)" if extra else \
        "pip install . in the impeccable clone (not on PyPI)"


class MissingExtra(ImpeccableError):
    """A command's optional dependencies are not installed."""


def missing(extra: str) -> list[str]:
    """The import names of ``extra`` that are not installed."""
    return [name for name in EXTRAS[extra][0] if importlib.util.find_spec(name) is None]


def require(extra: str, command: str) -> None:
    """Refuse to go on without ``extra``.

    Raises:
        MissingExtra: One of its packages is missing (the message says which extra to install).
    """
    absent = missing(extra)
    if absent:
        raise MissingExtra(f"{command} needs the [{extra}] extra", received=f"{', '.join(absent)} not installed",
                           expected=EXTRAS[extra][1],
                           todo=f"install the [{extra}] extra: {install_hint(extra)}")
