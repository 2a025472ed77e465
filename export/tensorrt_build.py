"""Build the FP16 TensorRT plan through Polygraphy: strongly typed, one batch profile, a persistent timing cache.

The network is parsed strongly typed from ``model.fp16.onnx``: the precision is in the graph (FP16 inside,
float32 I/O and range-audited float32 islands), which is the one path that works on TensorRT 10 (FP16 builder
flag deprecated) and TensorRT 11 (flag removed, every network strongly typed). One optimization profile on the
batch axis, min 1 / opt ``batch`` (the runtime's batch: tactics are tuned for it) / max ``max_batch``. The
timing cache ``timing.cache`` beside the plans records the measured tactic timings, so a rebuild with the same
TensorRT version on the same GPU model (another batch profile, a re-exported ONNX of the same architecture)
skips most of the timing; Polygraphy locks and merges it. TensorRT ignores a cache written by another TensorRT
version or on another GPU (NVIDIA/TensorRT#3566): after an upgrade the first build is a full one again.

Before the plan is renamed into place it is deserialized and run on normalized synthetic sections at batch 1
and ``batch``, with flip TTA, against the float32 graph in ONNX Runtime on CPU: TensorRT has had FP16
miscompiles and batch > 1 bugs that only a run shows. Then ``model.<gpu-slug>.fp16.plan`` and its manifest
``<plan>.json`` (:mod:`impeccable.core.manifest`) are written.

``tensorrt`` and ``polygraphy`` are imported only when a plan is built; nothing here needs torch or onnx, so a
``pip install '.[gpu]'`` machine can rebuild a stale plan from shipped ONNX files.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from impeccable.core.atomic import atomic_write
from impeccable.core.card import ONNX_NAME, sha256_file, window_of
from impeccable.core.errors import ExportError, ParityError
from impeccable.core.cuda_libs import expose_cudart
from impeccable.core.extras import install_hint
from impeccable.core.manifest import PRECISION, current_environment, make_manifest, manifest_path, plan_name
from impeccable.core.onnx_meta import onnx_metadata
from impeccable.core.tiling import predict_sections

TIMING_CACHE_NAME = "timing.cache"
GPU_EXTRA = f"{install_hint('gpu')}, on a machine with an NVIDIA GPU"


class EngineUnavailable(ExportError):
    """No TensorRT engine can be built on this machine (no TensorRT, no Polygraphy, or no GPU)."""


def why_no_engine() -> str | None:
    """Why no plan can be built here, or None when one can. Imports TensorRT only when it is installed."""
    missing = [name for name in ("tensorrt", "polygraphy") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed"
    env = current_environment()
    if env["tensorrt"] is None:
        return "tensorrt is installed but cannot be imported (missing TensorRT libraries?)"
    if env["gpu"] is None:
        return "no NVIDIA GPU is visible (nvidia-smi / CUDA found none)"
    return None


#: Precisions a plan is built for: each lives in its ONNX (FP16 graph, or INT8 Q/DQ graph), parsed strongly typed.
PRECISIONS = (PRECISION, "int8")


def _read_fp16_graph(fp16_onnx: Path) -> tuple[dict, dict | None]:
    """Card and audit summary from the graph's metadata (read without onnx)."""
    card, audit, _ = _read_graph(fp16_onnx)
    return card, audit


def _read_graph(fp16_onnx: Path) -> tuple[dict, dict | None, str]:
    """Card, audit summary and precision (``fp16`` or ``int8``) from the graph's metadata (read without onnx)."""
    if not fp16_onnx.is_file():
        raise ExportError("FP16 ONNX not found", received=str(fp16_onnx), expected="model.fp16.onnx",
                          todo="write it first: impeccable-export MODEL_DIR --fp16")
    props = onnx_metadata(fp16_onnx)
    precision = props.get("precision")
    if precision not in PRECISIONS or "card" not in props:
        raise ExportError("not an FP16 graph written by impeccable-export", received=str(fp16_onnx),
                          expected="metadata precision=fp16 (or int8) and a card",
                          todo="impeccable-export MODEL_DIR --fp16 (or --int8)")
    audit = props.get(f"{precision}_audit")
    return json.loads(props["card"]), json.loads(audit) if audit else None, precision


def trt_infer(runner: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``images -> output`` through a Polygraphy ``TrtRunner``, the output copied out of the runner.

    ``TrtRunner.infer`` returns views of output buffers it reuses on the next call (its docstring says to copy
    them): without the copy, flip TTA's second call overwrites the first result, and ``run(x) +
    run(flipped)[..., ::-1, :]`` averages the flipped output with its own mirror.
    """
    from impeccable.export.onnx_export import INPUT_NAME, OUTPUT_NAME

    return lambda x: np.array(runner.infer({INPUT_NAME: x})[OUTPUT_NAME], copy=True)


def verify_plan(plan_bytes: bytes, reference_onnx: Path, window: tuple[int, int], batch: int,
                atol: float) -> dict[str, Any]:
    """Run the plan (TensorRT) and the reference graph (ONNX Runtime CPU) on synthetic sections, flip TTA on.

    Raises:
        ParityError: Non-finite output or max abs difference above ``atol`` at batch 1 or ``batch``.
        ExportError: The plan could not be loaded or run (CUDA, libcudart, TensorRT or Polygraphy failed).
    """
    import onnxruntime as ort

    from impeccable.export.fp16 import compare_fields
    from impeccable.export.onnx_export import INPUT_NAME, OUTPUT_NAME, synthetic_sections

    extent = (min(window[0], 300), min(window[1], 1259))
    # the sections themselves (challenge-sized at most): flip TTA mirrors them before padding, as the runtime does
    sections = synthetic_sections(window, max(batch, 1), seed=5)[:, 0, :extent[0], :extent[1]]
    session = ort.InferenceSession(str(reference_onnx), providers=["CPUExecutionProvider"])
    reference = predict_sections(sections, lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], window,
                                 tta=True, batch=batch)
    results: dict[str, Any] = {"reference": reference_onnx.name, "sections": len(sections), "tta": True, "atol": atol}
    measured = {}
    try:
        expose_cudart()  # TrtRunner allocates through polygraphy.cuda, which must find libcudart
        from polygraphy.backend.trt import TrtRunner, engine_from_bytes

        with TrtRunner(engine_from_bytes(plan_bytes)) as runner:
            for b in sorted({1, batch}):
                measured[b] = predict_sections(sections, trt_infer(runner), window, tta=True, batch=b)
    except Exception as exc:  # CUDA / Polygraphy / TensorRT raise their own types: ours, one line, cause attached
        raise ExportError("the TensorRT plan could not be run to check it",
                          received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          expected="a CUDA device and libcudart that Polygraphy can load",
                          todo="check nvidia-smi and pip install '.[gpu]' (CUDA 13); no plan was "
                               "written") from exc
    for b, got in measured.items():
        stats = compare_fields(reference, got)
        results[f"batch_{b}"] = stats
        if not (stats["finite"] and stats["max_abs"] <= atol):
            raise ParityError(f"the TensorRT plan differs from {reference_onnx.name} at batch {b}",
                              received=f"max abs {stats['max_abs']:.3g}, min SSIM {stats['min_ssim']:.4f}",
                              expected=f"max abs <= {atol:g}",
                              todo="report it with the TensorRT version; use the onnxruntime engine meanwhile")
    return results


def build_engine(fp16_onnx: str | Path, out_dir: str | Path | None = None, batch: int = 8, max_batch: int = 32,
                 verify: bool = True) -> Path:
    """Build ``model.<gpu-slug>.fp16.plan`` and its manifest from an FP16 graph written by :func:`convert_fp16`,
    or ``model.<gpu-slug>.int8.plan`` from the Q/DQ graph of :func:`~impeccable.export.int8.convert_int8`
    (explicit quantization, the same strongly typed parse; checked against float32 within ``INT8_ATOL``).

    Args:
        fp16_onnx: ``model.fp16.onnx`` or ``model.int8.onnx`` (its metadata carries the card and the audit).
        out_dir: Where the plan, its manifest and ``timing.cache`` go [default: beside the ONNX]. The plan's
            manifest names the ONNX by file name, so keep them together.
        batch: The profile's optimal batch (the runtime's batch size).
        max_batch: The profile's largest batch.
        verify: Run the plan against the float32 graph (``model.onnx`` beside, else the FP16 graph in ONNX
            Runtime) before keeping it.

    Returns:
        The plan's path.

    Raises:
        EngineUnavailable: No TensorRT, Polygraphy or GPU here (the message says how to get them).
        ExportError: Bad arguments or graph, or TensorRT failed to build.
        ParityError: The plan's output differs from the reference (nothing is written).
    """
    from impeccable.export.fp16 import FP16_ATOL
    from impeccable.export.int8 import INT8_ATOL

    fp16_onnx = Path(fp16_onnx)
    out_dir = Path(out_dir) if out_dir is not None else fp16_onnx.parent
    if not 1 <= batch <= max_batch:
        raise ExportError("batch sizes out of order", received=f"batch {batch}, max batch {max_batch}",
                          expected="1 <= batch <= max batch", todo="pass --batch B --max-batch M with B <= M")
    reason = why_no_engine()
    if reason:
        raise EngineUnavailable("no TensorRT engine built", received=reason, expected="TensorRT and an NVIDIA GPU",
                                todo=f"{GPU_EXTRA}, then run: impeccable-export MODEL_DIR --fp16")
    card, audit, precision = _read_graph(fp16_onnx)
    window = window_of(card)
    env = current_environment()

    import polygraphy
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, Profile, engine_bytes_from_network, network_from_onnx_path

    # TensorRT 11 types every network strongly and may drop the flag; TensorRT 10 needs it.
    strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    shape = (1, *window)
    profile = Profile().add("input", min=(1, *shape), opt=(batch, *shape), max=(max_batch, *shape))
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = out_dir / TIMING_CACHE_NAME
    started = time.perf_counter()
    try:
        network = network_from_onnx_path(str(fp16_onnx), strongly_typed=strongly_typed)
        config = CreateConfig(profiles=[profile], load_timing_cache=str(cache))
        plan_bytes = bytes(engine_bytes_from_network(network, config=config, save_timing_cache=str(cache)))
    except Exception as exc:  # Polygraphy raises PolygraphyException, TensorRT RuntimeError/TypeError
        raise ExportError("TensorRT could not build the engine", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          expected=f"a plan for {env['gpu']} with TensorRT {env['tensorrt']}",
                          todo="see the TensorRT log above; check the graph with: polygraphy inspect model "
                               f"{fp16_onnx}") from exc
    seconds = time.perf_counter() - started
    reference = fp16_onnx.with_name(ONNX_NAME) if fp16_onnx.with_name(ONNX_NAME).is_file() else fp16_onnx
    atol = FP16_ATOL if precision == PRECISION else INT8_ATOL
    verification = verify_plan(plan_bytes, reference, window, batch, atol) if verify else None

    plan = out_dir / plan_name(env["gpu"], precision)
    manifest = make_manifest(env, sha256_file(fp16_onnx), fp16_onnx.name, precision,
                             {"input": "input", "min": 1, "opt": batch, "max": max_batch, "shape": list(shape)},
                             card, fp16_audit=audit if precision == PRECISION else None, plan=plan.name,
                             builder={"strongly_typed": strongly_typed, "timing_cache": TIMING_CACHE_NAME,
                                      "polygraphy": polygraphy.__version__, "build_seconds": round(seconds, 1),
                                      "verification": verification})
    if precision != PRECISION:
        manifest[f"{precision}_audit"] = audit
    if fp16_onnx.parent.resolve() != out_dir.resolve():
        manifest["onnx_dir"] = str(fp16_onnx.parent.resolve())
    # a reader never sees half a plan or half a manifest
    with atomic_write(plan) as f:
        f.tmp.write_bytes(plan_bytes)
    with atomic_write(manifest_path(plan)) as f:
        f.tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return plan
