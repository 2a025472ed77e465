"""A field-ready model through every engine and driver gives what its card's contract computes.

The reference is the contract written out with core pieces only (ModelIO: robust statistics, scaling,
padding at 0.5, resampling; core.tiling; the least-squares amplitude fit) on the torch network: if a driver
dropped the robust figures, padded with zeros or ignored the interval, these tests fail.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from impeccable.core.amplitude import volume_stats  # noqa: E402
from impeccable.core.calibration import AmplitudeFit, inline_sums  # noqa: E402
from impeccable.core.model_io import ModelIO  # noqa: E402
from impeccable.core.tiling import predict_sections  # noqa: E402


def _reference(model_dir, volume: np.ndarray, interval_ms: float | None, tta: bool = True,
               bare: bool = False, removal_floor=None, coherence=None) -> np.ndarray:
    """The contract on the torch network; ``bare``: without the card's output guard and section gain;
    ``removal_floor``, ``coherence``: the run's (None: the card's)."""
    import dataclasses

    from impeccable.core.output_guard import OutputGuard
    from impeccable.models.checkpoint import load_model
    from impeccable.train.validate import torch_runner

    model, card = load_model(model_dir)
    io = ModelIO.from_card(card)
    if bare:
        io = dataclasses.replace(io, output_guard=OutputGuard(), section_gain=None)
    io = io.with_removal_floor(removal_floor, coherence)
    stats = volume_stats(volume)
    with torch.inference_mode():
        pred = predict_sections(io.normalize(volume, stats), torch_runner(model.float().eval(), "cpu", None),
                                io.window, tta, 4, pad_value=io.pad_value, resampling=io.resampling(interval_ms),
                                guard=io.output_guard, gain=io.section_gain)
    return AmplitudeFit.from_sums(inline_sums(volume, pred, stats), stats, io.scaling).apply(volume, pred, stats)


def _spiky(tiny_volume) -> np.ndarray:
    volume = tiny_volume((3, 40, 300), seed=5, amplitude=200.0, offset=900.0)  # data on an offset
    volume[1, 7, 33] = 1e6  # one spike: min-max would squeeze everything else
    return volume


def test_the_reference_is_sensitive_to_the_guard_and_the_gain(tiny_robust_model_dir, tiny_volume):
    """A driver that dropped the card's output guard or section gain would be caught by the tests below."""
    volume = _spiky(tiny_volume)
    from impeccable.core.card import read_card

    io = ModelIO.from_card(read_card(tiny_robust_model_dir))
    assert io.output_guard and io.section_gain is not None
    scale = float(np.percentile(np.abs(volume - np.median(volume)), 99))
    gap = np.abs(_reference(tiny_robust_model_dir, volume, 4.0) - _reference(tiny_robust_model_dir, volume, 4.0,
                                                                             bare=True)).max()
    assert gap > 1e-2 * scale, gap / scale


def test_runtime_stats_carry_the_robust_figures(tiny_volume):
    from impeccable.runtime.api import ArrayReader
    from impeccable.runtime.passes import reduce_stats, stats_part

    volume = _spiky(tiny_volume)
    got, want = reduce_stats([stats_part(ArrayReader(volume))]), volume_stats(volume)
    assert (got.center, got.spread) == (want.center, want.spread) and got.spread is not None


@pytest.mark.parametrize("interval_ms", [None, 4.0, 2.0])
@pytest.mark.parametrize("engine", ["torch", "onnxruntime", "openvino"])
def test_api_matches_the_contract(tiny_robust_model_dir, tiny_volume, engine, interval_ms):
    import impeccable

    if engine != "torch":
        pytest.importorskip(engine)
    volume = _spiky(tiny_volume)
    want = _reference(tiny_robust_model_dir, volume, interval_ms)
    got = impeccable.denoise(volume, model=str(tiny_robust_model_dir), engine=engine, views="inline",
                             sample_interval=interval_ms, batch_size=2, progress=False)
    scale = float(np.percentile(np.abs(volume - np.median(volume)), 99))
    assert np.abs(got - want).max() < 1e-3 * scale


def test_the_file_pipeline_matches_the_contract(tiny_robust_model_dir, tiny_volume, tmp_path):
    from impeccable.runtime.config import DenoiseConfig
    from impeccable.runtime.pipeline import denoise_file

    volume = _spiky(tiny_volume)
    np.save(tmp_path / "v.npy", volume)
    denoise_file(tmp_path / "v.npy", tmp_path / "o.npy",
                 DenoiseConfig(model=tiny_robust_model_dir, engine="onnxruntime", views="inline", batch_size=3,
                               sample_interval=2.0, progress=False, time_axis="2"))
    want = _reference(tiny_robust_model_dir, volume, 2.0)
    scale = float(np.percentile(np.abs(volume - np.median(volume)), 99))
    assert np.abs(np.load(tmp_path / "o.npy") - want).max() < 1e-3 * scale


class _LightDenoiser:
    """A stand-in engine that removes a little: a tenth of each image's sample-to-sample roughness."""

    name, precision, device, max_batch = "light", "fp32", "cpu", None

    def __init__(self, window):
        self.window = tuple(window)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        smooth = (np.roll(batch, 1, axis=-1) + batch + np.roll(batch, -1, axis=-1)) / 3.0
        return (batch - 0.1 * (batch - smooth)).astype(np.float32)

    def close(self) -> None:
        pass


def test_the_removal_floor_is_the_runs_choice(tiny_robust_model_dir, tiny_volume, tmp_path):
    """--removal-floor / removal_floor=: weak removal is left out at a high floor, kept with ``off``."""
    import shutil

    import impeccable
    from impeccable.core.card import read_card

    model = shutil.copytree(tiny_robust_model_dir, tmp_path / "model")
    card = read_card(model)
    del card["output_guard"]["below_band_db"]  # white noise holds energy below the band: only the floor here
    (model / "model.json").write_text(json.dumps(card))
    volume = tiny_volume((3, 40, 300), seed=5, amplitude=200.0, offset=900.0)
    engine = _LightDenoiser(card["input_size"])
    removed = {}
    for floor in ("off", -20.0, -3.0):
        out = impeccable.denoise(volume, model=str(model), engine=engine, views="inline", removal_floor=floor,
                                 removal_floor_coherence=None if floor == "off" else 0.0, progress=False)
        removed[floor] = float(np.sum((volume - out).astype(np.float64) ** 2))
    assert removed[-3.0] < 0.1 * removed["off"] and removed[-3.0] < removed[-20.0], removed


def test_the_removal_floor_on_the_network_matches_the_contract(tiny_robust_model_dir, tiny_volume):
    import impeccable

    volume = tiny_volume((3, 40, 300), seed=5, amplitude=200.0, offset=900.0)
    got = impeccable.denoise(volume, model=str(tiny_robust_model_dir), engine="onnxruntime", views="inline",
                             removal_floor=-3.0, progress=False)
    scale = float(np.percentile(np.abs(volume - np.median(volume)), 99))
    assert np.abs(got - _reference(tiny_robust_model_dir, volume, None, removal_floor=-3.0)).max() < 1e-3 * scale


def test_the_coherence_raise_on_the_network_matches_the_contract(tiny_robust_model_dir, tiny_volume):
    """removal_floor_coherence= reaches the output guard through the API and an engine, as the contract says."""
    import impeccable

    volume = tiny_volume((3, 40, 300), seed=5, amplitude=200.0, offset=900.0)
    kwargs = dict(model=str(tiny_robust_model_dir), engine="onnxruntime", views="inline", removal_floor=-13.0,
                  progress=False)
    got = impeccable.denoise(volume, removal_floor_coherence=20.0, **kwargs)
    scale = float(np.percentile(np.abs(volume - np.median(volume)), 99))
    want = _reference(tiny_robust_model_dir, volume, None, removal_floor=-13.0, coherence=20.0)
    assert np.abs(got - want).max() < 1e-3 * scale
    plain = impeccable.denoise(volume, **kwargs)
    assert np.abs(got - plain).max() > 1e-2 * scale  # the raise changed the output: the check above can fail


def test_the_field_benchmarks_product_path_agrees_with_its_reference_on_a_wide_stretch(tiny_robust_model_dir,
                                                                                        tiny_volume):
    """A semi-synthetic case is one section with more traces than samples: its time axis must be the last one on
    the product path too (``auto`` would take the traces for time and score garbage)."""
    from impeccable.benchmarks import field

    stretch = tiny_volume((1, 90, 60), seed=3, amplitude=200.0, offset=900.0)
    got = field.product_denoiser(tiny_robust_model_dir, "onnxruntime")(stretch, 4.0)
    want = field.reference_denoiser(tiny_robust_model_dir)(stretch, 4.0)
    scale = float(np.percentile(np.abs(stretch - np.median(stretch)), 99))
    assert np.abs(got - want).max() < 1e-3 * scale
