"""OpenVINO on the CPU, with a configurable inference precision (f32 or bf16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from impeccable.core.errors import EngineError
from impeccable.runtime.engines.base import EngineBase, engine_failure, resolve_onnx, window_from

PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16"}


class OpenVINOEngine(EngineBase):
    """OpenVINO compiled model over ``model.onnx`` on the CPU.

    Args:
        model: Model directory or ``.onnx`` file.
        batch_size: Largest batch expected (the batch axis stays dynamic).
        precision: ``f32`` (exact to ~1e-5 of ONNX Runtime) or ``bf16`` (AMX/AVX-512-bf16 CPUs; faster, and
            within the parity bounds of the tests: SSIM >= 0.999, max abs <= 2e-2).
        hint: OpenVINO performance hint: ``LATENCY`` (one request, all cores: what a sequential pipeline wants).
    """

    name = "openvino"

    def __init__(self, model: Path, batch_size: int = 8, precision: str = "f32", hint: str = "LATENCY"):
        if precision not in PRECISIONS:
            raise EngineError("unknown OpenVINO precision", received=precision, expected="f32 or bf16",
                              todo="pass precision f32 or bf16")
        path, card = resolve_onnx(model)
        self.window = window_from(card)
        self.precision = "fp32" if PRECISIONS[precision] == "f32" else "bf16"
        try:
            core = ov.Core()
            if self.precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
                raise EngineError("this CPU has no bf16 support", received=precision, expected="f32",
                                  todo="use precision f32 on this CPU")
            compiled = core.compile_model(core.read_model(str(path)), "CPU", {
                "INFERENCE_PRECISION_HINT": PRECISIONS[precision], "PERFORMANCE_HINT": hint})
        except EngineError:
            raise
        except Exception as exc:
            raise engine_failure(self.name, exc) from exc
        self.request = compiled.create_infer_request()
        self.output = compiled.output(0)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check(batch)
        try:
            result = self.request.infer({0: batch})[self.output]
        except Exception as exc:
            raise engine_failure(self.name, exc) from exc
        # The request reuses its output buffer on the next call: hand out a copy.
        return np.array(result, dtype=np.float32, copy=True)

    def close(self) -> None:
        self.request = None
