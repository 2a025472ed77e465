"""The manifest beside a TensorRT plan, and the stale check the runtime runs before deserializing it.

A plan only runs on the TensorRT version and the GPU it was built for, and it only means something for the ONNX
it was built from. TensorRT notices a mismatch late (it logs and returns ``None``, or, across SKUs of one
architecture, warns and may run a plan tuned for another chip), so ``<plan>.json`` records what the plan depends
on and :func:`check_plan` compares it with this machine first.

Torch-free, ONNX-free: standard library and numpy only. :func:`current_environment` imports ``tensorrt`` and
cuda-python lazily and falls back to ``nvidia-smi``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import subprocess
from typing import Any

from impeccable.core.errors import ModelError

FORMAT_VERSION = 1
PRECISION = "fp16"
PLAN_SUFFIX = ".plan"

#: Environment keys a plan depends on, with their names in messages. CUDA and driver versions are recorded
#: but not compared: a plan runs on any driver that supports its TensorRT build.
CHECKED_KEYS = (("tensorrt_version", "TensorRT"), ("gpu_name", "GPU"), ("compute_capability", "compute capability"))


def gpu_slug(gpu_name: str) -> str:
    """File-name form of a GPU name: ``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    return slug or "unknown-gpu"


def plan_name(gpu_name: str, precision: str = PRECISION) -> str:
    """The plan's file name: ``model.<gpu-slug>.<precision>.plan``."""
    return f"model.{gpu_slug(gpu_name)}.{precision}{PLAN_SUFFIX}"


def manifest_name(plan: str) -> str:
    """The manifest's file name for a plan file name: ``<plan>.json``."""
    return f"{plan}.json"


def rebuild_command(model_dir: object = None) -> str:
    """The command that rebuilds a plan for this machine."""
    return f"impeccable-export {model_dir or 'MODEL_DIR'} --fp16"


def make_manifest(*, env: dict[str, Any], onnx_name: str, onnx_sha256: str, profile: dict[str, Any],
                  card: dict[str, Any], fp16_audit: dict[str, Any] | None, plan: str,
                  precision: str = PRECISION, builder: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a freshly built plan.

    Args:
        env: :func:`current_environment` of the machine that built the plan.
        onnx_name: File name of the ONNX the plan was parsed from (beside the plan), e.g. ``model.fp16.onnx``.
        onnx_sha256: That file's sha256.
        profile: The optimization profile: ``input`` (tensor name), ``min``/``opt``/``max`` full shapes.
        card: The model card.
        fp16_audit: Summary of the FP16 range audit (which nodes stayed FP32 and why), or None.
        plan: The plan's file name.
        precision: Precision path (``fp16``: FP16 baked into the ONNX, strongly typed network).
        builder: Build settings worth keeping (strongly typed, timing cache, Polygraphy version).
    """
    return {
        "format_version": FORMAT_VERSION,
        "plan": plan,
        "precision": precision,
        "tensorrt_version": env.get("tensorrt_version"),
        "cuda_runtime_version": env.get("cuda_runtime_version"),
        "cuda_driver_version": env.get("cuda_driver_version"),
        "driver_version": env.get("driver_version"),
        "gpu_name": env.get("gpu_name"),
        "compute_capability": env.get("compute_capability"),
        "onnx_name": onnx_name,
        "onnx_sha256": onnx_sha256,
        "profile": profile,
        "fp16_audit": fp16_audit,
        "builder": builder or {},
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "card": card,
    }


def stale_reasons(manifest: dict[str, Any], env: dict[str, Any], onnx_sha256: str | None) -> list[str]:
    """Why a plan cannot be trusted here; empty when it can. Pure: no I/O.

    Args:
        manifest: The plan's manifest (:func:`make_manifest`).
        env: This machine (:func:`current_environment`). A value that is None (not known here) is not compared:
            TensorRT itself still refuses a plan it cannot run.
        onnx_sha256: sha256 of the ONNX beside the plan that it claims to be built from; None when that file is
            absent (nothing to compare).
    """
    reasons = []
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        reasons.append(f"manifest format {version!r} is not one this toolkit reads (<= {FORMAT_VERSION})")
    for key, label in CHECKED_KEYS:
        built, here = manifest.get(key), env.get(key)
        if built is None:
            reasons.append(f"manifest does not record the {label}")
        elif here is not None and str(built) != str(here):
            reasons.append(f"built for {label} {built}, this machine has {here}")
    built_from = manifest.get("onnx_sha256")
    if onnx_sha256 is not None and built_from != onnx_sha256:
        name = manifest.get("onnx_name", "the ONNX")
        reasons.append(f"built from another {name} (sha256 {str(built_from)[:12]}..., the file beside it has "
                       f"{onnx_sha256[:12]}...)")
    return reasons


def check_plan(manifest: dict[str, Any], env: dict[str, Any], onnx_sha256: str | None,
               model_dir: object = None) -> None:
    """Refuse a stale plan before anything deserializes it.

    Args:
        manifest: The plan's manifest.
        env: This machine (:func:`current_environment`).
        onnx_sha256: sha256 of the ONNX beside the plan (None: not compared).
        model_dir: Directory named in the rebuild command [default: the placeholder ``MODEL_DIR``].

    Raises:
        ModelError: The plan is stale; the message lists why and names the command that rebuilds it.
    """
    reasons = stale_reasons(manifest, env, onnx_sha256)
    if reasons:
        raise ModelError(f"TensorRT plan {manifest.get('plan', '')} is stale".replace("  ", " "),
                         received="; ".join(reasons), expected="a plan built on this GPU and TensorRT from this ONNX",
                         todo=f"rebuild the plan: {rebuild_command(model_dir)}")


def current_environment(device: int = 0) -> dict[str, Any]:
    """What a plan depends on, on this machine; best effort, None where unknown.

    Keys: ``tensorrt_version``, ``gpu_name``, ``compute_capability`` (``"9.0"``), ``cuda_runtime_version``,
    ``cuda_driver_version`` (``"12.8"``), ``driver_version`` (``"570.86.15"``, from nvidia-smi).

    Args:
        device: CUDA device index (as CUDA numbers devices, after ``CUDA_VISIBLE_DEVICES``).
    """
    env: dict[str, Any] = {key: None for key in ("tensorrt_version", "gpu_name", "compute_capability",
                                                 "cuda_runtime_version", "cuda_driver_version", "driver_version")}
    try:
        import tensorrt

        env["tensorrt_version"] = str(tensorrt.__version__)
    except Exception:  # missing, or installed but broken (missing libnvinfer): the version stays unknown
        pass
    env.update({k: v for k, v in _cuda_properties(device).items() if v is not None})
    smi = _nvidia_smi(device)
    for key, value in smi.items():
        if env.get(key) is None:
            env[key] = value
    return env


def _cuda_version(number: int) -> str:
    """CUDA's integer version (12080) as text ("12.8")."""
    return f"{number // 1000}.{number % 1000 // 10}"


def _cuda_properties(device: int) -> dict[str, Any]:
    """GPU name, compute capability and CUDA versions from cuda-python (the ``[gpu]`` extra); {} without it."""
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:  # cuda-python < 12.6 spelled it this way
            from cuda import cudart
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(err) != 0:
            return {}
        name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
        out: dict[str, Any] = {"gpu_name": name.split("\x00")[0].strip(),
                               "compute_capability": f"{prop.major}.{prop.minor}"}
        err, runtime = cudart.cudaRuntimeGetVersion()
        if int(err) == 0:
            out["cuda_runtime_version"] = _cuda_version(int(runtime))
        err, driver = cudart.cudaDriverGetVersion()
        if int(err) == 0:
            out["cuda_driver_version"] = _cuda_version(int(driver))
        return out
    except Exception:  # no cuda-python, no driver, no device: every field stays unknown
        return {}


def _nvidia_smi(device: int) -> dict[str, Any]:
    """GPU name, compute capability and driver version from ``nvidia-smi``; {} without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    # nvidia-smi ignores CUDA_VISIBLE_DEVICES: map CUDA's index back to the physical one where it is a list of ints.
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    index = visible[device] if device < len(visible) else str(device)
    try:
        text = subprocess.run([exe, f"--id={index}", "--query-gpu=name,compute_cap,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = [f.strip() for f in text.strip().splitlines()[0].split(",")] if text.strip() else []
    if len(fields) != 3:
        return {}
    name, capability, driver = fields
    return {"gpu_name": name or None, "compute_capability": capability if re.fullmatch(r"\d+\.\d+", capability) else None,
            "driver_version": driver or None}
