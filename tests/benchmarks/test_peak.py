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
    assert _engine_options("tensorrt", "fp16", "cuda") == {}
    assert _engine_options("openvino", "bf16", "cuda") == {"precision": "bf16"}
    assert _engine_options("onnxruntime", "fp16", "cuda") == {"precision": "fp16", "device": "cuda"}
    with pytest.raises(EngineError, match="unknown engine"):
        parse_engine("tensort")
