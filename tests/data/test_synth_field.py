"""Field-like training sections: the target stays reachable from the input whatever traits are drawn."""
from __future__ import annotations

import numpy as np
import pytest

from impeccable.data.synth_field import FieldMix, field_section, in_input_units
from impeccable.train.dataset import robust_pair


def _pair(seed: int = 0, traces: int = 48, samples: int = 400):
    rng = np.random.default_rng(seed)
    t = np.arange(samples)
    clean = np.sin(2 * np.pi * 0.03 * t)[None, :] * np.cos(np.arange(traces) / 9.0)[:, None] * 100
    noise = rng.standard_normal((traces, samples)) * 30
    return clean.astype(np.float32), noise.astype(np.float32)


def test_the_clean_section_is_brought_onto_the_noisy_sections_scale():
    clean, noise = _pair()
    noisy = 0.2 * (clean + noise) + 223.0
    mapped, offset = in_input_units(noisy, clean)
    assert offset == pytest.approx(223.0, abs=0.5)
    residual = noisy - mapped  # what is left is the noise alone, on the noisy scale
    assert np.corrcoef(residual.ravel(), (0.2 * noise).ravel())[0, 1] > 0.99


def test_without_noise_and_traits_the_input_is_the_target():
    clean, _ = _pair()
    noisy, target = field_section(0.2 * clean + 223.0, clean, np.random.default_rng(3), FieldMix(0.0, 0.0))
    np.testing.assert_allclose(noisy, target, atol=1e-3)


@pytest.mark.parametrize("seed", range(12))
def test_every_draw_is_a_pure_function_of_the_rng_and_keeps_shapes_paired(seed):
    clean, noise = _pair(seed)
    a = field_section(clean + noise, clean, np.random.default_rng(seed), FieldMix(1.0, 1.0))
    b = field_section(clean + noise, clean, np.random.default_rng(seed), FieldMix(1.0, 1.0))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == a[1].shape and a[0].dtype == np.float32
    assert 16 <= a[0].shape[1] and np.isfinite(a[0]).all() and np.isfinite(a[1]).all()
    # dead traces (if drawn) are dead in input and target alike: never asked to invent a trace
    flat_in = np.ptp(a[0], axis=1) == 0
    assert np.all(np.ptp(a[1][flat_in], axis=1) == 0)


def test_no_section_size_or_draw_breaks_the_generator():
    """Sections from one trace to longer than the window, every trait forced on: never an error or a NaN."""
    from impeccable.train.dataset import place_in_window

    for seed in range(150):
        rng = np.random.default_rng(seed)
        traces, samples = int(rng.integers(1, 400)), int(rng.integers(20, 1500))
        clean = rng.standard_normal((traces, samples)).astype(np.float32)
        noisy = (clean + rng.standard_normal((traces, samples))).astype(np.float32) * 0.2 + 223
        a, b = field_section(noisy, clean, rng, FieldMix(1.0, 1.0))
        x, y = robust_pair(a, b, rng)
        x, y = place_in_window(x, y, (64, 256), rng, crop=(32, 128), pad_value=0.5)
        assert x.shape == y.shape == (1, 32, 128) and np.isfinite(x).all() and np.isfinite(y).all()


def test_robust_pair_scales_input_and_target_alike():
    clean, noise = _pair()
    x, y = robust_pair(clean + 5.0, clean + 5.0)  # a clean input: the target is the input
    np.testing.assert_allclose(x, np.clip(y, -1.5, 2.5), atol=1e-6)
    assert np.median(x) == pytest.approx(0.5, abs=0.02)
    x, y = robust_pair(clean + noise, clean, np.random.default_rng(0))
    assert abs(np.median(x) - 0.5) < 0.1 and x.shape == y.shape


@pytest.mark.parametrize("factor", [0.45, 1.9])
def test_the_noise_alone_can_move_in_frequency_and_keeps_its_length(factor):
    from impeccable.data.synth_field import _noise_stretch

    t = np.arange(500)
    noise = np.tile(np.sin(2 * np.pi * 0.05 * t), (6, 1)).astype(np.float32)  # 0.05 cycles per sample
    out = _noise_stretch(noise, factor, np.random.default_rng(0))
    assert out.shape == noise.shape
    peak = np.fft.rfftfreq(500)[np.argmax(np.abs(np.fft.rfft(out[0] * np.hanning(500))))]
    assert peak == pytest.approx(0.05 / factor, rel=0.1)
    assert np.max(np.abs(np.diff(out[0]))) < 1.2 * 2 * np.pi * 0.05 / factor  # no jump where copies meet
