"""The engine protocol and the one shared input check.

Torch-free and backend-free: the concrete engines import their heavy packages themselves. Model-file lookup
lives in :mod:`impeccable.core.model_files`, the ONNX metadata reader in :mod:`impeccable.core.onnx_meta`, CPU
topology in :mod:`impeccable.core.cpu`.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from impeccable.core.errors import EngineError, ImpeccableError, InputError


class Engine(Protocol):
    """One inference backend: ``float32[N, 1, rows, cols]`` in, the same shape in ``[0, 1]`` out.

    Attributes:
        name: Registry name (``torch``, ``onnxruntime``, ``tensorrt``, ``openvino``).
        precision: What it computes in: ``fp32``, ``bf16`` or ``fp16``.
        device: ``cpu`` or ``cuda:<index>``.
        window: ``(rows, cols)`` of one image, from the model card.
        max_batch: Most images one call may carry (None: any).
    """

    name: str
    precision: str
    device: str
    window: tuple[int, int]
    max_batch: int | None

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


class EngineBase:
    """What every engine shares: the input check, backend errors re-raised as ours, the context manager.

    Subclasses set the attributes in ``__init__`` and implement :meth:`infer` and :meth:`release`.

    One call at a time per instance: threads that share an engine (the dask scheduler's, the pipeline's engine
    thread of each task) queue on its lock. Why: backends' request objects are not reentrant (an OpenVINO
    ``InferRequest`` raises "Infer Request is busy" or deadlocks when two threads infer on it), and one call
    already takes every core the engine was given.
    """

    name = "base"
    precision = "fp32"
    device = "cpu"
    window: tuple[int, int] = (0, 0)
    max_batch: int | None = None
    closed = False

    def __new__(cls, *args, **kwargs):
        engine = super().__new__(cls)
        engine._call_lock = threading.Lock()  # before any subclass __init__: they need not call ours
        return engine

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch: ``float32[N, 1, rows, cols]`` (C-contiguous) -> ``float32[N, 1, rows, cols]``.

        Raises:
            InputError: The batch does not fit (see :func:`check_batch`).
            EngineError: Too many images, a closed engine, or the backend failed.
        """
        check_batch(batch, self.window, self.max_batch)
        with self._call_lock:
            return self._checked_infer(batch)

    def _checked_infer(self, batch: np.ndarray) -> np.ndarray:
        if self.closed:
            raise EngineError(f"engine {self.name} is closed", todo="create a new engine")
        try:
            out = self.infer(batch)
        except ImpeccableError:
            raise
        except Exception as exc:  # every backend raises its own types; the caller gets ours, cause attached
            raise EngineError(f"engine {self.name} failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                              expected="a successful inference",
                              todo="check the model files, the batch size and the device") from exc
        if out.shape != batch.shape or out.dtype != np.float32:
            raise EngineError(f"engine {self.name} returned the wrong output", received=f"{out.dtype}{list(out.shape)}",
                              expected=f"float32{list(batch.shape)}", todo="re-export the model")
        return out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The backend call on a checked batch."""
        raise NotImplementedError

    def release(self) -> None:
        """Free the backend's sessions, buffers and streams."""

    def close(self) -> None:
        """Release the engine (idempotent); calling it afterwards raises EngineError."""
        if not self.closed:
            self.closed = True
            self.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(precision={self.precision!r}, device={self.device!r}, window={self.window}, "
                f"max_batch={self.max_batch})")


def check_batch(batch: np.ndarray, window: tuple[int, int], max_batch: int | None = None) -> None:
    """The one input check every engine runs before its backend sees a batch.

    Args:
        batch: Images, ``float32[N, 1, rows, cols]``, C-contiguous, ``1 <= N <= max_batch``.
        window: The model's ``(rows, cols)``.
        max_batch: The engine's capacity (None: any).

    Raises:
        InputError: Not an array, wrong rank, channel count, window, dtype, or not C-contiguous.
        EngineError: More images than the engine holds.
    """
    rows, cols = window
    expected = f"float32[N, 1, {rows}, {cols}] C-contiguous"
    if not isinstance(batch, np.ndarray):
        raise InputError("engine input is not a numpy array", received=type(batch).__name__, expected=expected,
                         todo="pass a numpy array")
    if batch.ndim != 4 or batch.shape[0] < 1 or batch.shape[1] != 1 or tuple(batch.shape[2:]) != (rows, cols):
        raise InputError("engine input has the wrong shape", received=list(batch.shape), expected=expected,
                         todo="pad sections to the model window (impeccable.core.tiling) and add the channel axis")
    if batch.dtype != np.float32:
        raise InputError("engine input has the wrong dtype", received=batch.dtype, expected=expected,
                         todo="normalize to float32 first (impeccable.core.amplitude.normalize)")
    if not batch.flags.c_contiguous:
        # Backends copy strided views silently (or, in polygraphy.cuda, refuse them): make the copy explicit.
        raise InputError("engine input is not C-contiguous", received=f"strides {batch.strides}", expected=expected,
                         todo="np.ascontiguousarray(batch), e.g. after flipping")
    if max_batch is not None and batch.shape[0] > max_batch:
        raise EngineError("engine input has too many images", received=batch.shape[0], expected=f"<= {max_batch}",
                          todo="lower --batch-size, or rebuild the engine for a larger batch")
