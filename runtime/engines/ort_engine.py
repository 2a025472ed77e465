"""ONNX Runtime: the CPU provider, or CUDA with IO binding, refusing ORT's silent fallback to the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from impeccable.core.errors import EngineError
from impeccable.core.cpu import physical_cores
from impeccable.core.model_files import resolve_onnx, resolve_window
from impeccable.runtime.engines import ENGINES
from impeccable.runtime.engines.base import EngineBase

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class OnnxRuntimeEngine(EngineBase):
    """An ONNX Runtime session over ``model.onnx`` (``fp16``: ``model.fp16.onnx``, ``int8``: ``model.int8.onnx``).

    Args:
        model: Model directory or ``.onnx`` file.
        batch_size: Images per call the caller plans (the graph's batch axis is dynamic: not a limit).
        device: ``cpu``, ``cuda``, ``cuda:<index>``, or ``auto`` (CUDA when onnxruntime-gpu is installed).
        precision: ``fp32``, ``fp16`` (the FP16 graph, float32 I/O; meant for CUDA) or ``int8`` (the Q/DQ graph
            of ``impeccable-export --int8``, float32 I/O; ORT fuses it into integer VNNI/AMX kernels on CPU).
        threads: Intra-op threads on the CPU [default: the physical cores this process may use].

    Raises:
        ModelError: The ONNX file is missing or unreadable.
        EngineError: Bad option, the session cannot be created, or CUDA was asked for and did not load.
    """

    name = "onnxruntime"

    def __init__(self, model: str | Path, batch_size: int = 8, device: str = "auto", precision: str = "fp32",
                 threads: int | None = None):
        spec = ENGINES[self.name]
        spec.check_precision(precision)
        path, card = resolve_onnx(model, spec.files[precision], "" if precision == "fp32" else f"--{precision}")
        if device == "auto":
            device = "cuda" if CUDA in ort.get_available_providers() else "cpu"
        kind, _, index = device.partition(":")
        if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
            raise EngineError("unknown onnxruntime device", received=device, expected="cpu, cuda, cuda:<n> or auto",
                              todo="pass device cpu or cuda")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No CPU arena: it grows in power-of-two extensions and keeps them, so its peak is a staircase far above
        # what a call needs (shipped model, 8 images: 5.6 GB with the arena, 2.9 GB without; issue 30,
        # benchmarks/results/*-memory-cpu.json); ORT's memory pattern still plans each shape's buffers once.
        options.enable_cpu_mem_arena = False
        # Hyper-threads only contend for the same FPUs in these conv-bound graphs: one thread per physical core.
        options.intra_op_num_threads = threads or physical_cores()
        self.device_id = int(index or 0)
        self.precision = precision
        self.session = self._session(path, options, kind)
        self.device = "cpu" if kind == "cpu" else f"cuda:{self.device_id}"
        (inp,), (out,) = self.session.get_inputs(), self.session.get_outputs()
        self.input_name, self.output_name = inp.name, out.name
        self.window = resolve_window(card, inp.shape, path)

    def _session(self, path: Path, options: ort.SessionOptions, kind: str) -> ort.InferenceSession:
        """A session on ``kind``; on CUDA, one that really runs on CUDA."""
        # use_tf32=0: "fp32" means fp32 (TF32 convolutions would miss the 1e-4 parity bound with torch).
        providers = [(CUDA, {"device_id": self.device_id, "use_tf32": 0}), CPU] if kind == "cuda" else [CPU]
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
            if kind == "cuda" and CUDA not in session.get_providers() and hasattr(ort, "preload_dlls"):
                # ORT drops to the CPU when it cannot dlopen CUDA/cuDNN; pip's nvidia-* wheels need preloading.
                ort.preload_dlls()
                session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise EngineError("onnxruntime cannot load the model", received=f"{path}: {exc}".splitlines()[0],
                              expected="a valid ONNX model", todo="re-export it: impeccable-export MODEL_DIR") from exc
        if kind == "cuda" and CUDA not in session.get_providers():
            raise EngineError("onnxruntime did not load its CUDA provider (it would silently run on the CPU)",
                              received=f"providers {session.get_providers()}", expected=CUDA,
                              todo="pip install '.[gpu]' in an environment without impeccable[cpu]'s "
                                   "onnxruntime (CUDA 13 and cuDNN 9 must be loadable), or pass device cpu")
        return session

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self.device == "cpu":
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        # IO binding: one host->device copy in, the output allocated on the device, one copy out.
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name,
                                    ort.OrtValue.ortvalue_from_numpy(batch, "cuda", self.device_id))
        binding.bind_output(self.output_name, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def release(self) -> None:
        self.session = None
