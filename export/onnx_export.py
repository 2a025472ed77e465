"""PyTorch -> ONNX with the checks that keep the graph deployable, and parity with PyTorch built in.

The graph takes ``input`` float32 ``[batch, 1, rows, cols]`` (symbolic batch, static window from the card) and
returns ``output`` of the same shape in ``[0, 1]`` (the sigmoid is inside). It is exported with the dynamo
exporter (``dynamo=True``): for the ``tf_`` encoder's TF-"SAME" convolutions it folds the asymmetric padding
into the convolutions' ``pads`` instead of emitting runtime ``Shape -> Pad`` chains that TensorRT parsers
choke on. The export is only kept (renamed into place) if every check and the parity test pass.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from impeccable.core.card import ONNX_NAME, window_of
from impeccable.core.errors import ExportError, ParityError
from impeccable.models.checkpoint import load_model

PARITY_ATOL = 1e-4
DEFAULT_OPSET = 18


def check_graph(model: onnx.ModelProto, window: tuple[int, int]) -> None:
    """Refuse a graph whose batch is not symbolic, whose window is not static, or that computes shapes at run time.

    Raises:
        ExportError: What is wrong, and what was expected.
    """
    for tensor in list(model.graph.input) + list(model.graph.output):
        dims = tensor.type.tensor_type.shape.dim
        batch, rest = dims[0], [d.dim_value for d in dims[1:]]
        if batch.dim_value or not batch.dim_param:
            raise ExportError(f"{tensor.name}'s batch dimension is not symbolic", received=batch.dim_value,
                              expected="a named dynamic dimension", todo="export with a batch >= 2 and dynamic shapes")
        if rest != [1, *window]:
            raise ExportError(f"{tensor.name} is not 1 x {window[0]} x {window[1]}", received=rest,
                              expected=[1, *window], todo="check the card's input_size")
    shape_ops = [n.name for n in model.graph.node if n.op_type == "Shape"]
    if shape_ops:
        raise ExportError("graph computes shapes at run time", received=f"{len(shape_ops)} Shape ops",
                          expected="none (static window)", todo="export with dynamo=True or fold constants")
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Pad" and len(node.input) > 1 and node.input[1] not in constants:
            raise ExportError("a Pad's pads are computed at run time", received=node.name,
                              expected="constant pads", todo="export with dynamo=True or fold constants")


def _parity_inputs(window: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Random batches and normalized synthetic sections, at batch 1 and 3."""
    from impeccable.core.amplitude import normalize, volume_stats
    from impeccable.data.synth import synthesize_pair
    from impeccable.runtime.tiling import split

    rng = np.random.default_rng(seed)
    rows, cols = window
    _, noisy = synthesize_pair(seed, shape=(8, max(8, min(rows, 300)), max(32, min(cols, 1259))))
    sections = normalize(noisy, volume_stats(noisy))[:3]
    tiles, _ = split(sections, window)
    return [rng.random((1, 1, rows, cols), dtype=np.float32), rng.random((3, 1, rows, cols), dtype=np.float32),
            tiles[:1], tiles[:3]]


def check_parity(onnx_path: Path, model: torch.nn.Module, window: tuple[int, int], atol: float = PARITY_ATOL) -> float:
    """Max |ONNX Runtime CPU - PyTorch| over random and synthetic inputs at batch 1 and 3.

    Raises:
        ParityError: The difference exceeds ``atol``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in _parity_inputs(window):
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"input": x})[0]
        worst = max(worst, float(np.abs(got - ref).max()))
    if not worst <= atol:
        raise ParityError("ONNX output differs from PyTorch", received=f"max abs {worst:.3g}",
                          expected=f"<= {atol:g}", todo="the export is wrong: report it with the model card")
    return worst


def export_onnx(model_dir: str | Path, out_path: str | Path | None = None, opset: int = DEFAULT_OPSET,
                dynamo: bool = True) -> Path:
    """Export a model directory to ONNX, check it, and compare it with PyTorch.

    Args:
        model_dir: Directory with ``model.safetensors`` and ``model.json``.
        out_path: Target file [default: ``model_dir/model.onnx``].
        opset: ONNX opset.
        dynamo: Use the dynamo exporter (recommended) or the legacy TorchScript one.

    Returns:
        The written ONNX path (written only when every check passed).
    """
    model_dir = Path(model_dir)
    model, card = load_model(model_dir)
    window = window_of(card)
    out_path = Path(out_path) if out_path else model_dir / ONNX_NAME
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.rand(2, 1, *window)  # batch >= 2: torch.export would specialize a batch of 1
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=1024)
                torch.onnx.export(model, (dummy,), str(raw), dynamo=True, opset_version=opset,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_shapes={"x": {0: batch}}, verbose=False)
            else:
                torch.onnx.export(model, (dummy,), str(raw), dynamo=False, opset_version=opset,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        except Exception as exc:  # the exporters raise many types
            raise ExportError("torch.onnx.export failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                              expected="a traceable model", todo="report it with the model card") from exc
        graph = onnx.load(str(raw))  # pulls external data (if any) into memory: we save one file
        if not dynamo:
            graph = _fold_constants(graph)
        check_graph(graph, window)
        graph.metadata_props.clear()
        for key, value in (("card", json.dumps(card, sort_keys=True)),
                           ("weights_sha256", card.get("weights_sha256", "")), ("producer", "impeccable-export")):
            graph.metadata_props.add(key=key, value=value)
        candidate = Path(tmp) / "model.onnx"
        onnx.save(graph, str(candidate))
        onnx.checker.check_model(str(candidate), full_check=True)
        check_parity(candidate, model, window)
        os.replace(candidate, out_path)
    return out_path


def _fold_constants(graph: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the legacy exporter's Shape -> Pad chains into constants (Polygraphy's folder)."""
    from polygraphy.backend.onnx import fold_constants

    return fold_constants(graph, fold_shapes=True)
