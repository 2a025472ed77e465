"""Inference engines behind one protocol, chosen by name (DESIGN §6), one registry entry per engine.

Each engine is one small module imported only when it is created, so a CPU-only install never imports
TensorRT, OpenVINO or torch. Its :class:`EngineSpec` in :data:`ENGINES` carries everything the rest of the
toolkit needs to know without importing it: packages, install command, precisions and the file each one runs
from, devices, options, and its place in the default choice.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from impeccable.core.card import CARD_NAME, ONNX_FP16_NAME, ONNX_INT8_NAME, ONNX_NAME, WEIGHTS_NAME
from impeccable.core.errors import EngineError, ImpeccableError, ModelError
from impeccable.core.extras import install_hint
from impeccable.runtime.engines.base import Engine, EngineBase, check_batch

__all__ = ["ENGINES", "Engine", "EngineBase", "EngineSpec", "check_batch", "create_engine", "default_engine_name",
           "installed", "precision_help"]


@dataclass(frozen=True)
class EngineSpec:
    """Everything the toolkit knows about one engine without importing it: one entry per engine in :data:`ENGINES`.

    The CLI's help, the default-engine choice, the install hints, the precision checks of the engine classes and
    the benchmarks' options all read these fields, so adding an engine is its module plus one entry here, and
    adding a precision to an engine is one entry in ``files``.

    Attributes:
        name: Registry name (``--engine``).
        target: ``"module:Class"``, imported on first use.
        packages: Import names the engine needs (checked with ``find_spec``: nothing is imported).
        install: The command that installs them.
        files: Precision -> the model-directory file that precision runs from; its keys are the precisions the
            engine accepts, in the order the help lists them.
        default_precision: What runs when no precision is named (one that passes the parity tests).
        devices: Device kinds the engine runs on (``cpu``, ``cuda``).
        options: Constructor options the CLI and the benchmarks may pass (``precision``, ``device``).
        cpu_rank: Place in the default choice on a machine without a usable GPU (None: never the CPU default).
        gpu_rank: Place in the default choice on an NVIDIA machine (None: never the GPU default).
        memory: Precision -> ``(base, per_image)``: measured peak resident bytes of a process running the engine,
            ``base + per_image * images`` per call of 320 x 1280 images (``benchmarks/memory.py``); they bound
            ``--batch-size`` (:mod:`impeccable.runtime.memory`). A precision without figures is bounded by the
            largest measured ones.
    """

    name: str
    target: str
    packages: tuple[str, ...]
    install: str
    files: Mapping[str, str]
    default_precision: str
    devices: tuple[str, ...] = ("cpu",)
    options: tuple[str, ...] = ("precision",)
    cpu_rank: int | None = None
    gpu_rank: int | None = None
    memory: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions this engine accepts."""
        return tuple(self.files)

    def check_precision(self, precision: str) -> str:
        """``precision`` if this engine runs it.

        Raises:
            EngineError: Not one of :attr:`precisions` (the message lists them).
        """
        if precision not in self.files:
            choices = " or ".join(self.precisions)
            raise EngineError(f"unknown {self.name} precision", received=precision, expected=choices,
                              todo=f"pass precision {choices}")
        return precision


_GPU_INSTALL = f"{install_hint('gpu')}, on a machine with an NVIDIA GPU (CUDA 13)"

#: Measured ``(base, per_image)`` peak resident bytes per engine and precision, 320 x 1280 images on the CPU:
#: ``nice -n 10 python -m impeccable.benchmarks.memory --engines onnxruntime:fp32,openvino:fp32,openvino:bf16
#: --images 1,4,8,16`` (a fresh process per point; the line bounds every measured peak), shipped model v5,
#: benchmarks/results/2026-12-06-memory-cpu.json. ONNX Runtime without its CPU arena (see ort_engine). int8: the
#: same command with ``--engines onnxruntime:int8,openvino:int8 --images 1,4,8`` on the shipped v12's
#: model.int8.onnx (14 % of its FLOPs in INT8, float islands in f32), benchmarks/results/2026-12-07-int8-v12-export/.
_MEMORY = {
    "onnxruntime": {"fp32": (595_000_000, 290_000_000), "int8": (455_000_000, 308_000_000)},
    "openvino": {"fp32": (348_000_000, 286_000_000), "bf16": (294_000_000, 139_000_000),
                 "int8": (335_000_000, 262_000_000)},
}

#: name -> what the engine needs and offers. The CPU default prefers OpenVINO (the base install's engine,
#: the fastest on the x86 CPUs measured), the GPU default a TensorRT plan fresh for this GPU, then ONNX Runtime
#: on CUDA.
ENGINES: dict[str, EngineSpec] = {spec.name: spec for spec in (
    EngineSpec("torch", "impeccable.runtime.engines.torch_engine:TorchEngine",
               ("torch", "segmentation_models_pytorch", "safetensors"), install_hint("train"),
               files={"fp32": WEIGHTS_NAME, "bf16": WEIGHTS_NAME}, default_precision="fp32",
               devices=("cpu", "cuda"), options=("precision", "device"), cpu_rank=2),
    EngineSpec("onnxruntime", "impeccable.runtime.engines.ort_engine:OnnxRuntimeEngine",
               ("onnxruntime",), f"{install_hint('cpu')}, or '.[gpu]' for NVIDIA GPUs (CUDA 13)",
               files={"fp32": ONNX_NAME, "fp16": ONNX_FP16_NAME, "int8": ONNX_INT8_NAME}, default_precision="fp32",
               devices=("cpu", "cuda"), options=("precision", "device"), cpu_rank=1, gpu_rank=1,
               memory=_MEMORY["onnxruntime"]),
    EngineSpec("tensorrt", "impeccable.runtime.engines.trt_engine:TensorRTEngine",
               ("tensorrt", "polygraphy"), _GPU_INSTALL,
               files={"fp16": "model.<gpu>.fp16.plan", "int8": "model.<gpu>.int8.plan"}, default_precision="fp16",
               devices=("cuda",), options=("precision",), gpu_rank=0),
    EngineSpec("openvino", "impeccable.runtime.engines.ov_engine:OpenVINOEngine",
               ("openvino",), f"{install_hint('openvino')} (OpenVINO is in the base install)",
               files={"fp32": ONNX_NAME, "bf16": ONNX_NAME, "int8": ONNX_INT8_NAME}, default_precision="fp32",
               cpu_rank=0, memory=_MEMORY["openvino"]),
)}


def precision_help() -> str:
    """``"torch fp32|bf16, onnxruntime fp32|fp16, openvino fp32|bf16"``: the engines that offer a choice."""
    return ", ".join(f"{s.name} {'|'.join(s.precisions)}" for s in ENGINES.values() if len(s.precisions) > 1)


def missing_packages(name: str) -> list[str]:
    """The packages engine ``name`` needs that are not installed (cheap: nothing is imported)."""
    return [p for p in ENGINES[name].packages if importlib.util.find_spec(p) is None]


def installed(name: str) -> bool:
    """Whether engine ``name``'s packages are installed."""
    return not missing_packages(name)


def _check_name(name: str) -> None:
    if name not in ENGINES:
        raise EngineError("unknown engine", received=repr(name), expected=f"one of {', '.join(ENGINES)}",
                          todo="pass --engine with one of these")


def check_installed(name: str) -> None:
    """Refuse an unknown engine name, or one whose packages are not installed (nothing is imported).

    Raises:
        EngineError: The message names the missing packages and the install command.
    """
    _check_name(name)
    missing = missing_packages(name)
    if missing:
        names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        verb = "are" if len(missing) > 1 else "is"
        raise EngineError(f"engine {name} needs {names}, which {verb} not installed", received=f"--engine {name}",
                          expected=f"{names} importable", todo=ENGINES[name].install)


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
    check_installed(name)
    spec = ENGINES[name]
    module_name, class_name = spec.target.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:  # installed but broken (missing shared library, ABI mismatch)
        raise EngineError(f"engine {name} cannot be imported", received=str(exc).splitlines()[0],
                          expected=f"a working {', '.join(spec.packages)}", todo=f"reinstall: {spec.install}") from exc
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
    """Whether the installed ONNX Runtime offers its CUDA provider (imports onnxruntime, initializes no CUDA).

    The provider list, not a package name: the CPU build satisfies ``find_spec("onnxruntime")``, and a CUDA
    build may come under another distribution name (onnxruntime-gpu, a source build).
    """
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    try:
        import onnxruntime
    except ImportError:  # installed but broken (a missing shared library)
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _fresh_plan(model: Path) -> bool:
    try:
        from impeccable.runtime.engines.trt_engine import select_plan

        select_plan(model)
        return True
    except (ImpeccableError, ImportError):
        return False


def _has_file(model: Path, name: str) -> bool:
    """Whether ``model`` (a model directory, or a lone ``.onnx`` file) provides the file ``name``."""
    if model.suffix == ".onnx":
        return name == ONNX_NAME  # a lone graph serves the engines' default (float32) precision
    return (model / name).is_file()


def _gpu_ready(spec: EngineSpec, model: Path) -> bool:
    """Whether ``spec`` can run ``model`` on this machine's GPU with its default precision."""
    if spec.name == "tensorrt":  # a plan is only usable when built for this GPU and this TensorRT
        return model.suffix != ".onnx" and _fresh_plan(model)
    if spec.name == "onnxruntime" and not ort_has_cuda():
        return False
    return _has_file(model, spec.files[spec.default_precision])


def default_engine_name(model: str | Path) -> str:
    """The fastest installed engine that can run ``model`` with the artifacts it has.

    On an NVIDIA machine: the engines with a ``gpu_rank``, in that order (TensorRT when a plan fresh for this
    GPU exists, then ONNX Runtime on CUDA). Then the ones with a ``cpu_rank`` (OpenVINO, ONNX Runtime, both on
    ``model.onnx``, then torch on the safetensors). Every engine's default precision passes the parity tests.

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
    if nvidia_gpu():
        for spec in sorted((s for s in ENGINES.values() if s.gpu_rank is not None), key=lambda s: s.gpu_rank):
            if installed(spec.name) and _gpu_ready(spec, model):
                return spec.name
    for spec in sorted((s for s in ENGINES.values() if s.cpu_rank is not None), key=lambda s: s.cpu_rank):
        if installed(spec.name) and _has_file(model, spec.files[spec.default_precision]):
            return spec.name
    raise ModelError("no installed engine can run this model", received=str(model),
                     expected=f"{ONNX_NAME} (openvino, onnxruntime) or {WEIGHTS_NAME} with torch installed",
                     todo=f"run impeccable-export {model}, or pip install '.[train]' for the torch engine")
