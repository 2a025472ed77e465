"""FP16 inside the graph, float32 at its edges: ``model.fp16.onnx`` for strongly typed TensorRT and ORT CUDA.

TensorRT 11 removed the FP16 builder flag, so precision has to live in the ONNX itself. The conversion uses
onnxconverter-common's ``convert_float_to_float16(keep_io_types=True)``: a small, well-kept package that only
touches the graph (NVIDIA ModelOpt's AutoCast does the same with a much heavier dependency tree).

Which nodes stay float32 is decided by a range audit: the float32 graph runs on normalized synthetic sections
with every node output exposed, and any node whose peak |activation| comes within ``margin`` of the FP16
maximum (65504) is kept in float32. The audit runs on the ONNX graph itself, so its node names are exactly
the ones the converter's block list takes (no module-to-node mapping to get wrong).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from impeccable.core.errors import ExportError

FP16_MAX = 65504.0
DEFAULT_MARGIN = 16.0  # keep in float32 whatever peaks above 65504 / 16 = 4094
ALWAYS_FP32 = ("Sigmoid",)  # the output activation: cheap, and its saturation is where FP16 rounding shows


def audit_ranges(onnx_path: Path, inputs: list[np.ndarray], chunk: int = 150) -> dict[str, float]:
    """Peak |activation| of every node output of a float32 ONNX graph over ``inputs``.

    Node outputs are exposed ``chunk`` at a time so memory stays bounded on the full-size network.
    """
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    outputs = [(node.name, out) for node in model.graph.node for out in node.output if out]
    existing = {o.name for o in model.graph.output}
    peaks: dict[str, float] = {}
    options = ort.SessionOptions()
    # No fusions: the exposed tensors must be the graph's own, named as the converter will see them.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for start in range(0, len(outputs), chunk):
        part = outputs[start:start + chunk]
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        for _, name in part:
            if name not in existing:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        for x in inputs:
            for name, value in zip(names, session.run(names, {"input": x})):
                if np.issubdtype(np.asarray(value).dtype, np.floating):
                    peaks[name] = max(peaks.get(name, 0.0), float(np.abs(value).max()) if np.size(value) else 0.0)
    producer = {out: node_name for node_name, out in outputs}
    return {producer[k]: v for k, v in peaks.items() if k in producer}


def blocked_nodes(model: onnx.ModelProto, peaks: dict[str, float], margin: float = DEFAULT_MARGIN) -> list[str]:
    """Nodes to keep in float32: peaks within ``margin`` of the FP16 maximum, plus :data:`ALWAYS_FP32` ops."""
    limit = FP16_MAX / margin
    hot = {name for name, peak in peaks.items() if not peak <= limit}  # NaN/Inf peaks count as hot
    return sorted(hot | {n.name for n in model.graph.node if n.op_type in ALWAYS_FP32})


def convert_fp16(onnx_path: str | Path, out_path: str | Path, inputs: list[np.ndarray],
                 margin: float = DEFAULT_MARGIN) -> tuple[Path, dict]:
    """Write an FP16 graph with float32 I/O and return it with the audit that chose its float32 islands.

    Args:
        onnx_path: The float32 ``model.onnx``.
        out_path: Target (e.g. ``model.fp16.onnx``); written via a temp file.
        inputs: Normalized ``float32[N, 1, rows, cols]`` batches for the range audit.
        margin: Safety factor below the FP16 maximum.

    Returns:
        The path and the audit: ``{"fp16_max", "margin", "limit", "blocked": [...], "top_peaks": {...}}``.
    """
    from onnxconverter_common import float16

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    peaks = audit_ranges(onnx_path, inputs)
    model = onnx.load(str(onnx_path))
    blocked = blocked_nodes(model, peaks, margin)
    try:
        half = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked,
                                                disable_shape_infer=False)
    except Exception as exc:  # the converter raises bare Exceptions
        raise ExportError("FP16 conversion failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          expected="a float32 ONNX graph", todo="re-export model.onnx") from exc
    top = dict(sorted(peaks.items(), key=lambda kv: -kv[1])[:20])
    audit = {"fp16_max": FP16_MAX, "margin": margin, "limit": FP16_MAX / margin, "audited_nodes": len(peaks),
             "blocked": blocked, "top_peaks": top, "inputs": [list(x.shape) for x in inputs]}
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save(half, tmp)
        onnx.checker.check_model(tmp, full_check=True)
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    out_path.with_suffix(".audit.json").write_text(json.dumps(audit, indent=2) + "\n")
    return out_path, audit
