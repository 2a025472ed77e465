"""The manifest beside a TensorRT plan, and the stale check the runtime runs before deserializing the plan.

A plan only runs on the TensorRT version and the GPU it was built for, and it only means something for the ONNX
it was parsed from. TensorRT notices a mismatch late (it logs and returns ``None``; across SKUs of one
architecture it warns and may run a plan tuned for another chip), so ``<plan>.json`` records what the plan
depends on and :func:`check_plan` compares it with this machine first.

In core because both sides need it: export writes the manifest (:func:`make_manifest`), the runtime reads and
checks it (:func:`check_fresh`) before TensorRT sees the plan. Standard library only, no torch, onnx or
TensorRT at import: :func:`current_environment` imports ``tensorrt`` and cuda-python lazily and falls back to
``nvidia-smi``.

Environment and manifest share these keys: ``tensorrt`` (version), ``cuda`` (CUDA runtime version),
``cuda_driver`` (the CUDA version the driver supports), ``driver`` (NVIDIA driver version), ``gpu`` (device
name), ``compute_capability`` (``"9.0"``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from impeccable.core.card import sha256_file
from impeccable.core.errors import ModelError

FORMAT_VERSION = 1
PRECISION = "fp16"
PLAN_SUFFIX = ".plan"
ENV_KEYS = ("tensorrt", "cuda", "cuda_driver", "driver", "gpu", "compute_capability")

#: Keys a plan depends on, with their names in messages. CUDA and driver versions are recorded, not compared:
#: a plan runs on any driver that supports the CUDA its TensorRT build uses, and TensorRT checks that itself.
CHECKED_KEYS = (("gpu", "GPU"), ("compute_capability", "compute capability"), ("tensorrt", "TensorRT"))


def gpu_slug(gpu_name: str) -> str:
    """File-name form of a GPU name: ``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    return slug or "unknown-gpu"


def plan_name(gpu_name: str, precision: str = PRECISION) -> str:
    """The plan's file name: ``model.<gpu-slug>.<precision>.plan``."""
    return f"model.{gpu_slug(gpu_name)}.{precision}{PLAN_SUFFIX}"


def manifest_path(plan: str | Path) -> Path:
    """Where a plan's manifest lives: ``<plan>.json``."""
    plan = Path(plan)
    return plan.with_name(plan.name + ".json")


def read_manifest(plan: str | Path) -> dict[str, Any]:
    """The manifest beside ``plan`` (TensorRT/CUDA versions, GPU, ONNX sha256, precision, profile, card).

    Raises:
        ModelError: Missing or unreadable manifest, or not a JSON object.
    """
    plan = Path(plan)
    path = manifest_path(plan)
    rebuild = f"rebuild the plan: {rebuild_command(plan.parent)}"
    if not path.is_file():
        raise ModelError("TensorRT plan has no manifest", received=str(plan), expected=str(path), todo=rebuild)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError("TensorRT plan manifest is unreadable", received=f"{path}: {exc}", expected="JSON",
                         todo=rebuild) from exc
    if not isinstance(manifest, dict):
        raise ModelError("TensorRT plan manifest is not a JSON object", received=str(path), expected="an object",
                         todo=rebuild)
    return manifest


def check_fresh(plan: str | Path) -> dict[str, Any]:
    """Refuse a plan built for another GPU, TensorRT or ONNX; returns its manifest. Deserializes nothing.

    Raises:
        ModelError: Missing manifest, or a stale plan (the message names the rebuild command).
    """
    plan = Path(plan)
    manifest = read_manifest(plan)
    check_plan(manifest, current_environment(), onnx_hash_for(plan.parent, manifest), model_dir=plan.parent)
    return manifest


def rebuild_command(model_dir: object = None) -> str:
    """The command that rebuilds a plan on this machine."""
    return f"impeccable-export {model_dir or 'MODEL_DIR'} --fp16"


def make_manifest(env: dict[str, Any], onnx_sha256: str, onnx_name: str, precision: str, profile: dict[str, Any],
                  card: dict[str, Any], fp16_audit: dict[str, Any] | None = None, plan: str | None = None,
                  builder: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a freshly built plan (a JSON-ready dict).

    Args:
        env: :func:`current_environment` of the machine that built the plan.
        onnx_sha256: sha256 of the ONNX the plan was parsed from.
        onnx_name: That file's name, beside the plan (e.g. ``model.fp16.onnx``).
        precision: Precision path, ``fp16``: FP16 baked into the ONNX, parsed as a strongly typed network.
        profile: The optimization profile on the batch axis: ``{"min": 1, "opt": 8, "max": 32}`` (more keys,
            such as the input name and full shapes, are kept as given).
        card: The model card.
        fp16_audit: Summary of the FP16 range audit (margin, peaks, nodes kept in float32).
        plan: The plan's file name.
        builder: Build settings worth keeping (strongly typed, timing cache, Polygraphy version).
    """
    manifest: dict[str, Any] = {"format_version": FORMAT_VERSION, "plan": plan, "precision": precision}
    manifest.update({key: env.get(key) for key in ENV_KEYS})
    manifest.update({
        "onnx_name": onnx_name,
        "onnx_sha256": onnx_sha256,
        "profile": dict(profile),
        "fp16_audit": fp16_audit,
        "builder": dict(builder or {}),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "card": card,
    })
    return manifest


def stale_reasons(manifest: dict[str, Any], env: dict[str, Any], onnx_sha256: str | None) -> list[str]:
    """Why a plan cannot be trusted on this machine; empty when it can. Pure: no I/O.

    Args:
        manifest: The plan's manifest (:func:`make_manifest`).
        env: This machine (:func:`current_environment`). A value that is None (unknown here) is not compared:
            TensorRT itself still refuses a plan it cannot deserialize.
        onnx_sha256: sha256 of the ONNX beside the plan, the one it claims to be built from; None when that file
            is absent (nothing to compare).
    """
    reasons = []
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        reasons.append(f"manifest format {version!r} is not one this toolkit reads (<= {FORMAT_VERSION})")
    for key, label in CHECKED_KEYS:
        built, here = manifest.get(key), env.get(key)
        if built is None:
            reasons.append(f"the manifest does not record the {label}")
        elif here is not None and str(built) != str(here):
            reasons.append(f"built for {label} {built}, this machine has {here}")
    built_from = manifest.get("onnx_sha256")
    if onnx_sha256 is not None and built_from != onnx_sha256:
        reasons.append(f"built from another ONNX file than the {manifest.get('onnx_name', 'ONNX')} beside it "
                       f"(sha256 {str(built_from)[:12]}... vs {onnx_sha256[:12]}...)")
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
        ModelError: The plan is stale; the message says why and names the command that rebuilds it.
    """
    reasons = stale_reasons(manifest, env, onnx_sha256)
    if reasons:
        name = manifest.get("plan") or "plan"
        raise ModelError(f"TensorRT {name} is stale", received="; ".join(reasons),
                         expected="a plan built on this GPU with this TensorRT from the ONNX beside it",
                         todo=f"rebuild it: {rebuild_command(model_dir)}")


def onnx_hash_for(directory: str | Path, manifest: dict[str, Any]) -> str | None:
    """sha256 of the manifest's ONNX file in ``directory`` (beside the plan), or None when it is not there."""
    name = manifest.get("onnx_name")
    path = Path(directory) / str(name) if name else None
    return sha256_file(path) if path is not None and path.is_file() else None


def current_environment(device: int = 0) -> dict[str, Any]:
    """What a plan depends on, on this machine; best effort, None where unknown.

    Returns:
        ``{"tensorrt": "10.13.0.35", "cuda": "12.9", "cuda_driver": "12.8", "driver": "570.86.15",
        "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}``, with None for what cannot be found
        (no TensorRT, no cuda-python, no GPU).

    Args:
        device: CUDA device index (as CUDA numbers devices, after ``CUDA_VISIBLE_DEVICES``).
    """
    env: dict[str, Any] = dict.fromkeys(ENV_KEYS)
    try:
        import tensorrt

        env["tensorrt"] = str(tensorrt.__version__)
    except Exception:  # missing, or installed but broken (no libnvinfer): the version stays unknown
        pass
    for source in (_cuda_properties(device), _nvidia_smi(device)):
        for key, value in source.items():
            if env.get(key) is None and value is not None:
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
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        out: dict[str, Any] = {"gpu": name.split("\x00")[0].strip() or None,
                               "compute_capability": f"{prop.major}.{prop.minor}"}
        err, runtime = cudart.cudaRuntimeGetVersion()
        if int(err) == 0:
            out["cuda"] = _cuda_version(int(runtime))
        err, driver = cudart.cudaDriverGetVersion()
        if int(err) == 0:
            out["cuda_driver"] = _cuda_version(int(driver))
        return out
    except Exception:  # no cuda-python, no driver, no device: every field stays unknown
        return {}


def _nvidia_smi(device: int) -> dict[str, Any]:
    """GPU name, compute capability and driver version from ``nvidia-smi``; {} without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    # nvidia-smi ignores CUDA_VISIBLE_DEVICES: map CUDA's index back to the physical one (an index or a UUID).
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    index = visible[device] if device < len(visible) else str(device)
    try:
        text = subprocess.run([exe, f"--id={index}", "--query-gpu=name,compute_cap,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = [f.strip() for f in text.splitlines()[0].split(",")] if text else []
    if len(fields) != 3:
        return {}
    name, capability, driver = fields
    return {"gpu": name or None, "compute_capability": capability if re.fullmatch(r"\d+\.\d+", capability) else None,
            "driver": driver or None}
