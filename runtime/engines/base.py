"""The engine protocol, the one shared input check, and where an engine finds its model files.

Torch-free and backend-free: the concrete engines import their heavy packages themselves.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from impeccable.core.card import CARD_NAME, ONNX_FP16_NAME, ONNX_INT8_NAME, ONNX_NAME, read_card, window_of
from impeccable.core.errors import EngineError, ImpeccableError, InputError, ModelError


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
    """

    name = "base"
    precision = "fp32"
    device = "cpu"
    window: tuple[int, int] = (0, 0)
    max_batch: int | None = None
    closed = False

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch: ``float32[N, 1, rows, cols]`` (C-contiguous) -> ``float32[N, 1, rows, cols]``.

        Raises:
            InputError: The batch does not fit (see :func:`check_batch`).
            EngineError: Too many images, a closed engine, or the backend failed.
        """
        check_batch(batch, self.window, self.max_batch)
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
                         todo="pad sections to the model window (impeccable.runtime.tiling) and add the channel axis")
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


# ---- model files -----------------------------------------------------------------------------------------------

def _varint(fh: BinaryIO) -> int | None:
    """One protobuf varint from ``fh`` (None at end of file)."""
    value, shift = 0, 0
    while byte := fh.read(1):
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read without onnx or a session.

    ``ModelProto`` is a flat protobuf message: this walks its top-level fields, seeking past the graph (the
    weights), and decodes field 14 (``metadata_props``: ``key`` = 1, ``value`` = 2). Reading the card this way
    costs milliseconds instead of a full model load, and keeps ``onnx`` out of the runtime's dependencies.

    Raises:
        ModelError: The file is not a readable protobuf.
    """
    props: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            while (tag := _varint(fh)) is not None:
                field, wire = tag >> 3, tag & 7
                if wire == 0:
                    _varint(fh)
                elif wire == 1:
                    fh.seek(8, os.SEEK_CUR)
                elif wire == 5:
                    fh.seek(4, os.SEEK_CUR)
                elif wire == 2:
                    size = _varint(fh)
                    if size is None:
                        break
                    if field != 14:
                        fh.seek(size, os.SEEK_CUR)
                        continue
                    entry, key, value = io.BytesIO(fh.read(size)), "", ""
                    while (sub := _varint(entry)) is not None:  # StringStringEntryProto: strings only
                        text = entry.read(_varint(entry) or 0).decode("utf-8")
                        key, value = (text, value) if sub >> 3 == 1 else (key, text)
                    props[key] = value
                else:
                    raise ValueError(f"unexpected protobuf wire type {wire}")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError("cannot read the ONNX file", received=f"{path}: {exc}", expected="an ONNX model",
                         todo="re-export it: impeccable-export MODEL_DIR") from exc
    return props


def card_beside(path: Path) -> dict | None:
    """The card of a single model file: its embedded ``card`` (ONNX metadata), else ``model.json`` beside it."""
    if path.suffix == ".onnx":
        raw = onnx_metadata(path).get("card")
        if raw:
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ModelError("the ONNX file's card is not valid JSON", received=str(path), expected="a JSON card",
                                 todo="re-export it: impeccable-export MODEL_DIR") from exc
    if (path.parent / CARD_NAME).is_file():
        return read_card(path.parent)
    return None


def resolve_onnx(model: str | Path, fp16: bool = False, int8: bool = False) -> tuple[Path, dict | None]:
    """The ONNX file an engine loads, and the card (None when a lone file carries none).

    Args:
        model: A model directory (uses ``model.onnx``, ``model.fp16.onnx`` with ``fp16``, ``model.int8.onnx``
            with ``int8``) or a ``.onnx`` file.
        fp16: Use the FP16 graph of a model directory.
        int8: Use the INT8 (Q/DQ) graph of a model directory.

    Raises:
        ModelError: Missing directory, card or ONNX file; the message names the command that writes it.
    """
    model = Path(model)
    if model.suffix == ".onnx":
        if not model.is_file():
            raise ModelError("ONNX file not found", received=str(model), expected="an existing .onnx file",
                             todo="check the path, or pass the model directory")
        return model, card_beside(model)
    if model.suffix == ".plan":
        raise ModelError("this engine reads ONNX, not a TensorRT plan", received=str(model),
                         expected="a model directory or a .onnx file", todo="use --engine tensorrt for a .plan")
    card = read_card(model)
    name = ONNX_INT8_NAME if int8 else ONNX_FP16_NAME if fp16 else ONNX_NAME
    path = model / name
    if not path.is_file():
        flag = " --int8" if int8 else " --fp16" if fp16 else ""
        raise ModelError(f"model directory has no {name}", received=str(model), expected=str(path),
                         todo=f"run impeccable-export {model}{flag}, or use --engine torch")
    return path, card


def resolve_window(card: dict | None, graph_shape: Sequence[object], source: Path) -> tuple[int, int]:
    """The model's ``(rows, cols)``: the card's ``input_size``, checked against the graph's static input shape.

    Args:
        card: The model card (None: take the window from the graph).
        graph_shape: The graph input's shape, ``[batch, 1, rows, cols]``; symbolic dims as str/None/-1.
        source: The model file (for messages).

    Raises:
        ModelError: Card and graph disagree, or neither gives a static window.
    """
    dims = [d if isinstance(d, int) and d > 0 else None for d in list(graph_shape)[2:]]
    if card is not None and "input_size" in card:
        window = window_of(card)
        if len(dims) == 2 and any(d is not None and d != w for d, w in zip(dims, window)):
            raise ModelError("model card and graph disagree on the window", received=f"graph {list(graph_shape)}",
                             expected=f"[N, 1, {window[0]}, {window[1]}] (card input_size)",
                             todo="re-export the model from its directory: impeccable-export MODEL_DIR")
        return window
    if len(dims) != 2 or None in dims:
        raise ModelError("cannot tell the model's input window", received=f"{source}: input {list(graph_shape)}",
                         expected="a card (ONNX metadata 'card' or model.json beside it) or static rows/cols",
                         todo="export with impeccable-export MODEL_DIR")
    return dims[0], dims[1]


def physical_cores() -> int:
    """Physical cores this process may use: hyper-thread siblings share one core's FPUs, so count them once."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))
