"""Suite-wide settings: GPU tests skip themselves, with a reason, where no NVIDIA GPU or TensorRT is present."""

from __future__ import annotations

import os
import shutil

import pytest

# Two cores here: keep torch/ORT/OpenVINO from oversubscribing when several tests build models.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def _gpu_reason() -> str | None:
    """Why GPU tests cannot run here, or None when they can.

    Gated on what the GPU tests run: TensorRT, or ONNX Runtime's CUDA provider. Not on
    ``find_spec("onnxruntime")``, which the CPU build satisfies.
    """
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU (nvidia-smi not found)"
    from impeccable.runtime.engines import installed, ort_has_cuda

    if not installed("tensorrt") and not ort_has_cuda():
        return ("neither TensorRT nor ONNX Runtime's CUDA provider is available "
                "(pip install '.[gpu]' in an environment without impeccable[cpu])")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _gpu_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"gpu test: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
