"""The suite's GPU gate (tests/conftest.py): GPU tests run only where TensorRT or ORT's CUDA provider is."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from impeccable.runtime import engines


def _gate():
    """tests/conftest.py loaded as a plain module (pytest's own ``conftest`` name is shared by every folder)."""
    spec = importlib.util.spec_from_file_location("suite_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_onnxruntime_on_a_gpu_machine_does_not_open_the_gate(monkeypatch):
    if importlib.util.find_spec("onnxruntime") is None or engines.ort_has_cuda():
        pytest.skip("needs the CPU build of onnxruntime")
    gate = _gate()
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    monkeypatch.setattr(engines, "installed", lambda name: name != "tensorrt")
    reason = gate._gpu_reason()
    assert reason is not None and "CUDA provider" in reason


def test_the_cuda_provider_opens_the_gate(monkeypatch):
    gate = _gate()
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(engines, "installed", lambda name: False)
    monkeypatch.setattr(engines, "ort_has_cuda", lambda: True)
    assert gate._gpu_reason() is None


def test_ort_has_cuda_reads_the_provider_list():
    ort = pytest.importorskip("onnxruntime")
    assert engines.ort_has_cuda() == ("CUDAExecutionProvider" in ort.get_available_providers())
