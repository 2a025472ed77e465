"""TensorRT plan build: what happens without TensorRT (here), and the real build on a GPU machine."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from conftest import TINY_WINDOW

from impeccable.core.errors import ExportError
from impeccable.export import tensorrt_build
from impeccable.export.tensorrt_build import EngineUnavailable, build_engine, why_no_engine


def test_why_no_engine_names_the_missing_piece():
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    assert "tensorrt" in why_no_engine()


def test_build_without_tensorrt_says_how_to_get_one(fp16_dir, monkeypatch):
    monkeypatch.setattr(tensorrt_build, "why_no_engine", lambda: "tensorrt not installed")
    with pytest.raises(EngineUnavailable, match=r"no TensorRT engine built \| received tensorrt not installed .*"
                                                r"pip install 'impeccable\[gpu\]' on a machine with an NVIDIA GPU"):
        build_engine(fp16_dir / "model.fp16.onnx")
    assert not list(fp16_dir.glob("*.plan"))


def test_build_refuses_bad_batches(fp16_dir):
    with pytest.raises(ExportError, match="batch sizes out of order"):
        build_engine(fp16_dir / "model.fp16.onnx", batch=16, max_batch=8)


def test_only_fp16_graphs_are_built(fp16_dir):
    card, audit = tensorrt_build._read_fp16_graph(fp16_dir / "model.fp16.onnx")
    assert card["input_size"] == list(TINY_WINDOW) and audit["blocked"]
    with pytest.raises(ExportError, match="not an FP16 graph written by impeccable-export"):
        tensorrt_build._read_fp16_graph(fp16_dir / "model.onnx")


def _tta(run, images: np.ndarray, batch: int) -> np.ndarray:
    return tensorrt_build._tta(run, images, batch)


@pytest.mark.gpu
def test_tensorrt_plan_matches_pytorch_on_the_denoised_field(fp16_dir, model_copy):
    """Build on this GPU, then TensorRT FP16 vs PyTorch FP32 with flip TTA at batch 1 and 8."""
    pytest.importorskip("tensorrt")
    pytest.importorskip("polygraphy")
    if why_no_engine():
        pytest.skip(why_no_engine())
    import torch
    from polygraphy.backend.trt import TrtRunner, engine_from_path

    from impeccable.export.fp16 import compare_fields
    from impeccable.core.manifest import check_plan, current_environment, manifest_path, onnx_hash_for, plan_name
    from impeccable.export.onnx_export import synthetic_sections
    from impeccable.models.checkpoint import load_model

    model_dir = model_copy(fp16_dir)
    plan = build_engine(model_dir / "model.fp16.onnx", batch=8, max_batch=16)
    env = current_environment()
    assert plan.name == plan_name(env["gpu"]) and (model_dir / "timing.cache").is_file()
    manifest = json.loads(manifest_path(plan).read_text())
    check_plan(manifest, env, onnx_hash_for(model_dir, manifest))  # fresh where it was built
    assert manifest["profile"]["min"] == 1 and manifest["profile"]["opt"] == 8 and manifest["profile"]["max"] == 16
    assert manifest["fp16_audit"]["blocked"] and manifest["builder"]["verification"]["batch_8"]["finite"]

    model, _ = load_model(model_dir)
    images = synthetic_sections(TINY_WINDOW, 8, seed=11)
    with torch.inference_mode():
        reference = _tta(lambda x: model(torch.from_numpy(np.ascontiguousarray(x))).numpy(), images, 8)
    measured = {}
    with TrtRunner(engine_from_path(str(plan))) as runner:
        for batch in (1, 8):
            got = _tta(lambda x: runner.infer({"input": x})["output"], images, batch)
            measured[batch] = compare_fields(reference[:, 0], got[:, 0])
    print(f"TensorRT {env['tensorrt']} FP16 on {env['gpu']} vs PyTorch FP32, flip TTA: {measured}")
    for batch, stats in measured.items():
        assert stats["finite"] and stats["max_abs"] <= 2e-2 and stats["min_ssim"] >= 0.98, (batch, stats)
