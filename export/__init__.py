"""Export stage: ``model.onnx`` (checked, parity-tested), ``model.fp16.onnx`` (range-audited) and the TensorRT plan.

Importing this package is cheap (no torch, onnx or TensorRT): the entry points below load their modules on
first use, The plan's manifest and its stale check live in :mod:`impeccable.core.manifest` (the runtime reads them too).

- :func:`export_onnx` (:mod:`~impeccable.export.onnx_export`): model directory -> ``model.onnx``.
- :func:`convert_fp16` (:mod:`~impeccable.export.fp16`): ``model.onnx`` -> ``model.fp16.onnx`` + audit JSON.
- :func:`build_engine` (:mod:`~impeccable.export.tensorrt_build`): ``model.fp16.onnx`` -> plan + manifest.
- :func:`ship_model` (:mod:`~impeccable.export.ship`): a trained run -> the shipped model directory.
"""

from __future__ import annotations

import importlib
from typing import Any

_ENTRY_POINTS = {
    "export_onnx": "impeccable.export.onnx_export",
    "convert_fp16": "impeccable.export.fp16",
    "build_engine": "impeccable.export.tensorrt_build",
    "ship_model": "impeccable.export.ship",
}

__all__ = list(_ENTRY_POINTS)


def __getattr__(name: str) -> Any:
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
