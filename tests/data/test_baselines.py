"""Classical baselines: the band-pass keeps its band with no phase shift, f-x decon keeps linear events and
removes random noise, every baseline keeps the volume's shape, and a challenge-length volume runs."""

from __future__ import annotations

import numpy as np
import pytest

from impeccable.core.errors import InputError
from impeccable.data.baselines import BASELINES, DT, bandpass, fx_decon


def _linear_events(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Plane reflectors of random dip, exactly linear (built as phase shifts of a 25 Hz Ricker spectrum),
    the same on every inline: ``(inline, crossline, sample)`` float32."""
    rng = np.random.default_rng(seed)
    _, xl, nt = shape
    f = np.fft.rfftfreq(nt, DT)
    ricker = f ** 2 * np.exp(-(f / 25) ** 2)
    spectrum = np.zeros((xl, f.size), complex)
    for _ in range(nt // 30):
        t0, dip, amp = rng.uniform(40, nt - 40) * DT, rng.uniform(-0.6, 0.6) * DT, rng.normal()
        delay = t0 + dip * np.arange(xl)
        spectrum += amp * ricker * np.exp(-2j * np.pi * f * delay[:, None])
    traces = np.fft.irfft(spectrum, nt, axis=-1)
    return np.broadcast_to(traces / traces.std(), shape).astype(np.float32)


def test_bandpass_keeps_the_band_without_phase_shift():
    nt = 1000
    t = np.arange(nt) * DT
    inside, outside = np.sin(2 * np.pi * 20 * t), np.sin(2 * np.pi * 80 * t)
    volume = np.broadcast_to(inside + outside, (2, 3, nt)).astype(np.float32)
    out = bandpass(volume, 5, 40)
    assert out.shape == volume.shape and out.dtype == np.float32
    core = slice(100, nt - 100)  # away from the edge transients
    np.testing.assert_allclose(out[1, 2, core], inside[core], atol=0.03)  # in-band: same amplitude and phase


@pytest.mark.parametrize(("low", "high", "match"), [(0, 40, "out of order"), (40, 20, "out of order"),
                                                    (5, 125, "Nyquist")])
def test_bandpass_refuses_bad_corners(low, high, match):
    with pytest.raises(InputError, match=match):
        bandpass(np.zeros((2, 2, 64), np.float32), low, high)


def test_fx_decon_keeps_linear_events_and_removes_random_noise():
    clean = _linear_events((2, 48, 512))
    rms = float(np.sqrt(np.mean(clean ** 2)))
    kept = fx_decon(clean)
    assert np.sqrt(np.mean((kept - clean) ** 2)) < 0.1 * rms  # predictable events pass (4 % lost here)
    noise = bandpass(np.random.default_rng(1).normal(size=clean.shape), 5, 60)
    noise *= rms / np.sqrt(np.mean(noise ** 2))  # in-band noise as strong as the signal
    denoised = fx_decon(clean + noise)
    assert np.sqrt(np.mean((denoised - clean) ** 2)) < 0.6 * rms  # more than 40 % of the noise gone


def test_fx_decon_refuses_a_window_narrower_than_its_filter():
    with pytest.raises(InputError, match="window too narrow"):
        fx_decon(np.zeros((1, 8, 64), np.float32), filter_len=6, window_traces=6)
    with pytest.raises(InputError, match="not 3-D"):
        fx_decon(np.zeros((8, 64), np.float32))


def test_fx_decon_handles_sections_narrower_than_the_window():
    volume = np.random.default_rng(2).normal(size=(1, 5, 100)).astype(np.float32)
    out = fx_decon(volume, filter_len=6, window_traces=24)  # 5 traces < filter + 1: nothing to predict
    np.testing.assert_allclose(out, volume, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_keeps_shape_and_returns_float32(name):
    volume = (_linear_events((3, 16, 200)) * 100 + 223).astype(np.float32)
    out = BASELINES[name](volume)
    assert out.shape == volume.shape and out.dtype == np.float32 and np.all(np.isfinite(out))


def test_baselines_run_on_a_challenge_length_volume():
    # Challenge trace length (1259 samples): the FFT sizes and windows must handle it. No timing here: speed is
    # the benchmarks' business (about 0.3 s and 2-3 s on one core of the dev machine).
    volume = np.random.default_rng(3).normal(size=(64, 64, 1259)).astype(np.float32)
    for name in ("bandpass", "fx_decon"):
        out = BASELINES[name](volume)
        assert out.shape == volume.shape and np.isfinite(out).all(), name
