"""TensorRT: a lean executor on the named-tensor API, device memory and stream from ``polygraphy.cuda`` (no torch).

The plan's manifest is checked against this GPU, this TensorRT and the ONNX the plan was built from BEFORE the
plan is deserialized (TensorRT only logs a mismatch and returns None, or worse, runs a plan tuned for another
GPU): a stale plan is refused with the command that rebuilds it. ``tensorrt`` and ``polygraphy.cuda`` are
imported when an engine is created, so the plan selection and the manifest check run without a GPU.

Buffers are allocated once for the profile's largest batch; each call copies the batch in, sets the input
shape, reads the output shape back from the context, runs ``execute_async_v3`` on one non-default stream and
copies the output out. Every boolean the TensorRT API returns is checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impeccable.core.errors import EngineError, ImpeccableError, ModelError
from impeccable.core.cuda_libs import expose_cudart
from impeccable.core.manifest import check_fresh
from impeccable.core.model_files import resolve_window
from impeccable.runtime.engines.base import EngineBase


def select_plan(model: Path, precision: str | None = None) -> tuple[Path, dict]:
    """The plan to run and its checked manifest: ``model`` itself, or the model directory's plan for this GPU.

    ``precision`` (``fp16`` or ``int8``) picks among a directory's plans by name (``model.<gpu>.<precision>.plan``);
    None takes the first fresh one.

    Raises:
        ModelError: No plan, or none fresh for this GPU and TensorRT (the first one's reason is given).
    """
    if model.suffix == ".plan":
        if not model.is_file():
            raise ModelError("TensorRT plan not found", received=str(model), expected="an existing .plan file",
                             todo="check the path, or pass the model directory")
        return model, check_fresh(model)
    if not model.is_dir():
        raise ModelError("model not found", received=str(model), expected="a model directory or a .plan file",
                         todo="check the path")
    plans = sorted(model.glob(f"*.{precision}.plan" if precision else "*.plan"))
    if not plans:
        flag = f"--{precision or 'fp16'}"
        raise ModelError("model directory has no TensorRT plan", received=str(model),
                         expected=f"model.<gpu>.{precision or 'fp16'}.plan with its .json manifest",
                         todo=f"build one on this GPU: impeccable-export {model} {flag}")
    first_error = None
    for plan in plans:  # one plan per GPU model may sit in a directory: take the one built for this one
        try:
            return plan, check_fresh(plan)
        except ModelError as exc:
            first_error = first_error or exc
    raise first_error


class TensorRTEngine(EngineBase):
    """A deserialized TensorRT plan with static device buffers, on the current CUDA device.

    Args:
        model: Model directory holding the plan for this GPU, or the ``.plan`` file.
        batch_size: Images per call the caller plans; must fit the plan's optimization profile.
        precision: ``fp16`` or ``int8``: which of a directory's plans (``model.<gpu>.<precision>.plan``) to run
            [default: the first fresh one]. Both are strongly typed: the precision is in the ONNX they came from.

    Raises:
        ModelError: No plan, stale plan, or a plan TensorRT cannot deserialize.
        EngineError: ``batch_size`` beyond the profile, or the executor cannot be set up.
    """

    name = "tensorrt"
    precision = "fp16"
    device = "cuda:0"

    def __init__(self, model: str | Path, batch_size: int = 8, precision: str | None = None):
        if precision not in (None, "fp16", "int8"):
            raise EngineError("unknown tensorrt precision", received=precision, expected="fp16 or int8",
                              todo="pass precision fp16 or int8")
        self.buffers: list = []
        self.stream = self.context = self.engine = self.runtime = None
        plan, manifest = select_plan(Path(model), precision)
        try:
            self._setup(plan, manifest, batch_size)
        except ImpeccableError:
            self.release()  # nobody else can: the half-built engine never reaches the caller
            raise
        except Exception as exc:  # TensorRT / CUDA errors, e.g. libcudart not found
            self.release()
            raise EngineError("TensorRT engine setup failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                              expected="a CUDA device, libcudart and a valid plan",
                              todo="check nvidia-smi and pip install '.[gpu]'") from exc

    def _setup(self, plan: Path, manifest: dict, batch_size: int) -> None:
        import tensorrt as trt

        expose_cudart()  # before polygraphy.cuda looks for libcudart: the CUDA 13 wheels' folder is not on its list
        from polygraphy import cuda
        from polygraphy.datatype import DataType

        rebuild = f"rebuild the plan: impeccable-export {plan.parent} --fp16"
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:  # TensorRT logs why and returns None
            raise ModelError("TensorRT cannot deserialize the plan", received=str(plan),
                             expected=f"a plan for TensorRT {trt.__version__} on this GPU", todo=rebuild)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1 or any(
                self.engine.get_tensor_dtype(n) != trt.DataType.FLOAT for n in names):
            raise ModelError("TensorRT plan has unexpected inputs/outputs",
                             received=f"inputs {inputs}, outputs {outputs}",
                             expected="one float32 input and one float32 output", todo=rebuild)
        (self.input_name,), (self.output_name,) = inputs, outputs
        low, _, high = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
        self.window = resolve_window(manifest.get("card"), high, plan)
        self.max_batch = int(high[0])
        if not low[0] <= batch_size <= self.max_batch:
            raise EngineError("batch size outside the plan's profile", received=batch_size,
                              expected=f"{low[0]}..{self.max_batch}",
                              todo=f"lower --batch-size, or {rebuild} with a larger max batch")
        self.precision = str(manifest.get("precision", "fp16"))
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EngineError("TensorRT cannot create an execution context", received=str(plan),
                              expected="enough free GPU memory", todo="free GPU memory or lower --batch-size")
        # A non-default stream: the legacy default stream synchronizes with everything else on the device.
        self.stream = cuda.Stream()
        for name in (self.input_name, self.output_name):
            # Inputs and outputs have the same shape here; sized once for the largest batch, never reallocated.
            buf = cuda.DeviceArray(shape=high, dtype=DataType.FLOAT32)
            self.buffers.append(buf)
            if not self.context.set_tensor_address(name, buf.ptr):
                raise EngineError("TensorRT refused a tensor address", received=name, expected="a device buffer",
                                  todo=rebuild)
        self.d_input, self.d_output = self.buffers

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if not self.context.set_input_shape(self.input_name, batch.shape):
            raise EngineError("TensorRT refused the input shape", received=list(batch.shape),
                              expected=f"batch 1..{self.max_batch}", todo="lower --batch-size")
        shape = tuple(self.context.get_tensor_shape(self.output_name))
        if shape != batch.shape:
            raise EngineError("TensorRT reports an unexpected output shape", received=list(shape),
                              expected=list(batch.shape), todo="rebuild the plan from the model's ONNX")
        self.d_input.copy_from(batch, stream=self.stream)
        if not self.context.execute_async_v3(self.stream.ptr):
            raise EngineError("TensorRT execution failed", received=list(batch.shape), expected="success",
                              todo="see the TensorRT log above")
        out = np.empty(shape, dtype=np.float32)
        self.d_output.view(shape=shape).copy_to(out, stream=self.stream)
        self.stream.synchronize()
        return out

    def release(self) -> None:
        # The context references the buffers: drop it first, then free device memory and the stream.
        self.context = self.engine = self.runtime = None
        for buf in self.buffers:
            buf.free()
        self.buffers = []
        if self.stream is not None:
            self.stream.free()
            self.stream = None
