"""FP16 inside the graph, float32 at its edges (``model.fp16.onnx``), with a range audit that decides what stays FP32.

Why FP16 lives in the ONNX: TensorRT 11 removed the FP16 builder flag (TensorRT 10 deprecates it), so a strongly
typed network parsed from an FP16 graph is the one path for both; ONNX Runtime's CUDA provider needs an FP16
graph too.

Converter: onnxconverter-common's ``float16.convert_float_to_float16(keep_io_types=True, node_block_list=...)``.
It is a small, pure-Python, Microsoft-maintained package that only rewrites the graph (casts at the I/O and
around blocked nodes). NVIDIA ModelOpt's AutoCast does the same job with its own range heuristics, but pulls in
a heavy dependency tree (modelopt, its CUDA/torch extras) for one graph rewrite; here the node choice is ours
(the audit below), so the small converter is enough. Four of its rough edges are handled here: it leaves FP16
round trips between blocked nodes whose output has several consumers (they would overflow all the same), it
mistypes or fails on a blocked node that produces the graph output, it casts Resize's ``scales`` to FP16 (invalid
ONNX), and it retypes weights passed through ``Identity`` (legacy graphs) without their Identity.

Range audit: the PyTorch model runs on normalized synthetic sections (plus all-zero, all-one and uniform random
windows: the extremes min-max normalized input can hold) with a forward hook on every module, recording
each module's peak |input| and |output|. ONNX nodes are mapped back to modules by name scope: the dynamo
exporter records each node's module path in its ``pkg.torch.onnx.name_scopes`` metadata; the legacy exporter
encodes it in the node name (``/decoder/x_0_4/conv1/conv1.0/Conv``). A node inside a leaf module (a Conv with
its folded BatchNorm, an activation) gets that module's output peak; a node directly inside a composite module
(a residual Add, the SE block's Mul, a decoder Concat or Resize) gets the largest of the module's input, output
and inner modules' output peaks: not a strict bound for an Add of two branches (up to 2x), which the margin
absorbs. Legacy names skip some containers (smp's ``decoder.blocks``); those resolve by path subsequence.
Any node whose peak exceeds ``65504 / margin`` (margin 16 by default: four binades of head-room, because real
volumes are not the audit's sections and SiLU/SE stacks amplify non-linearly) is kept in FP32, as is any node
with a weight beyond that limit.

Always FP32: the output head, i.e. the graph's last Conv and what follows it (the Sigmoid). It is one output
channel (a negligible share of the FLOPs), and it fixes the output's resolution: FP16's spacing near 1.0 is
4.9e-4, an eighth of a level on the challenge's uint8 scale, while the logit it comes from keeps FP32 precision.

The FP16 graph is then checked on CPU with ONNX Runtime against the FP32 graph on the denoised field of a
synthetic section stack (max abs on the unit scale, and the challenge's SSIM); it fails above 2e-2 or on any
NaN/Inf. ORT CPU runs FP16 nodes without FP16 kernels in FP32 between casts, so the check catches overflow
(the casts saturate to Inf) and gross errors, not every rounding effect of a GPU's FP16 arithmetic.
"""

from __future__ import annotations

import ast
import json
import math
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from impeccable.core.atomic import atomic_write
from impeccable.core.card import ONNX_FP16_NAME, sha256_file, window_of
from impeccable.core.errors import ExportError, ParityError
from impeccable.export.onnx_export import (INPUT_NAME, OUTPUT_NAME, check_graph, commit_file, metadata, save_checked,
                                           save_model, set_metadata, synthetic_sections)

if TYPE_CHECKING:
    import onnx
    import torch

FP16_MAX = 65504.0
DEFAULT_MARGIN = 16.0
FP16_ATOL = 2e-2
#: Non-zero weights smaller than this are rounded up to it by the converter (FP16's smallest subnormal is 6e-8).
MIN_POSITIVE = 1e-7
AUDIT_FORMAT = 1
TOP_N = 20
#: onnxconverter-common's default op block list minus Resize/Upsample: nearest-neighbour resizing is exact in
#: FP16, and blocking the decoder's 11 Resize nodes would wrap each in two casts of a full feature map. Their
#: float ``roi``/``scales`` inputs are restored to float32 after conversion (:func:`_float32_resize_params`).
RESIZE_OPS = ("Resize", "Upsample")


def audit_path(fp16_onnx: str | Path) -> Path:
    """The audit JSON beside an FP16 graph: ``model.fp16.onnx`` -> ``model.fp16.audit.json``."""
    fp16_onnx = Path(fp16_onnx)
    return fp16_onnx.with_name(fp16_onnx.name.removesuffix(".onnx") + ".audit.json")


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


# ---- conversion -----------------------------------------------------------------------------------------------

def _float32_resize_params(graph: onnx.ModelProto) -> None:
    """Give every Resize float32 ``roi``/``scales`` again: the converter cast them to FP16, which ONNX forbids.

    They are initializers (dynamo exporter) or Constant nodes (legacy exporter); the FP16 tensors are replaced
    by float32 initializers and whatever is left unused is dropped.
    """
    from onnx import numpy_helper

    constants = {i.name: i for i in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    made: dict[str, str] = {}
    for node in graph.graph.node:
        if node.op_type not in RESIZE_OPS:
            continue
        for index in (1, 2):
            name = node.input[index] if len(node.input) > index else ""
            tensor = constants.get(name)
            if tensor is None or tensor.data_type != 10:  # 10 = FLOAT16
                continue
            if name not in made:
                made[name] = f"{name}_float32"
                array = numpy_helper.to_array(tensor).astype(np.float32)
                graph.graph.initializer.append(numpy_helper.from_array(array, made[name]))
            node.input[index] = made[name]
    if not made:
        return
    used = {i for node in graph.graph.node for i in node.input} | {o.name for o in graph.graph.output}
    for node in [n for n in graph.graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.graph.node.remove(node)
    for init in [i for i in graph.graph.initializer if i.name not in used]:
        graph.graph.initializer.remove(init)


def _float32_outputs(graph: onnx.ModelProto) -> None:
    """Make every graph output float32 again.

    With ``keep_io_types=True`` the converter still types an output FP16 when the node producing it is blocked
    (it casts the blocked node's float32 result to FP16 and forgets the output): here that last Cast is turned
    back to float32 (or one is added).
    """
    from onnx import helper

    producer = {out: node for node in graph.graph.node for out in node.output}
    for output in graph.graph.output:
        if output.type.tensor_type.elem_type != 10:  # 10 = FLOAT16
            continue
        node = producer.get(output.name)
        if node is not None and node.op_type == "Cast":
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("to", 1))
        else:
            inner = f"{output.name}_fp16"
            for n in graph.graph.node:
                n.output[:] = [inner if o == output.name else o for o in n.output]
            graph.graph.node.append(helper.make_node("Cast", [inner], [output.name], to=1, name=f"{output.name}_to_float32"))
        output.type.tensor_type.elem_type = 1


def _drop_cast_round_trips(graph: onnx.ModelProto) -> None:
    """Remove ``Cast(to FP16) -> Cast(to FP32)`` chains: a blocked node's output must not pass through FP16 on its
    way to another blocked node (it would overflow there all the same). The converter removes such pairs only
    when the FP16 cast has one consumer."""
    nodes = list(graph.graph.node)
    to16 = {n.output[0]: n for n in nodes if n.op_type == "Cast" and _cast_target(n) == 10}
    outputs = {o.name for o in graph.graph.output}
    alias: dict[str, str] = {}
    for node in nodes:
        if node.op_type == "Cast" and _cast_target(node) == 1 and node.input[0] in to16:
            source = to16[node.input[0]].input[0]
            if node.output[0] in outputs:
                node.input[0] = source  # a float32 -> float32 cast feeding the output: harmless
            else:
                alias[node.output[0]] = source
                graph.graph.node.remove(node)
    for node in graph.graph.node:
        node.input[:] = [alias.get(i, i) for i in node.input]
    used = {i for node in graph.graph.node for i in node.input} | outputs
    for node in to16.values():
        if node.output[0] not in used:
            graph.graph.node.remove(node)
    kept = [v for v in graph.graph.value_info if v.name not in alias]
    del graph.graph.value_info[:]
    graph.graph.value_info.extend(kept)


def _cast_target(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


_GUARD = "impeccable_output_guard"


def _guard_outputs(graph: onnx.ModelProto) -> None:
    """Put an Identity between each graph output and its producer. The converter mishandles a blocked node that
    produces a graph output (it either types the output FP16 or fails pairing its casts); with the guard the
    blocked node feeds an ordinary node, and :func:`_unguard_outputs` removes the guard afterwards."""
    from onnx import helper

    for index, output in enumerate(graph.graph.output):
        inner = f"{output.name}_{_GUARD}"
        for node in graph.graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
        graph.graph.node.append(helper.make_node("Identity", [inner], [output.name], name=f"{_GUARD}_{index}"))


def _unguard_outputs(graph: onnx.ModelProto) -> None:
    """Remove the guards of :func:`_guard_outputs` from a converted graph (an Identity is a no-op)."""
    guards = [n for n in graph.graph.node if n.op_type == "Identity" and n.name.startswith(_GUARD)]
    outputs = {o.name for o in graph.graph.output}
    for guard in guards:
        source, target = guard.input[0], guard.output[0]
        if target in outputs:  # nothing was put after it: the guard itself produces the output
            for node in graph.graph.node:
                node.output[:] = [target if o == source else o for o in node.output]
        else:
            for node in graph.graph.node:
                node.input[:] = [source if i == target else i for i in node.input]
        graph.graph.node.remove(guard)


def _bypass_weight_identities(graph: onnx.ModelProto) -> None:
    """Feed weights straight to their consumers instead of through ``Identity`` nodes (legacy exports share
    weights that way); the converter retypes the weight but not the Identity's output, which ORT then refuses."""
    initializers = {i.name for i in graph.graph.initializer}
    outputs = {o.name for o in graph.graph.output}
    alias = {}
    for node in list(graph.graph.node):
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
            graph.graph.node.remove(node)
    for node in graph.graph.node:
        node.input[:] = [alias.get(i, i) for i in node.input]
    kept = [v for v in graph.graph.value_info if v.name not in alias]
    del graph.graph.value_info[:]
    graph.graph.value_info.extend(kept)


def to_fp16(graph: onnx.ModelProto, blocked: Iterable[str]) -> onnx.ModelProto:
    """FP16 copy of a float32 graph with float32 I/O; ``blocked`` nodes stay float32 (casts around them)."""
    import onnx
    from onnxconverter_common import float16

    ops = [op for op in float16.DEFAULT_OP_BLOCK_LIST if op not in RESIZE_OPS]
    source = onnx.ModelProto()
    source.CopyFrom(graph)
    # The dynamo exporter lists initializers in value_info too; the converter would retype those entries FP16 and
    # then "cast back" the float32 weights of blocked nodes at run time. Initializers need no value_info.
    initializers = {i.name for i in source.graph.initializer}
    kept = [v for v in source.graph.value_info if v.name not in initializers]
    del source.graph.value_info[:]
    source.graph.value_info.extend(kept)
    _bypass_weight_identities(source)
    _guard_outputs(source)
    try:
        with warnings.catch_warnings():  # one warning per tiny weight it rounds up: counted in the audit instead
            warnings.simplefilter("ignore", UserWarning)
            half = float16.convert_float_to_float16(source, keep_io_types=True, op_block_list=ops,
                                                    node_block_list=list(blocked), max_finite_val=FP16_MAX,
                                                    min_positive_val=MIN_POSITIVE)
    except Exception as exc:  # the converter raises bare Exceptions
        raise ExportError("FP16 conversion failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          expected="a float32 ONNX graph written by impeccable-export",
                          todo="re-export it: impeccable-export MODEL_DIR") from exc
    _unguard_outputs(half)
    _drop_cast_round_trips(half)
    _float32_resize_params(half)
    _float32_outputs(half)
    return half


def _run(session: Any, images: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: images[i:i + batch]})[0]
                           for i in range(0, len(images), batch)])


def compare_fields(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Max abs difference (unit scale) and the challenge's SSIM of a denoised section stack against a reference.

    Args:
        reference: ``(n, traces, samples)`` float32 denoised sections (the FP32 result).
        candidate: The same from the engine under test.

    Returns:
        ``max_abs``, ``mean_abs``, ``min_ssim`` and ``mean_ssim`` (each stack min-max scaled to uint8 with its
        own extremes, skimage SSIM per section, as the challenge scores).
    """
    from impeccable.data.scoring import section_ssim, to_uint8_volume

    diff = np.abs(candidate.astype(np.float64) - reference)
    finite = bool(np.isfinite(candidate).all())
    ref8, cand8 = to_uint8_volume(reference), to_uint8_volume(np.nan_to_num(candidate))
    ssims = [section_ssim(r, c) for r, c in zip(ref8, cand8)]
    return {"max_abs": float(diff.max()) if finite else math.inf, "mean_abs": float(diff.mean()) if finite else math.inf,
            "min_ssim": float(min(ssims)), "mean_ssim": float(np.mean(ssims)), "finite": finite}


def check_fp16(fp16_path: str | Path, fp32_path: str | Path, window: tuple[int, int], atol: float = FP16_ATOL,
               seed: int = 2) -> dict[str, Any]:
    """Compare the FP16 graph with the FP32 one in ONNX Runtime (CPU) on the denoised field.

    Sections are normalized synthetic ones (:func:`~impeccable.export.onnx_export.synthetic_sections`), run at
    batch 1 and 3, cropped back to their unpadded extent before comparing.

    Raises:
        ParityError: Non-finite output, or max abs difference above ``atol``.
    """
    import onnxruntime as ort

    sections = synthetic_sections(window, 3, seed)
    extent = (min(window[0], 300), min(window[1], 1259))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about every FP16 node it runs through casts on CPU
    fp32 = ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"])
    fp16 = ort.InferenceSession(str(fp16_path), options, providers=["CPUExecutionProvider"])
    reference = _run(fp32, sections, 3)[:, 0, :extent[0], :extent[1]]
    result: dict[str, Any] = {"atol": atol, "sections": len(sections), "batches": [1, 3]}
    for batch in (1, 3):
        got = _run(fp16, sections, batch)[:, 0, :extent[0], :extent[1]]
        stats = compare_fields(reference, got)
        for key, value in stats.items():
            if key in ("max_abs", "mean_abs"):
                result[key] = max(result.get(key, 0.0), value)
            elif key == "finite":
                result[key] = result.get(key, True) and value
            else:
                result[key] = min(result.get(key, 1.0), value)
    if not (result["finite"] and result["max_abs"] <= atol):
        raise ParityError("the FP16 graph's denoised field differs from FP32", received=(
            f"max abs {result['max_abs']:.3g}, min SSIM {result['min_ssim']:.4f}" + ("" if result["finite"] else ", NaN/Inf")),
            expected=f"max abs <= {atol:g} (ONNX Runtime CPU, batch 1 and 3)",
            todo="raise the audit margin (--fp16-margin) to keep more nodes in FP32, or skip --fp16")
    return result


def convert_fp16(onnx_path: str | Path, model_dir: str | Path | None = None, out_path: str | Path | None = None,
                 margin: float = DEFAULT_MARGIN, atol: float = FP16_ATOL) -> Path:
    """Audit activation ranges, write ``model.fp16.onnx`` (float32 I/O, FP16 inside) and its audit JSON.

    Args:
        onnx_path: The checked float32 ``model.onnx`` (written by :func:`~impeccable.export.onnx_export.export_onnx`).
        model_dir: The model directory it was exported from (PyTorch weights for the audit) [default: the
            ONNX file's folder].
        out_path: Target [default: ``model.fp16.onnx`` beside ``onnx_path``]; the audit goes to
            ``model.fp16.audit.json`` beside it.
        margin: Nodes whose peak |activation| exceeds ``65504 / margin`` stay FP32.
        atol: Largest accepted |FP16 - FP32| on the denoised field.

    Returns:
        The FP16 graph's path; it and the audit exist only if the check passed.

    Raises:
        ModelError: The model directory cannot be loaded.
        ExportError: ``model.onnx`` does not belong to these weights, or the conversion failed.
        ParityError: The FP16 graph differs from FP32 beyond ``atol``.
    """
    import onnx
    import onnxconverter_common

    from impeccable.models.checkpoint import load_model

    onnx_path = Path(onnx_path)
    model_dir = Path(model_dir) if model_dir is not None else onnx_path.parent
    out_path = Path(out_path) if out_path is not None else onnx_path.with_name(ONNX_FP16_NAME)
    if not onnx_path.is_file():
        raise ExportError("float32 ONNX not found", received=str(onnx_path), expected="model.onnx",
                          todo=f"export it first: impeccable-export {model_dir}")
    graph = onnx.load(str(onnx_path))
    model, card = load_model(model_dir)
    window = window_of(card)
    props = metadata(graph)
    if props.get("weights_sha256") != card.get("weights_sha256"):
        raise ExportError(f"{onnx_path.name} was not exported from these weights", received=props.get("weights_sha256"),
                          expected=card.get("weights_sha256"), todo=f"re-export it: impeccable-export {model_dir}")
    check_graph(graph, window)

    batches = audit_inputs(window)
    peaks = module_peaks(model, batches)
    blocked, facts = plan_blocklist(graph, peaks, margin)
    ranked = sorted(((n, e["out"]) for n, e in peaks.items() if e["leaf"]), key=lambda kv: -kv[1])
    audit: dict[str, Any] = {
        "format_version": AUDIT_FORMAT,
        "fp16_max": FP16_MAX, "margin": margin, "limit": FP16_MAX / margin,
        "inputs": {"window": list(window), "synthetic_sections": int(len(batches[0])), "zeros": 1, "ones": 1,
                   "uniform": 1, "normalization": "min-max per synthetic volume"},
        "modules": len(peaks),
        "peak": {"module": ranked[0][0], "value": ranked[0][1]} if ranked else None,
        "top_modules": [[n, p] for n, p in ranked[:TOP_N]],
        "mapping": facts,
        "weights": weight_range(graph),
        "blocked": blocked,
        "converter": {"package": "onnxconverter-common", "version": onnxconverter_common.__version__,
                      "keep_io_types": True, "resize_in_fp16": True},
        "source_onnx_sha256": sha256_file(onnx_path),
    }
    half = to_fp16(graph, [b["node"] for b in blocked])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".fp16-") as tmp:
        candidate = Path(tmp) / out_path.name
        set_metadata(half, precision="fp16", source_onnx_sha256=audit["source_onnx_sha256"])
        save_checked(half, candidate, "FP16 graph")
        audit["fp16_check"] = check_fp16(candidate, onnx_path, window, atol)
        # The audit travels with the graph (metadata) and beside it (JSON), and later into the plan's manifest.
        set_metadata(half, fp16_audit=json.dumps(audit_summary(audit), sort_keys=True))
        save_model(half, candidate)
        commit_file(candidate, out_path)
        with atomic_write(audit_path(out_path)) as f:
            f.tmp.write_text(json.dumps(audit, indent=2) + "\n")
    return out_path


def audit_summary(audit: dict[str, Any], top: int = 10) -> dict[str, Any]:
    """The part of an audit that goes into ONNX metadata and the plan manifest."""
    keep = ("margin", "limit", "peak", "weights", "fp16_check", "source_onnx_sha256")
    summary = {k: audit.get(k) for k in keep}
    summary["top_modules"] = audit.get("top_modules", [])[:top]
    summary["blocked"] = [{k: b[k] for k in ("node", "op", "module", "reason")} for b in audit.get("blocked", [])]
    summary["unmapped_nodes"] = audit.get("mapping", {}).get("unmapped", 0)
    return summary


def read_audit(fp16_onnx: str | Path) -> dict[str, Any] | None:
    """The audit JSON beside an FP16 graph (None when it is missing or unreadable)."""
    try:
        return json.loads(audit_path(fp16_onnx).read_text())
    except (OSError, json.JSONDecodeError):
        return None
