"""The engine registry, the shared input check, model file resolution, and each engine's error paths."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest_engines import WINDOW, engine_model_dir, pad_to_window, synthetic_sections  # noqa: F401 (fixture)

from impeccable.core.errors import EngineError, InputError, ModelError
from impeccable.runtime import engines
from impeccable.runtime.engines import ENGINES, create_engine, default_engine_name
from impeccable.core.cpu import physical_cores
from impeccable.core.onnx_meta import onnx_metadata
from impeccable.runtime.engines.base import check_batch

ROWS, COLS = WINDOW
CPU_ENGINES = ["onnxruntime", "openvino", "torch"]


def _skip_missing(name: str) -> None:
    if not engines.installed(name):
        pytest.skip(f"{name} is not installed")


# ---- registry ------------------------------------------------------------------------------------------------

def test_registry_names_and_lazy_classes():
    assert set(ENGINES) == {"torch", "onnxruntime", "tensorrt", "openvino"}
    for name, spec in ENGINES.items():
        module, _, cls = spec.target.partition(":")
        assert spec.name == name and module.startswith("impeccable.runtime.engines.") and cls


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_registry_entry_matches_its_engine_class(name):
    """What the entry promises (options, precisions) is what the class takes: the CLI and the benchmarks pass them."""
    import importlib
    import inspect

    spec = ENGINES[name]
    assert spec.default_precision in spec.precisions and set(spec.devices) <= {"cpu", "cuda"}
    assert (spec.cpu_rank is None) == ("cpu" not in spec.devices) or name == "tensorrt"
    if not engines.installed(name):
        pytest.skip(f"{name} is not installed")
    module, _, cls = spec.target.partition(":")
    parameters = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
    assert set(spec.options) <= set(parameters), (spec.options, list(parameters))


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "torch"])
def test_engines_take_their_precisions_from_the_registry(name, engine_model_dir):
    _skip_missing(name)
    choices = " or ".join(ENGINES[name].precisions)
    with pytest.raises(EngineError, match=rf"unknown {name} precision \| received int4 \| expected {choices}"):
        create_engine(name, engine_model_dir, precision="int4")


def test_precision_help_lists_every_choice():
    from impeccable.runtime.engines import precision_help

    assert precision_help() == ", ".join(f"{s.name} {'|'.join(s.precisions)}" for s in ENGINES.values()
                                         if len(s.precisions) > 1)
    assert "onnxruntime fp32|fp16|int8" in precision_help() and "tensorrt fp16|int8" in precision_help()


@pytest.mark.parametrize(("name", "missing", "match"), [
    ("openvino", "openvino", r"needs openvino.*\.\[openvino\]"),
    ("tensorrt", "tensorrt", r"needs tensorrt.*\.\[gpu\]"),
    ("torch", "torch", r"needs torch.*\.\[train\]"),
    ("onnxruntime", "onnxruntime", r"needs onnxruntime.*\.\[cpu\].*\.\[gpu\].*CUDA 13"),
])
def test_missing_package_names_the_extra(monkeypatch, tmp_path, name, missing, match):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda pkg, *a: None if pkg == missing else real(pkg, *a))
    with pytest.raises(EngineError, match=match):
        create_engine(name, tmp_path)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda m: create_engine("onnx", m), EngineError,
     r"unknown engine.*'onnx'.*torch, onnxruntime, tensorrt, openvino"),
    (lambda m: create_engine("", m), EngineError, r"unknown engine.*expected one of torch"),
    (lambda m: create_engine("onnxruntime", m, colour="red"), EngineError, r"does not take.*colour.*threads"),
    (lambda m: create_engine("onnxruntime", m, batch_size=0), EngineError, r"batch size must be positive"),
    (lambda m: create_engine("onnxruntime", m, precision="int4"), EngineError, r"unknown onnxruntime precision"),
    (lambda m: create_engine("onnxruntime", m, device="tpu"), EngineError, r"unknown onnxruntime device"),
    (lambda m: create_engine("openvino", m, precision="fp16"), EngineError, r"unknown openvino precision"),
    (lambda m: create_engine("openvino", m, hint="FAST"), EngineError, r"unknown openvino performance hint"),
    (lambda m: create_engine("torch", m, precision="fp16"), EngineError, r"unknown torch precision"),
    (lambda m: create_engine("torch", m / "model.onnx"), EngineError, r"torch engine needs a model directory"),
])
def test_bad_engine_requests(engine_model_dir, call, error, match):
    if "openvino" in match:
        _skip_missing("openvino")
    with pytest.raises(error, match=match):
        call(engine_model_dir)


# ---- the shared input check ----------------------------------------------------------------------------------

GOOD = np.zeros((2, 1, ROWS, COLS), dtype=np.float32)


@pytest.mark.parametrize(("batch", "max_batch", "error", "match"), [
    ([[0.0]], None, InputError, r"not a numpy array.*received list"),
    (np.zeros((ROWS, COLS), np.float32), None, InputError,
     r"wrong shape.*received \[64, 128\].*float32\[N, 1, 64, 128\]"),
    (np.zeros((2, ROWS, COLS), np.float32), None, InputError, r"wrong shape.*received \[2, 64, 128\]"),
    (np.zeros((2, 3, ROWS, COLS), np.float32), None, InputError, r"wrong shape.*received \[2, 3, 64, 128\]"),
    (np.zeros((2, 1, COLS, ROWS), np.float32), None, InputError, r"wrong shape.*received \[2, 1, 128, 64\]"),
    (np.zeros((0, 1, ROWS, COLS), np.float32), None, InputError, r"wrong shape.*received \[0, 1, 64, 128\]"),
    (GOOD.astype(np.float64), None, InputError, r"wrong dtype.*received float64.*expected float32"),
    (GOOD.astype(np.float16), None, InputError, r"wrong dtype.*received float16"),
    (np.zeros((2, 1, ROWS * 2, COLS), np.float32)[:, :, ::2], None, InputError, r"not C-contiguous.*ascontiguousarray"),
    (GOOD[:, :, ::-1], None, InputError, r"not C-contiguous"),
    (np.zeros((5, 1, ROWS, COLS), np.float32), 4, EngineError, r"too many images.*received 5.*<= 4"),
])
def test_check_batch_refuses(batch, max_batch, error, match):
    with pytest.raises(error, match=match):
        check_batch(batch, WINDOW, max_batch)


def test_check_batch_accepts_a_good_batch():
    assert check_batch(GOOD, WINDOW, 2) is None
    assert check_batch(GOOD[:1], WINDOW, None) is None


@pytest.mark.parametrize("name", CPU_ENGINES)
def test_every_engine_runs_the_shared_check(engine_model_dir, name):
    _skip_missing(name)
    with create_engine(name, engine_model_dir, batch_size=2) as engine:
        with pytest.raises(InputError, match="wrong dtype"):
            engine(GOOD.astype(np.float64))
        with pytest.raises(InputError, match=r"wrong shape.*received \[2, 1, 32, 128\]"):
            engine(np.zeros((2, 1, 32, COLS), np.float32))


# ---- model files ---------------------------------------------------------------------------------------------

def test_onnx_metadata_reads_the_card_without_onnx(engine_model_dir):
    props = onnx_metadata(engine_model_dir / "model.onnx")
    card = json.loads(props["card"])
    assert card["input_size"] == list(WINDOW)


def test_onnx_metadata_of_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0b\x0c not a protobuf")
    with pytest.raises(ModelError, match="cannot read the ONNX file"):
        onnx_metadata(bad)


def _model_without(src: Path, dst: Path, drop: str) -> Path:
    shutil.copytree(src, dst)
    (dst / drop).unlink()
    return dst


@pytest.mark.parametrize(("name", "options", "drop", "match"), [
    ("onnxruntime", {}, "model.onnx", r"no model.onnx.*impeccable-export .*model-no-onnx(?! --fp16)"),
    ("onnxruntime", {"precision": "fp16"}, "model.json", r"no card"),
    ("openvino", {}, "model.onnx", r"no model.onnx.*impeccable-export"),
    ("torch", {}, "model.safetensors", r"no weights"),
])
def test_missing_artifacts_name_the_command(engine_model_dir, tmp_path, name, options, drop, match):
    _skip_missing(name)
    model = _model_without(engine_model_dir, tmp_path / "model-no-onnx", drop)
    with pytest.raises(ModelError, match=match):
        create_engine(name, model, **options)


def test_missing_fp16_onnx_names_the_fp16_export(engine_model_dir):
    with pytest.raises(ModelError, match=r"no model.fp16.onnx.*impeccable-export .* --fp16"):
        create_engine("onnxruntime", engine_model_dir, precision="fp16")


@pytest.mark.parametrize(("name", "path", "match"), [
    ("onnxruntime", "missing.onnx", r"ONNX file not found"),
    ("onnxruntime", "nowhere", r"model directory not found"),
    ("onnxruntime", "engine.plan", r"reads ONNX, not a TensorRT plan"),
    ("openvino", "missing.onnx", r"ONNX file not found"),
])
def test_bad_model_paths(tmp_path, name, path, match):
    _skip_missing(name)
    with pytest.raises(ModelError, match=match):
        create_engine(name, tmp_path / path)


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_lone_onnx_file_takes_the_card_from_its_metadata(engine_model_dir, tmp_path, name):
    _skip_missing(name)
    lone = tmp_path / "elsewhere.onnx"
    shutil.copy(engine_model_dir / "model.onnx", lone)
    with create_engine(name, lone, batch_size=2) as engine:
        assert engine.window == WINDOW
        assert engine(GOOD).shape == GOOD.shape


def test_lone_onnx_without_card_takes_the_window_from_the_graph(engine_model_dir, tmp_path):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(engine_model_dir / "model.onnx"))
    proto.metadata_props.clear()
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with create_engine("onnxruntime", tmp_path / "bare.onnx") as engine:
        assert engine.window == WINDOW


def test_card_and_graph_disagreeing_is_refused(engine_model_dir, tmp_path):
    model = tmp_path / "mismatch"
    shutil.copytree(engine_model_dir, model)
    card = json.loads((model / "model.json").read_text())
    card["input_size"] = [32, 128]
    (model / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"card and graph disagree.*\[N, 1, 32, 128\]"):
        create_engine("onnxruntime", model)


def test_corrupt_onnx_is_an_engine_error_with_cause(engine_model_dir, tmp_path):
    model = tmp_path / "corrupt"
    shutil.copytree(engine_model_dir, model)
    data = (model / "model.onnx").read_bytes()
    (model / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises((EngineError, ModelError), match=r"onnxruntime cannot load|cannot read the ONNX") as info:
        create_engine("onnxruntime", model)
    assert info.value.__cause__ is not None


# ---- engine attributes and lifecycle --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "options", "precision"), [
    ("onnxruntime", {"device": "cpu"}, "fp32"),
    ("openvino", {"precision": "fp32"}, "fp32"),
    ("openvino", {"precision": "f32"}, "fp32"),
    ("torch", {"device": "cpu"}, "fp32"),
])
def test_engine_attributes_and_close(engine_model_dir, name, options, precision):
    _skip_missing(name)
    engine = create_engine(name, engine_model_dir, batch_size=2, **options)
    with engine:
        assert (engine.name, engine.precision, engine.device, engine.window) == (name, precision, "cpu", WINDOW)
        assert engine.max_batch is None
        out = engine(pad_to_window(synthetic_sections(3)))
        assert out.dtype == np.float32 and out.shape == (3, 1, ROWS, COLS)
        assert 0.0 <= out.min() and out.max() <= 1.0
    with pytest.raises(EngineError, match="is closed"):
        engine(GOOD)
    engine.close()  # idempotent


def test_openvino_precision_is_explicit(engine_model_dir, monkeypatch):
    _skip_missing("openvino")
    import openvino as ov

    from impeccable.runtime.engines import ov_engine

    with create_engine("openvino", engine_model_dir) as engine:
        assert engine.precision == ov_engine.DEFAULT_PRECISION == "fp32"  # bf16 misses parity: opt-in only
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with create_engine("openvino", engine_model_dir, precision="bf16") as engine:
            assert engine.precision == "bf16"
    real = ov.Core.get_property

    def no_bf16(self, device, key):
        value = real(self, device, key)
        return [c for c in value if c != "BF16"] if key == "OPTIMIZATION_CAPABILITIES" else value

    monkeypatch.setattr(ov.Core, "get_property", no_bf16)
    with pytest.raises(EngineError, match=r"cannot compute in bf16.*precision fp32"):
        create_engine("openvino", engine_model_dir, precision="bf16")


def test_onnxruntime_uses_one_thread_per_physical_core(engine_model_dir):
    with create_engine("onnxruntime", engine_model_dir, device="cpu") as engine:
        assert engine.session.get_session_options().intra_op_num_threads == physical_cores()


def test_onnxruntime_refuses_a_silent_cpu_fallback(engine_model_dir, monkeypatch):
    import onnxruntime as ort

    real = ort.InferenceSession

    class FallsBack(real):
        def get_providers(self):  # what ORT reports when libcudart/cuDNN cannot be loaded
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(ort, "InferenceSession", FallsBack)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: None, raising=False)
    for device in ("cuda", "auto"):
        with pytest.raises(EngineError, match=r"did not load its CUDA provider.*\.\[gpu\]"):
            create_engine("onnxruntime", engine_model_dir, device=device)


def test_backend_failure_is_reraised_as_engine_error(engine_model_dir):
    with create_engine("onnxruntime", engine_model_dir, device="cpu") as engine:
        engine.session = None  # any backend exception while running
        with pytest.raises(EngineError, match=r"engine onnxruntime failed.*AttributeError") as info:
            engine(GOOD)
        assert isinstance(info.value.__cause__, AttributeError)


def test_runtime_engines_never_import_torch(engine_model_dir):
    code = ("import sys; from impeccable.runtime.engines import create_engine, default_engine_name; "
            f"e = create_engine('onnxruntime', {str(engine_model_dir)!r}); "
            f"default_engine_name({str(engine_model_dir)!r}); "
            "import impeccable.runtime.engines.trt_engine; "
            "assert 'torch' not in sys.modules and 'tensorrt' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- default engine ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("gpu", "have", "files", "expected"), [
    (False, {"openvino", "onnxruntime", "torch"}, {"model.onnx", "model.safetensors"}, "openvino"),
    (False, {"onnxruntime", "torch"}, {"model.onnx", "model.safetensors"}, "onnxruntime"),
    (False, {"openvino", "onnxruntime", "torch"}, {"model.safetensors"}, "torch"),
    (True, {"onnxruntime-gpu", "openvino", "onnxruntime"}, {"model.onnx"}, "onnxruntime"),
    (True, {"openvino", "onnxruntime"}, {"model.onnx"}, "openvino"),
    (True, {"tensorrt", "onnxruntime-gpu", "onnxruntime"}, {"model.onnx", "fresh.plan"}, "tensorrt"),
    (True, {"tensorrt", "onnxruntime-gpu", "onnxruntime"}, {"model.onnx", "stale.plan"}, "onnxruntime"),
])
def test_default_engine_name(monkeypatch, tmp_path, gpu, have, files, expected):
    for name in files:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(engines, "nvidia_gpu", lambda: gpu)
    monkeypatch.setattr(engines, "installed", lambda name: name in have)
    monkeypatch.setattr(engines, "ort_has_cuda", lambda: "onnxruntime-gpu" in have)
    monkeypatch.setattr(engines, "_fresh_plan", lambda model: (model / "fresh.plan").is_file())
    assert default_engine_name(tmp_path) == expected


def test_default_engine_for_files_and_empty_dirs(monkeypatch, tmp_path):
    monkeypatch.setattr(engines, "nvidia_gpu", lambda: False)
    assert default_engine_name(tmp_path / "x.plan") == "tensorrt"
    assert default_engine_name(tmp_path / "x.onnx") in ("openvino", "onnxruntime")
    with pytest.raises(ModelError, match=r"no model files in the model directory"):  # issue 20 row 9
        default_engine_name(tmp_path)
    (tmp_path / "model.json").write_text("{}")
    monkeypatch.setattr(engines, "installed", lambda name: False)
    with pytest.raises(ModelError, match=r"no installed engine can run.*impeccable-export"):
        default_engine_name(tmp_path)


def test_default_engine_on_this_machine_runs(engine_model_dir):
    name = default_engine_name(engine_model_dir)
    with create_engine(name, engine_model_dir, batch_size=2) as engine:
        assert engine(GOOD).shape == GOOD.shape


# ---- TensorRT (manifest checks run without TensorRT) ------------------------------------------------------------

def test_tensorrt_module_imports_without_tensorrt():
    from impeccable.runtime.engines import trt_engine

    assert trt_engine.TensorRTEngine.name == "tensorrt"


@pytest.mark.parametrize(("layout", "match"), [
    ({}, r"no TensorRT plan.*impeccable-export .* --fp16"),
    ({"model.h100.fp16.plan": b"plan"}, r"plan has no manifest.*rebuild"),
    ({"model.h100.fp16.plan": b"plan", "model.h100.fp16.plan.json": b"{not json"}, r"manifest is unreadable"),
    ({"model.h100.fp16.plan": b"plan", "model.h100.fp16.plan.json": b"[1]"}, r"manifest is not a JSON object"),
])
def test_tensorrt_plan_selection_errors(tmp_path, layout, match):
    from impeccable.runtime.engines.trt_engine import select_plan

    for name, data in layout.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ModelError, match=match):
        select_plan(tmp_path)


def test_tensorrt_missing_plan_file(tmp_path):
    from impeccable.runtime.engines.trt_engine import select_plan

    with pytest.raises(ModelError, match="TensorRT plan not found"):
        select_plan(tmp_path / "model.fp16.plan")


HERE = {"tensorrt": "10.13.0", "cuda": "12.9", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


def _plan_dir(engine_model_dir: Path, tmp_path: Path, built: dict, onnx_sha: str | None = None) -> Path:
    """A model directory with a fake plan (never deserialized) and the manifest the exporter would write."""
    from impeccable.core.card import read_card, sha256_file
    from impeccable.core.manifest import make_manifest, plan_name

    model = tmp_path / "model"
    shutil.copytree(engine_model_dir, model)
    shutil.copy(model / "model.onnx", model / "model.fp16.onnx")  # stands in for the FP16 graph
    plan = model / plan_name(built["gpu"])
    plan.write_bytes(b"not a real plan")
    manifest = make_manifest(built, onnx_sha or sha256_file(model / "model.fp16.onnx"), "model.fp16.onnx", "fp16",
                             {"min": 1, "opt": 4, "max": 8}, read_card(model))
    Path(str(plan) + ".json").write_text(json.dumps(manifest))
    return model


@pytest.mark.parametrize(("built", "onnx_sha", "match"), [
    ({**HERE, "gpu": "NVIDIA A10", "compute_capability": "8.6"}, None, r"stale.*built for GPU NVIDIA A10"),
    ({**HERE, "tensorrt": "10.9.0"}, None, r"stale.*built for TensorRT 10.9.0, this machine has 10.13.0"),
    (HERE, "0" * 64, r"stale.*another ONNX file"),
])
def test_stale_plan_is_refused_before_deserializing(engine_model_dir, tmp_path, monkeypatch, built, onnx_sha, match):
    manifest = pytest.importorskip("impeccable.core.manifest")
    from impeccable.runtime.engines import trt_engine

    model = _plan_dir(engine_model_dir, tmp_path, built, onnx_sha)
    monkeypatch.setattr(manifest, "current_environment", lambda: HERE)
    with pytest.raises(ModelError, match=match + r".*rebuild it: impeccable-export .*model --fp16"):
        trt_engine.select_plan(model)
    with pytest.raises(ModelError, match="stale"):  # the plan file directly: same check
        trt_engine.select_plan(next(model.glob("*.plan")))
    # default_engine_name must not pick a stale plan on a GPU machine
    monkeypatch.setattr(engines, "nvidia_gpu", lambda: True)
    monkeypatch.setattr(engines, "installed", lambda name: True)
    assert default_engine_name(model) != "tensorrt"


def test_fresh_plan_passes_the_check(engine_model_dir, tmp_path, monkeypatch):
    manifest = pytest.importorskip("impeccable.core.manifest")
    from impeccable.runtime.engines import trt_engine

    model = _plan_dir(engine_model_dir, tmp_path, HERE)
    monkeypatch.setattr(manifest, "current_environment", lambda: HERE)
    plan, data = trt_engine.select_plan(model)
    assert plan.name == "model.nvidia-h100-80gb-hbm3.fp16.plan" and data["profile"]["max"] == 8
    monkeypatch.setattr(engines, "nvidia_gpu", lambda: True)
    monkeypatch.setattr(engines, "installed", lambda name: True)
    assert default_engine_name(model) == "tensorrt"


def test_create_tensorrt_without_tensorrt_names_the_gpu_extra(tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(EngineError, match=r"needs tensorrt.*\.\[gpu\]"):
        create_engine("tensorrt", tmp_path)


# ---- GPU -----------------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_onnxruntime_cuda_really_runs_on_cuda(engine_model_dir):
    if not engines.ort_has_cuda():
        pytest.skip("onnxruntime-gpu is not installed")
    with create_engine("onnxruntime", engine_model_dir, device="cuda") as engine:
        assert engine.device == "cuda:0"
        assert engine.session.get_providers()[0] == "CUDAExecutionProvider"
        assert engine(GOOD).shape == GOOD.shape


# ---- the TensorRT executor against a fake TensorRT (control flow only; the real one runs in gpu tests) ----------

class _FakeDevice:
    """polygraphy.cuda stand-ins backed by host arrays: ``ptr`` -> array."""

    memory: dict[int, np.ndarray] = {}
    freed: list[int] = []

    class DeviceArray:
        def __init__(self, shape, dtype):
            self.mem = np.zeros(shape, np.float32)
            self.ptr = id(self.mem)
            _FakeDevice.memory[self.ptr] = self.mem

        def copy_from(self, host, stream=None):
            assert host.flags.c_contiguous and stream is not None
            self.mem.reshape(-1)[:host.size] = host.reshape(-1)

        def view(self, shape):
            mem = self.mem

            class View:
                def copy_to(self, host, stream=None):
                    host[...] = mem.reshape(-1)[:host.size].reshape(host.shape)

            return View()

        def free(self):
            _FakeDevice.freed.append(self.ptr)

    class Stream:
        ptr = 7

        def synchronize(self):
            pass

        def free(self):
            _FakeDevice.freed.append(self.ptr)


def _fake_tensorrt(fail: str = ""):
    """A module with the named-tensor API the executor uses; ``fail`` makes one call fail."""
    import types

    trt = types.SimpleNamespace(__version__="10.13.0", DataType=types.SimpleNamespace(FLOAT="float", HALF="half"),
                                TensorIOMode=types.SimpleNamespace(INPUT="in", OUTPUT="out"))
    high = (8, 1, ROWS, COLS)

    class Context:
        def __init__(self):
            self.addresses, self.shape = {}, None

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr
            return fail != "address"

        def set_input_shape(self, name, shape):
            self.shape = tuple(shape)
            return fail != "shape" and 1 <= shape[0] <= high[0]

        def get_tensor_shape(self, name):
            return self.shape

        def execute_async_v3(self, stream):
            assert stream == 7  # the engine's own stream, never the default one
            n = self.shape[0]
            src, dst = (_FakeDevice.memory[self.addresses[k]] for k in ("input", "output"))
            dst[:n] = 1.0 - src[:n]
            return fail != "execute"

    class CudaEngine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ("input", "output")[i]

        def get_tensor_mode(self, name):
            return "in" if name == "input" else "out"

        def get_tensor_dtype(self, name):
            return "half" if fail == "dtype" else "float"

        def get_tensor_profile_shape(self, name, profile):
            return [(1, 1, ROWS, COLS), (4, 1, ROWS, COLS), high]

        def create_execution_context(self):
            return Context()

    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.Runtime = type("Runtime", (), {"__init__": lambda self, logger: None,
                                       "deserialize_cuda_engine": lambda self, data: None if fail == "plan"
                                       else CudaEngine()})
    return trt


@pytest.fixture
def fake_trt_model(engine_model_dir, tmp_path, monkeypatch):
    manifest = pytest.importorskip("impeccable.core.manifest")
    cuda = pytest.importorskip("polygraphy.cuda")
    model = _plan_dir(engine_model_dir, tmp_path, HERE)
    monkeypatch.setattr(manifest, "current_environment", lambda: HERE)
    monkeypatch.setattr(cuda, "DeviceArray", _FakeDevice.DeviceArray)
    monkeypatch.setattr(cuda, "Stream", _FakeDevice.Stream)

    def use(fail: str = ""):
        monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(fail))
        return model

    return use


def test_tensorrt_executor_flow(fake_trt_model):
    from impeccable.runtime.engines.trt_engine import TensorRTEngine

    _FakeDevice.freed.clear()
    engine = TensorRTEngine(fake_trt_model(), batch_size=4)
    with engine:
        assert (engine.precision, engine.device, engine.window, engine.max_batch) == ("fp16", "cuda:0", WINDOW, 8)
        x = pad_to_window(synthetic_sections(8))
        for n in (1, 3, 8, 2):  # growing and shrinking batches reuse the same buffers
            np.testing.assert_array_equal(engine(x[:n]), 1.0 - x[:n])
        with pytest.raises(EngineError, match=r"too many images.*received 9.*<= 8"):
            engine(np.zeros((9, 1, ROWS, COLS), np.float32))
    assert len(_FakeDevice.freed) == 3  # input, output, stream


@pytest.mark.parametrize(("fail", "options", "error", "match"), [
    ("", {"batch_size": 9}, EngineError, r"batch size outside the plan's profile.*received 9.*1\.\.8"),
    ("plan", {}, ModelError, r"cannot deserialize the plan.*impeccable-export .* --fp16"),
    ("dtype", {}, ModelError, r"unexpected inputs/outputs.*float32"),
    ("address", {}, EngineError, r"refused a tensor address"),
])
def test_tensorrt_setup_errors(fake_trt_model, fail, options, error, match):
    from impeccable.runtime.engines.trt_engine import TensorRTEngine

    _FakeDevice.freed.clear()
    with pytest.raises(error, match=match):
        TensorRTEngine(fake_trt_model(fail), **options)
    if fail == "address":
        assert _FakeDevice.freed  # a half-built engine frees what it allocated


@pytest.mark.parametrize(("fail", "match"), [
    ("shape", r"refused the input shape"),
    ("execute", r"TensorRT execution failed"),
])
def test_tensorrt_run_errors(fake_trt_model, fail, match):
    from impeccable.runtime.engines.trt_engine import TensorRTEngine

    with TensorRTEngine(fake_trt_model(fail), batch_size=4) as engine:
        with pytest.raises(EngineError, match=match):
            engine(np.zeros((2, 1, ROWS, COLS), np.float32))


def test_tensorrt_cuda_failure_is_an_engine_error_with_cause(fake_trt_model, monkeypatch):
    from polygraphy import cuda

    from impeccable.runtime.engines.trt_engine import TensorRTEngine

    def no_cuda():
        raise OSError("libcudart.so: cannot open shared object file")

    monkeypatch.setattr(cuda, "Stream", no_cuda)
    with pytest.raises(EngineError, match=r"setup failed.*OSError: libcudart.*\.\[gpu\]") as info:
        TensorRTEngine(fake_trt_model(), batch_size=4)
    assert isinstance(info.value.__cause__, OSError)
