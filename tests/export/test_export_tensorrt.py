"""TensorRT plan build: what happens without TensorRT (here), the plan check with a stand-in runner that behaves
like Polygraphy's (here), and the real build on a GPU machine."""

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
                                                r"pip install '\.\[gpu\]' in the impeccable clone \(not on PyPI\), on a "
                                                r"machine with an NVIDIA GPU"):
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
    """Flip TTA of padded images the runtime's way (:func:`impeccable.core.tiling.predict_sections`)."""
    from impeccable.core.tiling import predict_sections

    return predict_sections(images[:, 0], run, images.shape[-2:], tta=True, batch=batch)[:, None]


class ReusingRunner:
    """Stands in for Polygraphy's ``TrtRunner``: runs the float32 graph in ONNX Runtime, and returns views of ONE
    output buffer that the next ``infer`` overwrites, as ``TrtRunner.infer`` does (its docstring says to copy)."""

    def __init__(self, onnx_path, fail: Exception | None = None):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.fail, self.buffer = fail, None

    def __enter__(self):
        if self.fail is not None:  # e.g. libcudart not found when the runner allocates its buffers
            raise self.fail
        return self

    def __exit__(self, *exc):
        return False

    def infer(self, feed):
        out = self.session.run(["output"], feed)[0]
        if self.buffer is None or len(self.buffer) < len(out):
            self.buffer = np.empty((64, *out.shape[1:]), dtype=np.float32)
        self.buffer[:len(out)] = out
        return {"output": self.buffer[:len(out)]}


def _stand_in(monkeypatch, onnx_path, fail=None):
    import polygraphy.backend.trt as poly_trt

    monkeypatch.setattr(poly_trt, "TrtRunner", lambda engine: ReusingRunner(onnx_path, fail))
    monkeypatch.setattr(poly_trt, "engine_from_bytes", lambda plan_bytes: plan_bytes)


def test_plan_check_copies_the_runners_reused_outputs(exported_dir, monkeypatch):
    """A plan that computes exactly the float32 graph passes; without copying the runner's outputs flip TTA
    averaged the mirrored output with itself and the check failed every plan."""
    pytest.importorskip("polygraphy")
    _stand_in(monkeypatch, exported_dir / "model.onnx")
    result = tensorrt_build.verify_plan(b"plan", exported_dir / "model.onnx", TINY_WINDOW, 4, atol=1e-6)
    assert result["batch_1"]["max_abs"] == 0 and result["batch_4"]["max_abs"] == 0


def test_trt_infer_returns_results_the_next_call_cannot_change(exported_dir):
    runner = ReusingRunner(exported_dir / "model.onnx")
    run = tensorrt_build.trt_infer(runner)
    rng = np.random.default_rng(0)
    a, b = (rng.random((2, 1, *TINY_WINDOW), dtype=np.float32) for _ in range(2))
    first = run(a)
    kept = first.copy()
    run(b)
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("error", [OSError("libcudart.so: cannot open shared object file"),
                                   RuntimeError("CUDA error 100: no CUDA-capable device is detected")])
def test_plan_check_failures_are_one_line_export_errors(exported_dir, monkeypatch, error):
    pytest.importorskip("polygraphy")
    _stand_in(monkeypatch, exported_dir / "model.onnx", fail=error)
    with pytest.raises(ExportError, match=r"could not be run to check it \| received " + type(error).__name__
                       + r".*\.\[gpu\]") as info:
        tensorrt_build.verify_plan(b"plan", exported_dir / "model.onnx", TINY_WINDOW, 4, atol=1e-6)
    assert "\n" not in str(info.value) and info.value.__cause__ is error


def test_the_timing_cache_is_described_as_tensorrt_uses_it():
    """TensorRT ignores a timing cache written by another TensorRT version (NVIDIA/TensorRT#3566)."""
    doc = " ".join(tensorrt_build.__doc__.split())
    assert "a new TensorRT" not in doc
    assert "ignores a cache written by another TensorRT version" in doc


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
            got = _tta(tensorrt_build.trt_infer(runner), images, batch)  # outputs copied out of the runner
            measured[batch] = compare_fields(reference[:, 0], got[:, 0])
    print(f"TensorRT {env['tensorrt']} FP16 on {env['gpu']} vs PyTorch FP32, flip TTA: {measured}")
    for batch, stats in measured.items():
        assert stats["finite"] and stats["max_abs"] <= 2e-2 and stats["min_ssim"] >= 0.98, (batch, stats)
