"""TensorRT: a lean executor on the named-tensor API, device memory through polygraphy.cuda (no torch).

Buffers are allocated once for the profile's max batch; each call copies the batch in, sets the input shape,
runs ``execute_async_v3`` on one non-default stream and copies the output (shape read from the context) out.
The plan's manifest is checked against this GPU, this TensorRT and the ONNX it was built from BEFORE the
plan is deserialized: a stale plan is refused with the command that rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorrt as trt
from polygraphy import cuda

from impeccable.core.errors import EngineError, ModelError
from impeccable.runtime.engines.base import EngineBase, engine_failure, window_from


def find_plan(model: Path) -> Path:
    """The ``.plan`` file of a model: the path itself, or the only/first ``*.fp16.plan`` in the directory."""
    if model.suffix == ".plan":
        return model
    plans = sorted(model.glob("*.plan"))
    if not plans:
        raise ModelError("model directory has no TensorRT plan", received=str(model), expected="model.<gpu>.fp16.plan",
                         todo=f"run impeccable-export {model} --fp16 on this GPU")
    return plans[0]


def check_manifest(plan: Path) -> dict:
    """Read the plan's manifest and refuse a stale plan (another GPU, TensorRT or ONNX)."""
    manifest_path = plan.with_name(plan.name + ".json")
    if not manifest_path.is_file():
        raise ModelError("TensorRT plan has no manifest", received=str(plan), expected=str(manifest_path),
                         todo=f"rebuild it: impeccable-export {plan.parent} --fp16")
    manifest = json.loads(manifest_path.read_text())
    from impeccable.export.manifest import check_plan, current_environment, onnx_hash_for

    check_plan(manifest, current_environment(), onnx_hash_for(plan.parent, manifest))
    return manifest


class TensorRTEngine(EngineBase):
    """A deserialized FP16 TensorRT engine with static device buffers.

    Args:
        model: Model directory holding the plan, or the ``.plan`` file.
        batch_size: Images per call; must lie in the plan's profile.
    """

    name = "tensorrt"
    precision = "fp16"

    def __init__(self, model: Path, batch_size: int = 8, **_: object):
        plan = find_plan(model)
        manifest = check_manifest(plan)
        self.window = window_from(manifest.get("card", {}))
        profile = manifest.get("profile", {})
        self.max_batch = int(profile.get("max", batch_size))
        if batch_size > self.max_batch:
            raise EngineError("batch larger than the plan's profile", received=batch_size,
                              expected=f"<= {self.max_batch}", todo="lower --batch-size or rebuild with --max-batch")
        self.device = "cuda:0"
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise ModelError("TensorRT could not deserialize the plan", received=str(plan),
                             expected="a plan built by this TensorRT on this GPU",
                             todo=f"rebuild it: impeccable-export {plan.parent} --fp16")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        rows, cols = self.window
        self.stream = cuda.Stream()
        self.d_input = cuda.DeviceArray(shape=(self.max_batch, 1, rows, cols), dtype=np.float32)
        self.d_output = cuda.DeviceArray(shape=(self.max_batch, 1, rows, cols), dtype=np.float32)
        for name, buf in ((self.input_name, self.d_input), (self.output_name, self.d_output)):
            if not self.context.set_tensor_address(name, buf.ptr):
                raise engine_failure(self.name, RuntimeError(f"set_tensor_address({name}) failed"))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check(batch)
        n = batch.shape[0]
        try:
            if not self.context.set_input_shape(self.input_name, batch.shape):
                raise RuntimeError(f"set_input_shape{batch.shape} refused: outside the plan's profile")
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            self.d_input.view(shape=batch.shape).copy_from(batch, stream=self.stream)
            if not self.context.execute_async_v3(self.stream.ptr):
                raise RuntimeError("execute_async_v3 failed")
            host = np.empty(out_shape, dtype=np.float32)
            self.d_output.view(shape=out_shape).copy_to(host, stream=self.stream)
            self.stream.synchronize()
        except Exception as exc:
            raise engine_failure(self.name, exc) from exc
        return host[:n]

    def close(self) -> None:
        for attr in ("d_input", "d_output", "stream"):
            buf = getattr(self, attr, None)
            if buf is not None:
                buf.free()
                setattr(self, attr, None)
        self.context = self.engine = self.runtime = None
