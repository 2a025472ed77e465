"""Where an engine finds its model files: the ONNX graph of a model directory or a lone file, its card, its window.

Engine-independent and torch-free: every ONNX-reading engine (ONNX Runtime, OpenVINO) and the TensorRT plan's
manifest resolve the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from impeccable.core.card import CARD_NAME, ONNX_NAME, read_card, window_of
from impeccable.core.errors import ModelError
from impeccable.core.onnx_meta import onnx_metadata


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


def resolve_onnx(model: str | Path, file_name: str = ONNX_NAME, export_flag: str = "") -> tuple[Path, dict | None]:
    """The ONNX file an engine loads, and the card (None when a lone file carries none).

    Args:
        model: A model directory (uses its ``file_name``) or a ``.onnx`` file (used as it is).
        file_name: The graph of the precision asked for (``model.onnx``, ``model.fp16.onnx``, ...).
        export_flag: The ``impeccable-export`` flag that writes ``file_name`` (named in the error), e.g. ``--fp16``.

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
    path = model / file_name
    if not path.is_file():
        raise ModelError(f"model directory has no {file_name}", received=str(model), expected=str(path),
                         todo=f"run impeccable-export {model}{' ' + export_flag if export_flag else ''}, "
                              "or use --engine torch")
    # The ONNX records the weights it was exported from; a card describing other weights (retrained, replaced)
    # means a stale export: refused, as the torch engine refuses weights that do not match the card.
    exported = onnx_metadata(path).get("weights_sha256")
    if exported and card.get("weights_sha256") and exported != card["weights_sha256"]:
        raise ModelError(f"{file_name} was not exported from the weights the card names", received=exported[:16],
                         expected=str(card["weights_sha256"])[:16], todo=f"re-export it: impeccable-export {model}")
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
