"""Inference engines behind one protocol, chosen by name (DESIGN §6).

Each engine is one small module imported only when chosen, so a CPU-only install never imports TensorRT,
OpenVINO or torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from pathlib import Path

from impeccable.core.errors import EngineError
from impeccable.runtime.engines.base import Engine

#: name -> (module, class, the package that must be importable, the command that installs it)
ENGINES: dict[str, tuple[str, str, str, str]] = {
    "torch": ("impeccable.runtime.engines.torch_engine", "TorchEngine", "torch", "pip install 'impeccable[train]'"),
    "onnxruntime": ("impeccable.runtime.engines.ort_engine", "OnnxRuntimeEngine", "onnxruntime",
                    "pip install onnxruntime (CPU) or 'impeccable[gpu]' (CUDA)"),
    "tensorrt": ("impeccable.runtime.engines.trt_engine", "TensorRTEngine", "tensorrt",
                 "pip install 'impeccable[gpu]' on a machine with an NVIDIA GPU"),
    "openvino": ("impeccable.runtime.engines.ov_engine", "OpenVINOEngine", "openvino",
                 "pip install 'impeccable[openvino]'"),
}


def is_installed(name: str) -> bool:
    """Whether the package an engine needs can be imported (cheap: no import happens)."""
    return importlib.util.find_spec(ENGINES[name][2]) is not None


def create_engine(name: str, model: str | Path, batch_size: int = 8, **options: object) -> Engine:
    """Create the engine ``name`` for a model.

    Args:
        name: One of :data:`ENGINES`.
        model: A model directory (card + artifacts), or a ``.onnx`` / ``.plan`` file.
        batch_size: The most images one call will carry (sizes device buffers and TensorRT profiles).
        **options: Engine-specific options (``precision``, ``device``, ``threads``...).

    Raises:
        EngineError: Unknown name, or its package is not installed.
    """
    if name not in ENGINES:
        raise EngineError("unknown engine", received=repr(name), expected=f"one of {', '.join(ENGINES)}",
                          todo="pass --engine with one of these")
    module_name, class_name, package, install = ENGINES[name]
    if importlib.util.find_spec(package) is None:
        raise EngineError(f"engine {name} needs the package {package}, which is not installed", received=name,
                          expected=f"{package} importable", todo=install)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(f"engine {name} cannot be imported", received=str(exc), expected=f"a working {package}",
                          todo=install) from exc
    return getattr(module, class_name)(Path(model), batch_size=batch_size, **options)


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


def default_engine_name(model: str | Path) -> str:
    """The fastest installed engine whose artifacts the model has.

    GPU: TensorRT (when a plan for this GPU exists beside the model), then ONNX Runtime (CUDA). CPU: OpenVINO,
    then ONNX Runtime, then torch (which only needs the safetensors weights).
    """
    model = Path(model)
    has_onnx = model.suffix == ".onnx" or (model / "model.onnx").is_file()
    if _has_gpu() and is_installed("tensorrt") and (model.suffix == ".plan" or any(model.glob("*.plan"))):
        return "tensorrt"
    if model.suffix == ".plan":
        return "tensorrt"
    if has_onnx and is_installed("openvino") and not _has_gpu():
        return "openvino"
    if has_onnx and is_installed("onnxruntime"):
        return "onnxruntime"
    if is_installed("torch"):
        return "torch"
    raise EngineError("no engine can run this model", received=str(model),
                      expected="model.onnx with onnxruntime/openvino installed, or torch",
                      todo=f"run impeccable-export {model}, or pip install 'impeccable[openvino]'")
