"""Inference engines behind one protocol, chosen by name (DESIGN §6).

Each engine is one small module imported only when it is created, so a CPU-only install never imports
TensorRT, OpenVINO or torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import shutil
from pathlib import Path

from impeccable.core.card import CARD_NAME, ONNX_NAME, WEIGHTS_NAME
from impeccable.core.errors import EngineError, ImpeccableError, ModelError
from impeccable.runtime.engines.base import Engine, EngineBase, check_batch

__all__ = ["ENGINES", "Engine", "EngineBase", "check_batch", "create_engine", "default_engine_name", "installed"]

#: name -> "module:Class", imported on first use.
ENGINES: dict[str, str] = {
    "torch": "impeccable.runtime.engines.torch_engine:TorchEngine",
    "onnxruntime": "impeccable.runtime.engines.ort_engine:OnnxRuntimeEngine",
    "tensorrt": "impeccable.runtime.engines.trt_engine:TensorRTEngine",
    "openvino": "impeccable.runtime.engines.ov_engine:OpenVINOEngine",
}

#: name -> (packages the engine imports, the install command that provides them)
REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "torch": (("torch", "segmentation_models_pytorch", "safetensors"), "pip install 'impeccable[train]'"),
    "onnxruntime": (("onnxruntime",), "pip install impeccable (CPU) or 'impeccable[gpu]' (CUDA)"),
    "tensorrt": (("tensorrt", "polygraphy"), "pip install 'impeccable[gpu]' on a machine with an NVIDIA GPU"),
    "openvino": (("openvino",), "pip install 'impeccable[openvino]'"),
}


def missing_packages(name: str) -> list[str]:
    """The packages engine ``name`` needs that are not installed (cheap: nothing is imported)."""
    return [p for p in REQUIREMENTS[name][0] if importlib.util.find_spec(p) is None]


def installed(name: str) -> bool:
    """Whether engine ``name``'s packages are installed."""
    return not missing_packages(name)


def _check_name(name: str) -> None:
    if name not in ENGINES:
        raise EngineError("unknown engine", received=repr(name), expected=f"one of {', '.join(ENGINES)}",
                          todo="pass --engine with one of these")


def create_engine(name: str, model: str | Path, batch_size: int = 8, **options: object) -> Engine:
    """Create engine ``name`` for a model.

    Args:
        name: One of :data:`ENGINES`.
        model: A model directory (card + artifacts), or a ``.onnx`` / ``.plan`` file.
        batch_size: Images per engine call the caller plans (sizes TensorRT buffers; checked against its profile).
        **options: Engine keyword arguments (``precision``, ``device``, ``threads``, ``hint``: see each class).

    Raises:
        EngineError: Unknown name, unknown option, package not installed, or the backend failed to load.
        ModelError: Missing or stale model files (the message names the command that creates them).
    """
    _check_name(name)
    missing = missing_packages(name)
    if missing:
        raise EngineError(f"engine {name} needs {', '.join(missing)}, which is not installed", received=name,
                          expected=f"{', '.join(missing)} importable", todo=REQUIREMENTS[name][1])
    module_name, class_name = ENGINES[name].split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:  # installed but broken (missing shared library, ABI mismatch)
        raise EngineError(f"engine {name} cannot be imported", received=str(exc).splitlines()[0],
                          expected=f"a working {', '.join(REQUIREMENTS[name][0])}",
                          todo=f"reinstall: {REQUIREMENTS[name][1]}") from exc
    if int(batch_size) < 1:
        raise EngineError("batch size must be positive", received=batch_size, expected=">= 1",
                          todo="pass --batch-size 1 or more")
    try:
        inspect.signature(cls).bind(model, batch_size, **options)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("model", "batch_size")]
        raise EngineError(f"engine {name} does not take these options", received=sorted(options),
                          expected=f"some of {accepted}", todo="drop the unknown options") from exc
    return cls(model, batch_size=int(batch_size), **options)


def nvidia_gpu() -> bool:
    """Whether an NVIDIA driver is present (cheap: no CUDA initialization)."""
    return os.path.isdir("/proc/driver/nvidia/gpus") or shutil.which("nvidia-smi") is not None


def ort_has_cuda() -> bool:
    """Whether the installed ONNX Runtime is the CUDA build (package metadata only, nothing imported)."""
    try:
        importlib.metadata.distribution("onnxruntime-gpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _fresh_plan(model: Path) -> bool:
    try:
        from impeccable.runtime.engines.trt_engine import select_plan

        select_plan(model)
        return True
    except (ImpeccableError, ImportError):
        return False


def default_engine_name(model: str | Path) -> str:
    """The fastest installed engine that can run ``model`` with the artifacts it has.

    On an NVIDIA machine: TensorRT when a plan fresh for this GPU exists, then ONNX Runtime on CUDA.
    Otherwise: OpenVINO, then ONNX Runtime (both need ``model.onnx``), then torch (the safetensors).
    Every engine's default precision is one that passes the parity tests.

    Raises:
        ModelError: No engine installed here can run the model's files (says what to export or install).
    """
    model = Path(model)
    if model.suffix == ".plan":
        return "tensorrt"
    if model.is_dir() and not any(p.suffix in (".json", ".onnx", ".safetensors", ".plan") for p in model.iterdir()):
        raise ModelError("no model files in the model directory", received=str(model),
                         expected=f"{CARD_NAME} with {ONNX_NAME} or {WEIGHTS_NAME}",
                         todo="pass the directory impeccable-train or impeccable-export wrote (or no --model)")
    has_onnx = model.suffix == ".onnx" or (model / ONNX_NAME).is_file()
    gpu = nvidia_gpu()
    if gpu and installed("tensorrt") and _fresh_plan(model):
        return "tensorrt"
    if gpu and has_onnx and ort_has_cuda():
        return "onnxruntime"
    if has_onnx and installed("openvino"):
        return "openvino"
    if has_onnx and installed("onnxruntime"):
        return "onnxruntime"
    if (model / WEIGHTS_NAME).is_file() and installed("torch"):
        return "torch"
    raise ModelError("no installed engine can run this model", received=str(model),
                     expected=f"{ONNX_NAME} (onnxruntime, openvino) or {WEIGHTS_NAME} with torch installed",
                     todo=f"run impeccable-export {model}, or pip install 'impeccable[train]' for the torch engine")
