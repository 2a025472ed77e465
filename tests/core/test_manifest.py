"""The plan manifest and the stale check (pure: runs without TensorRT or a GPU)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from impeccable.core.errors import ModelError
from impeccable.core import manifest as mf

HERE = {"tensorrt": "10.13.0.35", "cuda": "12.9", "cuda_driver": "12.8", "driver": "570.86.15",
        "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
SHA = "a" * 64
CARD = {"input_size": [320, 1280], "smp": {"arch": "UnetPlusPlus"}, "output_activation": "sigmoid"}


def built(**changes):
    env = {**HERE, **{k: v for k, v in changes.items() if k in HERE}}
    manifest = mf.make_manifest(env, SHA, "model.fp16.onnx", "fp16", {"min": 1, "opt": 8, "max": 32}, CARD,
                                fp16_audit={"margin": 16.0, "blocked": []}, plan=mf.plan_name(env["gpu"]))
    manifest.update({k: v for k, v in changes.items() if k not in HERE})
    return manifest


def test_make_manifest_records_what_the_plan_depends_on():
    m = built()
    assert m["plan"] == "model.nvidia-h100-80gb-hbm3.fp16.plan"
    assert {k: m[k] for k in HERE} == HERE
    assert m["onnx_sha256"] == SHA and m["onnx_name"] == "model.fp16.onnx" and m["precision"] == "fp16"
    assert m["profile"] == {"min": 1, "opt": 8, "max": 32} and m["card"] == CARD
    assert m["fp16_audit"]["margin"] == 16.0 and m["format_version"] == mf.FORMAT_VERSION and m["built_at"]


@pytest.mark.parametrize(("manifest", "env", "sha", "expected"), [
    (built(), HERE, SHA, []),
    (built(), HERE, None, []),  # no ONNX beside the plan: nothing to compare
    (built(), dict.fromkeys(HERE), SHA, []),  # nothing known here: TensorRT itself will judge
    (built(gpu="NVIDIA A100-SXM4-80GB"), HERE, SHA, ["built for GPU NVIDIA A100-SXM4-80GB, this machine has NVIDIA H100"]),
    (built(compute_capability="8.0"), HERE, SHA, ["built for compute capability 8.0, this machine has 9.0"]),
    (built(gpu="NVIDIA L4", compute_capability="8.9"), HERE, SHA, ["built for GPU NVIDIA L4", "compute capability 8.9"]),
    (built(tensorrt="10.9.0.34"), HERE, SHA, ["built for TensorRT 10.9.0.34, this machine has 10.13.0.35"]),
    (built(tensorrt="11.4.0.106"), HERE, SHA, ["built for TensorRT 11.4.0.106"]),
    (built(), HERE, "b" * 64, ["built from another ONNX file than the model.fp16.onnx beside it"]),
    (built(cuda="13.0", driver="580.1"), HERE, SHA, []),  # CUDA and driver versions are recorded, not compared
    (built(format_version=2), HERE, SHA, ["manifest format 2 is not one this toolkit reads"]),
    ({"format_version": 1}, HERE, None, ["does not record the GPU", "does not record the compute capability",
                                         "does not record the TensorRT"]),
])
def test_stale_reasons(manifest, env, sha, expected):
    reasons = mf.stale_reasons(manifest, env, sha)
    assert len(reasons) == len(expected), reasons
    for reason, part in zip(reasons, expected):
        assert part in reason


def test_check_plan_names_the_rebuild_command():
    mf.check_plan(built(), HERE, SHA)  # fresh: no error
    with pytest.raises(ModelError, match=r"TensorRT model.nvidia-a10.fp16.plan is stale \| received built for GPU "
                                         r"NVIDIA A10.* \| rebuild it: impeccable-export /models/x --fp16$"):
        mf.check_plan(built(gpu="NVIDIA A10"), HERE, SHA, model_dir="/models/x")
    with pytest.raises(ModelError, match=r"rebuild it: impeccable-export MODEL_DIR --fp16"):
        mf.check_plan(built(), HERE, "c" * 64)


@pytest.mark.parametrize(("name", "slug"), [
    ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
    ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
    ("NVIDIA A100-SXM4-80GB", "nvidia-a100-sxm4-80gb"),
    ("  Tesla T4 ", "tesla-t4"),
    ("???", "unknown-gpu"),
])
def test_gpu_slug(name, slug):
    assert mf.gpu_slug(name) == slug
    assert mf.plan_name(name) == f"model.{slug}.fp16.plan"


def test_manifest_path_and_onnx_hash(tmp_path):
    from impeccable.core.card import sha256_file

    assert mf.manifest_path(tmp_path / "model.x.fp16.plan") == tmp_path / "model.x.fp16.plan.json"
    assert mf.onnx_hash_for(tmp_path, built()) is None
    (tmp_path / "model.fp16.onnx").write_bytes(b"graph")
    assert mf.onnx_hash_for(tmp_path, built()) == sha256_file(tmp_path / "model.fp16.onnx")


def test_current_environment_without_gpu_or_tensorrt(monkeypatch):
    monkeypatch.setattr(mf.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails like a machine without it
    monkeypatch.setattr(mf, "_cuda_properties", lambda device: {})
    assert mf.current_environment() == dict.fromkeys(mf.ENV_KEYS)


def test_current_environment_reads_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 9.0, 570.86.15'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setattr(mf, "_cuda_properties", lambda device: {})
    env = mf.current_environment()
    assert (env["gpu"], env["compute_capability"], env["driver"]) == ("NVIDIA H100 80GB HBM3", "9.0", "570.86.15")


def test_manifest_module_is_torch_free():
    code = ("import sys, impeccable.core.manifest, impeccable.export; "
            "print(sorted(m for m in ('torch', 'onnx', 'tensorrt', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
