"""The FP16 range audit: which nodes of a graph stay FP32 (:mod:`impeccable.export.fp16` describes the method).

The PyTorch model runs on normalized synthetic sections and the input's extremes with a forward hook on every
module (peak |input| and |output| per module); ONNX nodes are mapped back to modules by name scope; nodes whose
peak exceeds ``65504 / margin``, or with a weight beyond it, and the output head are blocked.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from impeccable.export.onnx_export import synthetic_sections

if TYPE_CHECKING:
    import onnx
    import torch

FP16_MAX = 65504.0
DEFAULT_MARGIN = 16.0
#: Non-zero weights smaller than this are rounded up to it by the converter (FP16's smallest subnormal is 6e-8).
MIN_POSITIVE = 1e-7
TOP_N = 20


def audit_inputs(window: tuple[int, int], sections: int = 4, seed: int = 1) -> list[np.ndarray]:
    """Batches for the range audit: normalized synthetic sections, then zeros, ones and uniform noise.

    Returns:
        A list of ``float32[N, 1, rows, cols]`` batches.
    """
    rng = np.random.default_rng(seed)
    edges = np.stack([np.zeros((1, *window), np.float32), np.ones((1, *window), np.float32),
                      rng.random((1, *window), dtype=np.float32)])
    return [synthetic_sections(window, sections, seed), edges]


# ---- PyTorch side: peaks per module ---------------------------------------------------------------------------

def _peak(value: Any) -> float:
    """Largest |x| over the floating tensors in a (nested) module input/output; inf if any is NaN/Inf."""
    import torch

    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or value.numel() == 0:
            return 0.0
        peak = float(value.detach().abs().max())
        return peak if math.isfinite(peak) else math.inf
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return max((_peak(v) for v in value), default=0.0)
    return 0.0


def module_peaks(model: torch.nn.Module, batches: Iterable[np.ndarray]) -> dict[str, dict[str, Any]]:
    """Peak |input| and |output| of every module of ``model`` over ``batches``.

    Args:
        model: The network, in eval mode.
        batches: ``float32[N, 1, rows, cols]`` inputs.

    Returns:
        Qualified module name (``""`` for the root) -> ``{"in": float, "out": float, "leaf": bool, "type": str}``.
    """
    import torch

    peaks: dict[str, dict[str, Any]] = {}
    handles = []

    def hook(name: str):
        def record(module: torch.nn.Module, args: tuple, output: Any) -> None:
            entry = peaks[name]
            entry["in"] = max(entry["in"], _peak(args))
            entry["out"] = max(entry["out"], _peak(output))
        return record

    for name, module in model.named_modules():
        peaks[name] = {"in": 0.0, "out": 0.0, "leaf": not any(True for _ in module.children()),
                       "type": type(module).__name__}
        handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.inference_mode():
            for x in batches:
                model(torch.from_numpy(np.ascontiguousarray(x)))
    finally:
        for handle in handles:
            handle.remove()
    return peaks


def scope_peaks(peaks: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The peak an ONNX node inside each module's scope can see (see the module docstring).

    A leaf module: its output peak. A composite one: the largest of its input, its output and the outputs of
    every module inside it (the operands of the ops it runs itself, conservatively).
    """
    out = {}
    for name, entry in peaks.items():
        if entry["leaf"]:
            out[name] = entry["out"]
            continue
        prefix = f"{name}." if name else ""
        inner = [e["out"] for n, e in peaks.items() if n.startswith(prefix) and n != name]
        out[name] = max([entry["in"], entry["out"], *inner])
    return out


# ---- ONNX side: nodes -> modules ------------------------------------------------------------------------------

def node_scopes(node: onnx.NodeProto) -> list[str]:
    """Candidate qualified module names of an ONNX node, outermost first.

    Dynamo graphs carry them in the node's ``pkg.torch.onnx.name_scopes`` metadata (the last entry is the op
    itself); legacy graphs in the node name, ``/decoder/x_0_4/conv1/conv1.0/Conv``, where a child of a container
    is spelled with its parent's name as prefix (``conv1.0`` under ``conv1``).
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
                return scopes[:-1]
    if not node.name.startswith("/"):
        return []
    parts = node.name.strip("/").split("/")[:-1]
    scopes, path, previous = [""], [], None
    for part in parts:
        child = part[len(previous) + 1:] if previous and part.startswith(previous + ".") else part
        path.append(child)
        scopes.append(".".join(path))
        previous = part
    return scopes


def map_nodes(graph: onnx.ModelProto, peaks: dict[str, dict[str, Any]]) -> dict[str, tuple[str | None, float | None]]:
    """Each node's module (innermost scope the audit recorded) and peak; ``(None, None)`` where none matches."""
    by_scope = scope_peaks(peaks)
    mapping = {}
    for node in graph.graph.node:
        module = None
        for scope in reversed(node_scopes(node)):
            module = scope if scope in by_scope else _match_path(scope, by_scope)
            if module is not None:
                break
        mapping[node.name] = (module, None if module is None else by_scope[module])
    return mapping


def _match_path(scope: str, modules: dict[str, float]) -> str | None:
    """The module whose path contains ``scope``'s components in order and ends like it (legacy names skip
    containers such as smp's ``decoder.blocks`` ModuleDict); the shortest such path, None when there is none."""
    wanted = scope.split(".")
    best = None
    for name in modules:
        parts = name.split(".")
        if not name or parts[-1] != wanted[-1] or len(parts) < len(wanted):
            continue
        remaining = iter(parts)
        if all(any(p == w for p in remaining) for w in wanted) and (best is None or len(name) < len(best)):
            best = name
    return best


def head_nodes(graph: onnx.ModelProto) -> list[str]:
    """The output head: walking back from the graph output, every node up to and including the last Conv."""
    producer = {out: node for node in graph.graph.node for out in node.output}
    initializers = {i.name for i in graph.graph.initializer}
    head, tensor = [], graph.graph.output[0].name
    while tensor in producer:
        node = producer[tensor]
        head.append(node.name)
        if node.op_type == "Conv":
            break
        data = [i for i in node.input if i and i not in initializers and i in producer]
        if len(data) != 1:  # a merge point: the head is not a simple chain any more
            break
        tensor = data[0]
    return head


def weight_range(graph: onnx.ModelProto) -> dict[str, int]:
    """How many float32 weight values FP16 cannot hold: non-zero ones below :data:`MIN_POSITIVE` (rounded up to
    it by the converter) and ones beyond the FP16 maximum (their nodes are blocked, so they stay float32)."""
    from onnx import numpy_helper

    tiny = huge = total = 0
    for init in graph.graph.initializer:
        if init.data_type == 1:
            a = np.abs(numpy_helper.to_array(init))
            total += a.size
            tiny += int(np.count_nonzero((a > 0) & (a < MIN_POSITIVE)))
            huge += int(np.count_nonzero(a > FP16_MAX))
    return {"values": total, "below_min_positive": tiny, "above_fp16_max": huge}


def _weight_peaks(graph: onnx.ModelProto) -> dict[str, float]:
    """Largest |weight| among each node's float initializer inputs."""
    from onnx import numpy_helper

    peak_of = {}
    for init in graph.graph.initializer:
        if init.data_type == 1:
            array = numpy_helper.to_array(init)
            peak_of[init.name] = float(np.abs(array).max()) if array.size else 0.0
    return {node.name: max((peak_of[i] for i in node.input if i in peak_of), default=0.0) for node in graph.graph.node}


def plan_blocklist(graph: onnx.ModelProto, peaks: dict[str, dict[str, Any]],
                   margin: float = DEFAULT_MARGIN) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The nodes to keep in FP32 and the facts behind the choice.

    Returns:
        ``blocked`` (one dict per node: name, op, module, peak, reason) and ``mapping`` facts (mapped and
        unmapped node counts, unmapped node names).
    """
    limit = FP16_MAX / margin
    mapping = map_nodes(graph, peaks)
    weights = _weight_peaks(graph)
    head = set(head_nodes(graph))
    blocked, unmapped = [], []
    for node in graph.graph.node:
        module, peak = mapping[node.name]
        reason = None
        if node.name in head:
            reason = "output head"
        elif peak is not None and not peak <= limit:  # NaN/inf peaks count as over
            reason = f"activation peak > {limit:g}"
        elif weights[node.name] > limit:
            reason = f"weight peak > {limit:g}"
        if module is None and node.op_type not in ("Constant", "Identity"):
            unmapped.append(node.name)
        if reason:
            blocked.append({"node": node.name, "op": node.op_type, "module": module,
                            "peak": peak, "weight_peak": weights[node.name], "reason": reason})
    facts = {"nodes": len(graph.graph.node), "unmapped": len(unmapped), "unmapped_nodes": unmapped[:TOP_N]}
    return blocked, facts
