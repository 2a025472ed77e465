"""Build the FP16 TensorRT engine through Polygraphy: strongly typed, one batch profile, a timing cache.

The network is parsed strongly typed from ``model.fp16.onnx`` (the precision is in the graph), which is the
one path that works on TensorRT 10 (where the FP16 builder flag is deprecated) and 11 (where it is gone).
"""

from __future__ import annotations

import json
from pathlib import Path

from impeccable.core.card import sha256_file
from impeccable.core.errors import ExportError
from impeccable.export.manifest import current_environment, make_manifest, plan_name

TIMING_CACHE = "timing.cache"


def why_no_engine() -> str | None:
    """Why no engine can be built here (no TensorRT, Polygraphy or GPU), or None."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed"
    if importlib.util.find_spec("polygraphy") is None:
        return "Polygraphy is not installed"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU was found"
    return None


def build_engine(fp16_onnx: Path, out_dir: Path, card: dict, batch: int = 8, max_batch: int = 32,
                 audit: dict | None = None) -> Path:
    """Build ``model.<gpu>.fp16.plan`` + manifest in ``out_dir`` and return the plan path."""
    from polygraphy.backend.trt import CreateConfig, Profile, engine_bytes_from_network, network_from_onnx_path

    env = current_environment()
    if "gpu" not in env:
        raise ExportError("cannot query the GPU", received=env, expected="cuda-python and a CUDA device",
                          todo="pip install 'impeccable[gpu]'")
    rows, cols = card["input_size"]
    profile = Profile().add("input", min=(1, 1, rows, cols), opt=(batch, 1, rows, cols), max=(max_batch, 1, rows, cols))
    cache = out_dir / TIMING_CACHE
    try:
        network = network_from_onnx_path(str(fp16_onnx), strongly_typed=True)
        config = CreateConfig(profiles=[profile], load_timing_cache=str(cache))
        plan_bytes = engine_bytes_from_network(network, config=config, save_timing_cache=str(cache))
    except Exception as exc:
        raise ExportError("TensorRT engine build failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          expected="a parsable FP16 ONNX", todo="inspect it with polygraphy inspect model") from exc
    plan = out_dir / plan_name(env["gpu"])
    plan.write_bytes(bytes(plan_bytes))
    manifest = make_manifest(env, sha256_file(fp16_onnx), fp16_onnx.name, "fp16",
                             {"min": 1, "opt": batch, "max": max_batch}, card, audit)
    plan.with_name(plan.name + ".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return plan
