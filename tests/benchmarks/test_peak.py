"""% of peak: each engine against the measured peak of its own device and precision."""

from __future__ import annotations

import pytest

from impeccable.benchmarks.throughput import PRECISION_OF, _engine_options, parse_engine, peak_fraction, peak_key
from impeccable.core.errors import EngineError
from impeccable.runtime.engines import ENGINES

PEAKS = {"fp32": 100.0, "bf16": 200.0, "fp32_cuda": 50_000.0, "fp16_cuda": 400_000.0, "bf16_cuda": 400_000.0}


@pytest.mark.parametrize(("precision", "device", "key"), [
    ("fp32", "cpu", "fp32"), ("f32", "cpu", "fp32"), ("bf16", "cpu", "bf16"),
    ("fp16", "cuda:0", "fp16_cuda"), ("fp32", "cuda:0", "fp32_cuda"), ("bf16", "cuda:1", "bf16_cuda"),
])
def test_peak_is_chosen_by_device_and_precision(precision, device, key):
    assert peak_key(precision, device) == key


def test_a_gpu_engine_is_never_divided_by_a_cpu_peak():
    assert peak_fraction(40_000.0, "fp16", "cuda:0", PEAKS) == pytest.approx(0.1)  # TensorRT
    assert peak_fraction(5_000.0, "fp32", "cuda:0", PEAKS) == pytest.approx(0.1)  # ORT CUDA fp32
    assert peak_fraction(40_000.0, "fp16", "cuda:0", {"fp32": 100.0}) is None  # no GPU peak measured: no figure
    assert peak_fraction(50.0, "fp32", "cpu", PEAKS) == pytest.approx(0.5)


def test_benchmark_options_come_from_the_registry():
    assert PRECISION_OF == {name: spec.default_precision for name, spec in ENGINES.items()}
    assert parse_engine("tensorrt") == ("tensorrt", "fp16", None)
    assert parse_engine("torch:bf16@cuda") == ("torch", "bf16", "cuda")
    assert _engine_options("tensorrt", "fp16", "cuda") == {"precision": "fp16"}  # its plans: fp16 or int8
    assert _engine_options("openvino", "bf16", "cuda") == {"precision": "bf16"}
    assert _engine_options("onnxruntime", "fp16", "cuda") == {"precision": "fp16", "device": "cuda"}
    with pytest.raises(EngineError, match="unknown engine"):
        parse_engine("tensort")


def test_gpu_check_parity_table(tmp_path):
    """benchmarks/parity.py, which gpu_check.sh runs: the parity tests' bounds on whole volumes."""
    import numpy as np
    from click.testing import CliRunner

    from impeccable.benchmarks import parity

    rng = np.random.default_rng(0)
    ref = rng.random((3, 40, 60), dtype=np.float32)
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "close.npy", ref + 5e-5)
    np.save(tmp_path / "far.npy", ref + rng.normal(0, 2e-2, ref.shape).astype(np.float32))
    assert parity.passes(parity.compare(ref, ref + 5e-5), "fp32")
    assert not parity.passes(parity.compare(ref, ref + 2e-4), "fp32")
    runner = CliRunner()
    ok = runner.invoke(parity.main, [str(tmp_path / "ref.npy"), f"onnxruntime:fp32:1={tmp_path / 'close.npy'}",
                                     "--json", str(tmp_path / "p.json")])
    assert ok.exit_code == 0 and "| onnxruntime | fp32 | 1 | on |" in ok.output and (tmp_path / "p.json").is_file()
    bad = runner.invoke(parity.main, [str(tmp_path / "ref.npy"), f"tensorrt:fp16:8={tmp_path / 'far.npy'}"])
    assert bad.exit_code == 1 and "| NO |" in bad.output
