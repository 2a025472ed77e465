"""Amplitude-preserving output, --strength and the QC figures, through the real pipeline with stand-in engines.

The stand-ins are engines, not the thing checked: what is checked is the pipeline's amplitude fit and QC.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.ndimage import gaussian_filter1d

from impeccable.core.amplitude import VolumeStats
from impeccable.core.calibration import AmplitudeFit, inline_sums
from impeccable.core.qc import local_similarity
from impeccable.runtime import pipeline
from impeccable.runtime.config import DenoiseConfig


class StandIn:
    """An engine stand-in running ``fn`` over each ``(N, 1, H, W)`` batch."""

    name, precision, device = "stand-in", "fp32", "cpu"

    def __init__(self, fn, window=(16, 64)):
        self.fn, self.window = fn, window

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.clip(self.fn(batch), 0, 1).astype(np.float32)

    def close(self) -> None:
        pass


def _survey(seed: int = 0, shape=(6, 16, 64), noise: float = 0.0, offset: float = 1500.0, scale: float = 300.0):
    """Band-limited reflections whose frequency rises with depth, on an offset, plus white noise.

    Returns ``(noisy, clean)``, ``(inline, crossline, sample)`` float32.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(shape[2])
    lateral = np.linspace(0, 1, shape[1])[None, :, None] + np.arange(shape[0])[:, None, None] * 0.1
    phase = 2 * np.pi * (t / 40.0 + (t / 64.0) ** 2 * 2.0)[None, None, :] + 3.0 * lateral
    clean = (np.sin(phase) * (1.0 + 0.5 * np.cos(t / 23.0))[None, None, :]) * scale + offset
    noisy = clean + rng.normal(0.0, noise * scale, shape)
    return noisy.astype(np.float32), clean.astype(np.float32)


def _denoise(tmp_path, vol, engine, name="out.npy", **options):
    np.save(tmp_path / "in.npy", vol)
    options.setdefault("progress", False)
    options.setdefault("tta", False)
    report = pipeline.denoise_file(tmp_path / "in.npy", tmp_path / name, DenoiseConfig(time_axis=2, **options),
                                   engine=engine)
    return np.load(tmp_path / name), report


def test_a_known_gain_and_offset_of_the_prediction_are_undone(tmp_path):
    # The stand-in returns the normalized input squeezed by a known affine map: the fit must undo it exactly,
    # so the output is the input and nothing is removed.
    vol, _ = _survey()
    out, report = _denoise(tmp_path, vol, StandIn(lambda b: 0.6 * b + 0.25))
    assert report.fit["gain"] == pytest.approx(1 / 0.6, rel=1e-6)
    assert report.fit["offset"] == pytest.approx(-0.25 / 0.6 * (vol.max() - vol.min()), rel=1e-5)
    np.testing.assert_allclose(out, vol, rtol=0, atol=1e-3 * vol.std())
    assert report.qc["removed_energy"] < 1e-8


def test_the_removed_part_has_zero_mean_and_no_global_gain(tmp_path):
    noisy, _ = _survey(noise=0.5)
    out, report = _denoise(tmp_path, noisy, StandIn(lambda b: gaussian_filter1d(b, 2, axis=-1) ** 1.3))
    removed = noisy.astype(np.float64) - out
    assert abs(removed.mean()) <= 0.01 * noisy.std()
    assert abs(report.qc["removed_mean_of_std"]) <= 0.01
    # No systematic gain: the removed part is uncorrelated with the output over the volume.
    assert abs(np.corrcoef(removed.ravel(), out.ravel())[0, 1]) < 1e-3
    assert report.qc["removed_energy"] == pytest.approx((removed ** 2).sum() / ((noisy - noisy.mean()) ** 2).sum(),
                                                        rel=1e-4)


def test_in_distribution_gain_is_near_one(tmp_path):
    # A stand-in that returns the clean volume on the input's own normalization: gain 1, offset 0.
    noisy, clean = _survey(noise=0.3)
    lo, hi = float(noisy.min()), float(noisy.max())
    np.save(tmp_path / "clean_unit.npy", (clean - lo) / (hi - lo))
    truth = np.load(tmp_path / "clean_unit.npy")
    calls = iter(range(noisy.shape[0]))

    def oracle(batch):  # one inline per call, in order (batch 1, no TTA): the clean section, padded
        i = next(calls)
        out = np.zeros_like(batch)
        out[0, 0, :noisy.shape[1], :noisy.shape[2]] = truth[i]
        return out

    _, report = _denoise(tmp_path, noisy, StandIn(oracle), batch_size=1)
    assert report.fit["gain"] == pytest.approx(1.0, abs=0.02)
    assert abs(report.fit["offset_of_std"]) < 0.05  # sampling error of 6144 noisy samples


def test_strength_zero_returns_the_input_exactly_and_one_half_is_the_midpoint(tmp_path):
    vol, _ = _survey(noise=0.5)
    blur = StandIn(lambda b: gaussian_filter1d(b, 3, axis=-1))
    same, report = _denoise(tmp_path, vol, blur, name="s0.npy", strength=0.0)
    np.testing.assert_array_equal(same, vol)
    assert report.qc["removed_energy"] == 0.0
    full, _ = _denoise(tmp_path, vol, blur, name="s1.npy")
    half, _ = _denoise(tmp_path, vol, blur, name="s05.npy", strength=0.5)
    np.testing.assert_allclose(half, 0.5 * (vol.astype(np.float64) + full), atol=1e-3 * vol.std())


def test_local_similarity_is_high_for_a_blur_and_low_for_removing_pure_noise(tmp_path):
    noisy, clean = _survey(noise=0.5, shape=(4, 24, 256))
    lo, hi = float(noisy.min()), float(noisy.max())
    noise_unit = (noisy - clean) / (hi - lo)

    # Removes exactly the noise (the stand-in knows it: one inline per call, in order).
    calls = iter(range(noisy.shape[0]))

    def denoiser(batch):
        out = batch.copy()
        out[0, 0, :noisy.shape[1], :noisy.shape[2]] -= noise_unit[next(calls)]
        return out

    _, good = _denoise(tmp_path, noisy, StandIn(denoiser, (32, 256)), name="good.npy", batch_size=1)
    _, blurred = _denoise(tmp_path, clean, StandIn(lambda b: gaussian_filter1d(b, 4, axis=-1), (32, 256)),
                          name="blur.npy")
    assert good.qc["local_similarity"] < 0.1
    assert blurred.qc["local_similarity"] > 2 * good.qc["local_similarity"] and blurred.qc["local_similarity"] > 0.2
    from impeccable.core.qc import LEAKAGE_WARN

    assert any("local similarity" in w for w in blurred.qc["warnings"]) == (blurred.qc["local_similarity"] > LEAKAGE_WARN)


def test_local_similarity_of_a_section_with_itself_is_one_and_with_white_noise_small():
    rng = np.random.default_rng(1)
    signal = gaussian_filter1d(rng.normal(size=(40, 400)), 3, axis=1)
    same, ok = local_similarity(signal, signal)
    assert np.allclose(same[ok], 1.0)
    other, ok = local_similarity(rng.normal(size=signal.shape), signal)
    assert np.abs(other[ok]).mean() < 0.1


def test_fit_does_not_depend_on_how_the_volume_is_cut():
    rng = np.random.default_rng(2)
    x = rng.normal(100, 20, (7, 5, 30)).astype(np.float32)
    u = rng.uniform(size=x.shape).astype(np.float32)
    stats = VolumeStats(float(x.min()), float(x.max()))
    whole = AmplitudeFit.from_sums(inline_sums(x, u, stats), stats)
    parts = [inline_sums(x[a:b], u[a:b], stats) for a, b in ((0, 3), (3, 4), (4, 7))]
    cut = AmplitudeFit.from_sums(np.concatenate(parts[::-1]), stats)
    assert whole == cut


def test_cli_prints_qc_and_writes_the_report(tmp_path, monkeypatch):
    from impeccable.runtime import cli

    vol, _ = _survey(noise=0.5)
    np.save(tmp_path / "in.npy", vol)
    real = pipeline.denoise_file
    monkeypatch.setattr(pipeline, "denoise_file",
                        lambda i, o, c: real(i, o, c, engine=StandIn(lambda b: gaussian_filter1d(b, 2, axis=-1))))
    result = CliRunner().invoke(cli.main, [str(tmp_path / "in.npy"), "--no-progress", "--strength", "0.8",
                                           "--report", str(tmp_path / "qc.json")])
    assert result.exit_code == 0, result.output
    assert "QC: removed" in result.output and "local similarity to the output" in result.output
    assert "std)" not in result.output  # no "offset ... (+2.8 std)" wording
    report = json.loads((tmp_path / "qc.json").read_text())
    assert report["strength"] == 0.8
    assert set(report["qc"]) >= {"removed_energy", "removed_mean_of_std", "local_similarity", "spectra", "bands",
                                 "low_frequency", "coherence", "removed_by_depth", "summary"}
    assert set(report["amplitude_fit"]) >= {"gain", "offset"}


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_out_of_range_is_refused(tmp_path, strength):
    from impeccable.core.errors import InputError

    vol, _ = _survey()
    with pytest.raises(InputError, match="strength"):
        _denoise(tmp_path, vol, StandIn(lambda b: b), strength=strength)


def test_a_robust_models_fit_is_reported_against_its_own_raw_inverse(tmp_path, tiny_robust_model_dir):
    # A robust model that returns what it saw: the raw inverse is right, so the report says gain 1, offset 0,
    # whatever the solved gain in min-max coordinates (4 * spread / span, far from 1), kept as ``solved_gain``.
    from impeccable.core.card import read_card, window_of

    vol, _ = _survey(noise=0.3)
    window = window_of(read_card(tiny_robust_model_dir))
    out, report = _denoise(tmp_path, vol, StandIn(lambda b: b, window=window), model=str(tiny_robust_model_dir))
    assert report.fit["gain"] == pytest.approx(1.0, rel=1e-4)
    assert abs(report.fit["offset_of_std"]) < 1e-4
    assert abs(report.fit["solved_gain"] - 1.0) > 0.2
    np.testing.assert_allclose(out, vol, rtol=0, atol=1e-3 * vol.std())


def _robust_prediction(vol, squeeze, shift):
    """The robust model's raw scaling of ``vol`` (unclipped), squeezed about the data's zero level and shifted."""
    from impeccable.core.amplitude import ROBUST, volume_stats

    stats = volume_stats(vol)
    center, g = ROBUST.affine(stats)
    unit = (vol.astype(np.float64) - center) * g + 0.5
    return (0.5 + squeeze * (unit - 0.5) + shift).astype(np.float32), stats, g


@pytest.mark.parametrize("squeeze, shift", [(1.0, 0.0), (1.3, 0.0), (1.3, 0.05)])
def test_the_relative_figures_undo_a_known_squeeze_about_the_zero_level(squeeze, shift):
    # The prediction of a robust model stretched about the data's zero level (0.5) and shifted: the fit against
    # the raw inverse is gain 1 / squeeze and an offset of -shift / squeeze in the model's units.
    from impeccable.core.amplitude import ROBUST

    vol, _ = _survey(noise=0.3)
    pred, stats, g = _robust_prediction(vol, squeeze, shift)
    fit = AmplitudeFit.from_sums(inline_sums(vol, pred, stats), stats, ROBUST)
    gain, offset = fit.relative(stats, ROBUST)
    assert gain == pytest.approx(1 / squeeze, rel=1e-5)
    assert offset == pytest.approx(-shift / squeeze / g, rel=1e-4, abs=1e-6 * float(vol.std()))
    np.testing.assert_allclose(fit.apply(vol, pred, stats), vol, rtol=0, atol=1e-4 * vol.std())


def test_a_robust_models_gain_never_exceeds_its_raw_inverses():
    # A robust prediction shrunk to 0.8 of the input about its zero level: least squares would amplify it by
    # 1.25; capped, the output is the raw inverse (gain 1) with the input's mean, so no band rises above the
    # input's. A min-max model (any gain can be right) is fitted freely.
    from impeccable.core.amplitude import MINMAX, ROBUST

    vol, _ = _survey(noise=0.3)
    pred, stats, _ = _robust_prediction(vol, 0.8, 0.0)
    sums = inline_sums(vol, pred, stats)
    fit = AmplitudeFit.from_sums(sums, stats, ROBUST)
    assert fit.relative(stats, ROBUST)[0] == pytest.approx(1.0, rel=1e-9)
    out = fit.apply(vol, pred, stats).astype(np.float64)
    assert abs(out.mean() - vol.mean()) < 1e-4 * vol.std()
    assert out.std() == pytest.approx(0.8 * vol.std(), rel=1e-3)
    assert AmplitudeFit.from_sums(sums, stats, MINMAX).relative(stats, ROBUST)[0] == pytest.approx(1.25, rel=1e-5)
