"""FP16 inside the graph, float32 at its edges (``model.fp16.onnx``), with a range audit that decides what stays FP32.

Why FP16 lives in the ONNX: TensorRT 11 removed the FP16 builder flag (TensorRT 10 deprecates it), so a strongly
typed network parsed from an FP16 graph is the one path for both; ONNX Runtime's CUDA provider needs an FP16
graph too.

Converter: onnxconverter-common's ``float16.convert_float_to_float16(keep_io_types=True, node_block_list=...)``.
It is a small, pure-Python, Microsoft-maintained package that only rewrites the graph (casts at the I/O and
around blocked nodes). NVIDIA ModelOpt's AutoCast does the same job with its own range heuristics, but pulls in
a heavy dependency tree (modelopt, its CUDA/torch extras) for one graph rewrite; here the node choice is ours
(the audit below), so the small converter is enough. Four of its rough edges are handled
(:mod:`impeccable.export.fp16_convert`): it leaves FP16
round trips between blocked nodes whose output has several consumers (they would overflow all the same), it
mistypes or fails on a blocked node that produces the graph output, it casts Resize's ``scales`` to FP16 (invalid
ONNX), and it retypes weights passed through ``Identity`` (legacy graphs) without their Identity.

Range audit (:mod:`impeccable.export.fp16_audit`): the PyTorch model runs on normalized synthetic sections (plus
all-zero, all-one and uniform random windows: the extremes min-max normalized input can hold) with a forward hook on
every module, recording each module's peak |input| and |output|. ONNX nodes are mapped back to modules by name
scope: the dynamo exporter records each node's module path in its ``pkg.torch.onnx.name_scopes`` metadata; the
legacy exporter encodes it in the node name (``/decoder/x_0_4/conv1/conv1.0/Conv``). A node inside a leaf module (a
Conv with its folded BatchNorm, an activation) gets that module's output peak; a node directly inside a composite
module (a residual Add, the SE block's Mul, a decoder Concat or Resize) gets the largest of the module's input,
output and inner modules' output peaks: not a strict bound for an Add of two branches (up to 2x), which the margin
absorbs. Legacy names skip some containers (smp's ``decoder.blocks``); those resolve by path subsequence. Any node
whose peak exceeds ``65504 / margin`` (margin 16 by default: four binades of head-room, because real volumes are not
the audit's sections and SiLU/SE stacks amplify non-linearly) is kept in FP32, as is any node with a weight beyond
that limit.

Always FP32: the output head, i.e. the graph's last Conv and what follows it (the Sigmoid). It is one output
channel (a negligible share of the FLOPs), and it fixes the output's resolution: FP16's spacing near 1.0 is
4.9e-4, an eighth of a level on the challenge's uint8 scale, while the logit it comes from keeps FP32 precision.

The FP16 graph is then checked on CPU with ONNX Runtime against the FP32 graph on the denoised field of a
synthetic section stack (max abs on the unit scale, and the challenge's SSIM); it fails above 2e-2 or on any
NaN/Inf. ORT CPU runs FP16 nodes without FP16 kernels in FP32 between casts, so the check catches overflow
(the casts saturate to Inf) and gross errors, not every rounding effect of a GPU's FP16 arithmetic.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from impeccable.core.atomic import atomic_write
from impeccable.core.card import ONNX_FP16_NAME, sha256_file, window_of
from impeccable.core.errors import ExportError, ParityError
from impeccable.export.onnx_export import (INPUT_NAME, OUTPUT_NAME, check_graph, commit_file, metadata, save_checked,
                                           save_model, set_metadata, synthetic_sections)
# The audit and the conversion live in their own modules; their names stay importable from here.
from impeccable.export.fp16_audit import (DEFAULT_MARGIN, FP16_MAX, MIN_POSITIVE, TOP_N,
                                          audit_inputs, head_nodes, map_nodes, module_peaks, node_scopes,
                                          plan_blocklist, scope_peaks, weight_range)
from impeccable.export.fp16_convert import RESIZE_OPS, to_fp16

FP16_ATOL = 2e-2
AUDIT_FORMAT = 1


def audit_path(fp16_onnx: str | Path) -> Path:
    """The audit JSON beside an FP16 graph: ``model.fp16.onnx`` -> ``model.fp16.audit.json``."""
    fp16_onnx = Path(fp16_onnx)
    return fp16_onnx.with_name(fp16_onnx.name.removesuffix(".onnx") + ".audit.json")


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


__all__ = ["AUDIT_FORMAT", "DEFAULT_MARGIN", "FP16_ATOL", "FP16_MAX", "MIN_POSITIVE", "RESIZE_OPS", "TOP_N",
           "audit_inputs", "audit_path", "audit_summary", "check_fp16", "compare_fields", "convert_fp16", "head_nodes",
           "map_nodes", "module_peaks", "node_scopes", "plan_blocklist", "read_audit", "scope_peaks", "to_fp16",
           "weight_range"]
