"""Every available engine against the torch reference, on the denoised field itself (DESIGN §6, issue 5).

Bounds: fp32 engines max |difference| <= 1e-4 in unit scale; bf16 / fp16 engines the challenge's SSIM (uint8
min-max rescale, skimage SSIM) >= 0.999 on every section and max |difference| <= 2e-2. At batch 1 and 4
(with a partial last batch), flip TTA on and off. TensorRT is wrong only at batch > 1 in some open bugs, so
both batch sizes always run.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest_engines import (  # noqa: F401 (fixtures)
    SECTION,
    engine_model_dir,
    pad_to_window,
    predict_sections,
    synthetic_sections,
    torch_reference,
)

from impeccable.data.scoring import section_ssim, to_uint8_volume
from impeccable.runtime import engines
from impeccable.runtime.engines import create_engine

FP32_MAX_ABS = 1e-4
LOW_MAX_ABS = 2e-2
LOW_MIN_SSIM = 0.999
# What opt-in OpenVINO bf16 measured (tiny model: SSIM 0.998, max abs 0.026; real v2s: SSIM 0.998, max abs 0.013):
# outside the bound above, hence not the default; these looser bounds catch it getting worse.
BF16_OPT_IN_MAX_ABS = 5e-2
BF16_OPT_IN_MIN_SSIM = 0.995
BF16_MISSES = pytest.mark.xfail(reason="OpenVINO bf16 measures challenge SSIM ~0.998 < 0.999 against torch fp32: "
                                       "opt-in only (ov_engine.DEFAULT_PRECISION is fp32)")

ENGINES = [
    pytest.param("onnxruntime", {"device": "cpu"}, id="onnxruntime-fp32"),
    pytest.param("openvino", {"precision": "fp32"}, id="openvino-fp32"),
    pytest.param("openvino", {"precision": "bf16"}, id="openvino-bf16", marks=BF16_MISSES),
    pytest.param("openvino", {}, id="openvino-default"),
    pytest.param("onnxruntime", {"device": "cuda"}, id="onnxruntime-cuda-fp32", marks=pytest.mark.gpu),
    pytest.param("onnxruntime", {"device": "cuda", "precision": "fp16"}, id="onnxruntime-cuda-fp16",
                 marks=pytest.mark.gpu),
    pytest.param("tensorrt", {}, id="tensorrt-fp16", marks=pytest.mark.gpu),
]


def challenge_ssim(reference: np.ndarray, output: np.ndarray) -> float:
    """Worst per-section SSIM of two ``(sections, traces, samples)`` stacks, each min-max scaled to uint8."""
    ref8, out8 = to_uint8_volume(reference), to_uint8_volume(output)
    return min(section_ssim(r, o) for r, o in zip(ref8, out8))


def assert_parity(reference: np.ndarray, output: np.ndarray, precision: str, max_abs: float = LOW_MAX_ABS,
                  min_ssim: float = LOW_MIN_SSIM) -> None:
    """The engine-precision bound against the fp32 torch reference (unit scale)."""
    assert np.isfinite(output).all()
    diff = float(np.abs(output.astype(np.float64) - reference).max())
    if precision == "fp32":
        assert diff <= FP32_MAX_ABS, f"max abs {diff:.3g} > {FP32_MAX_ABS:g}"
        return
    ssim = challenge_ssim(reference, output)
    assert diff <= max_abs and ssim >= min_ssim, f"max abs {diff:.3g}, worst section SSIM {ssim:.5f}"


@pytest.fixture(scope="module")
def plan_model_dir(engine_model_dir, tmp_path_factory):
    """The tiny model plus model.fp16.onnx and, on a GPU machine, a TensorRT plan for this GPU.

    Built everywhere with the real signatures (on a CPU, build_engine stops at EngineUnavailable after checking
    its arguments), so a call that no longer matches fails here and not only on the first GPU run.
    """
    import shutil

    fp16 = pytest.importorskip("impeccable.export.fp16")
    trt_build = pytest.importorskip("impeccable.export.tensorrt_build")
    model = tmp_path_factory.mktemp("plan-model") / "model"
    shutil.copytree(engine_model_dir, model)
    path = fp16.convert_fp16(model / "model.onnx", model, model / "model.fp16.onnx")
    try:
        trt_build.build_engine(path, model, batch=4, max_batch=8)
    except trt_build.EngineUnavailable:  # no TensorRT or no GPU here: the ORT fp16 cases still run
        pass
    return model


def test_plan_model_dir_is_built_with_the_real_signatures(plan_model_dir):
    """The fixture the TensorRT and ORT-CUDA-fp16 cases need, called on any machine."""
    from impeccable.core.card import ONNX_FP16_NAME

    assert (plan_model_dir / ONNX_FP16_NAME).is_file()
    trt_build = pytest.importorskip("impeccable.export.tensorrt_build")
    assert bool(list(plan_model_dir.glob("*.plan"))) == (trt_build.why_no_engine() is None)


def _images(n: int, seed: int) -> np.ndarray:
    return pad_to_window(synthetic_sections(n, seed=seed))


def _open(name: str, options: dict, engine_model_dir, request) -> object:
    if not engines.installed(name):
        pytest.skip(f"{name} is not installed")
    if name == "openvino" and options.get("precision") == "bf16":
        import openvino as ov

        if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            pytest.skip("this CPU has no bf16")
    if options.get("device") == "cuda" and not engines.ort_has_cuda():
        pytest.skip("onnxruntime-gpu is not installed")
    model = engine_model_dir
    if name == "tensorrt" or options.get("precision") == "fp16":
        model = request.getfixturevalue("plan_model_dir")
    return create_engine(name, model, batch_size=4, **options)


# Five sections: with TTA ten images, so batch 4 runs 4 + 4 + 2; without, 4 + 1.
SECTIONS = synthetic_sections(5, SECTION, seed=3)


@pytest.fixture(scope="module")
def references(torch_reference):
    return {tta: predict_sections(torch_reference, SECTIONS, batch=1, tta=tta) for tta in (True, False)}


@pytest.mark.parametrize(("name", "options"), ENGINES)
def test_engine_parity_with_torch(name, options, engine_model_dir, references, request):
    with _open(name, options, engine_model_dir, request) as engine:
        for batch in (1, 4):
            for tta in (True, False):
                out = predict_sections(engine, SECTIONS, batch=batch, tta=tta)
                assert out.shape == (5, *SECTION)
                try:
                    assert_parity(references[tta], out, engine.precision)
                except AssertionError as exc:
                    raise AssertionError(f"{name} {engine.precision} batch {batch} tta {tta}: {exc}") from None


def test_openvino_bf16_stays_in_its_measured_envelope(engine_model_dir, references, request):
    with _open("openvino", {"precision": "bf16"}, engine_model_dir, request) as engine:
        for batch in (1, 4):
            out = predict_sections(engine, SECTIONS, batch=batch, tta=True)
            assert_parity(references[True], out, "bf16", BF16_OPT_IN_MAX_ABS, BF16_OPT_IN_MIN_SSIM)


def test_parity_bounds_catch_a_wrong_engine(references):
    """The checks themselves: a shifted or blurred field must fail them."""
    ref = references[True]
    with pytest.raises(AssertionError, match="max abs"):
        assert_parity(ref, ref + 2e-4, "fp32")
    with pytest.raises(AssertionError, match="SSIM"):
        assert_parity(ref, ref + np.random.default_rng(0).normal(0, 5e-3, ref.shape), "bf16")
    assert_parity(ref, ref + 5e-5, "fp32")


# ---- whole volumes through the pipeline ----------------------------------------------------------------------

_VOLUME_REFERENCES: dict[tuple, np.ndarray] = {}  # torch's output per case, shared by the engines
VOLUME_CASES = [  # (batch, tta, views, time_first)
    (1, True, "both", False),
    (4, True, "inline", True),
    (4, False, "crossline", False),
]


@pytest.fixture(scope="module")
def volume_path(tmp_path_factory):
    """A small noisy volume ``(inline, crossline, sample)`` = (5, 40, 150): 150 samples need two 128-wide tiles."""
    vol = np.stack([synthetic_sections(1, (40, 150), seed=40 + i)[0] for i in range(5)]) * 300.0 - 120.0
    root = tmp_path_factory.mktemp("volumes")
    np.save(root / "time_last.npy", vol.astype(np.float32))
    np.save(root / "time_first.npy", np.moveaxis(vol, -1, 0).astype(np.float32))
    return root


def _denoise_volume(pipeline, engine, model, volume_dir, out_dir, batch, tta, views, time_first):
    from impeccable.runtime.config import DenoiseConfig

    name = "time_first.npy" if time_first else "time_last.npy"
    out = out_dir / f"{engine.name}-{engine.precision}-{batch}-{tta}-{views}-{name}"
    config = DenoiseConfig(model=model, engine=engine.name, tta=tta, views=views, batch_size=batch,
                           time_axis=0 if time_first else 2, scale="unit", overwrite=True, progress=False)
    pipeline.denoise_file(volume_dir / name, out, config, engine=engine)
    result = np.load(out)
    return np.moveaxis(result, 0, -1) if time_first else result


@pytest.mark.parametrize(("name", "options"), ENGINES)
def test_volume_parity_through_the_pipeline(name, options, engine_model_dir, torch_reference, volume_path,
                                            tmp_path, request):
    pipeline = pytest.importorskip("impeccable.runtime.pipeline")
    if not hasattr(pipeline, "denoise_file"):
        pytest.skip("impeccable.runtime.pipeline has no denoise_file yet")
    with _open(name, options, engine_model_dir, request) as engine:
        for case in VOLUME_CASES:
            if case not in _VOLUME_REFERENCES:
                _VOLUME_REFERENCES[case] = _denoise_volume(pipeline, torch_reference, engine_model_dir, volume_path,
                                                           tmp_path, *case)
            ref = _VOLUME_REFERENCES[case]
            out = _denoise_volume(pipeline, engine, engine_model_dir, volume_path, tmp_path, *case)
            assert out.shape == ref.shape == (5, 40, 150)
            try:
                assert_parity(ref, out, engine.precision)
                # and along the other axis: the challenge also scores crossline sections
                assert_parity(ref.transpose(1, 0, 2), out.transpose(1, 0, 2), engine.precision)
            except AssertionError as exc:
                raise AssertionError(f"{name} {engine.precision} case {case}: {exc}") from None
