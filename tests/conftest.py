"""Suite-wide settings: GPU tests skip themselves, with a reason, where no NVIDIA GPU or TensorRT is present."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

# Two cores here: keep torch/ORT/OpenVINO from oversubscribing when several tests build models.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def _gpu_reason() -> str | None:
    """Why GPU tests cannot run here, or None when they can."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU (nvidia-smi not found)"
    if importlib.util.find_spec("tensorrt") is None and importlib.util.find_spec("onnxruntime") is None:
        return "neither tensorrt nor onnxruntime-gpu is installed (pip install 'impeccable[gpu]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _gpu_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"gpu test: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
