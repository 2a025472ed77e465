"""The band guard (core.band_guard): no output band above the input's; a real denoiser's output left alone."""
import numpy as np
import pytest
from scipy import signal

from impeccable.core.band_guard import guard_sections
from impeccable.core.card import new_card
from impeccable.core.model_io import ModelIO
from impeccable.core.output_guard import OutputGuard
from impeccable.core.tiling import predict_sections


def _section(rng, traces=48, samples=500):
    """Band-limited (8-40 Hz at 4 ms), laterally continuous reflections, on a level of 0.5."""
    t = np.arange(samples)
    trace = np.zeros(samples)
    for _ in range(25):
        f, t0 = rng.uniform(0.03, 0.16), rng.uniform(0, samples)
        trace += rng.normal() * np.cos(2 * np.pi * f * (t - t0)) * np.exp(-((t - t0) / 12.0) ** 2)
    shifts = np.round(np.linspace(0, 6, traces)).astype(int)
    return (0.5 + 0.1 * np.stack([np.roll(trace, s) for s in shifts])).astype(np.float32)


def _band_power(x, low, high, interval=0.004):
    """Energy in a band of the tapered, level-free traces (a plain FFT would see the traces' ends meet)."""
    taper = signal.windows.tukey(x.shape[-1], 0.1)
    spec = np.abs(np.fft.rfft((x - x.mean(axis=-1, keepdims=True)) * taper, axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], interval)
    return spec[..., (f >= low) & (f < high)].sum()


def test_output_equal_to_input_comes_back_bit_for_bit():
    x = _section(np.random.default_rng(0))[None]
    assert np.array_equal(guard_sections(x.copy(), x), x)


def test_a_denoised_output_with_less_energy_everywhere_is_left_alone():
    rng = np.random.default_rng(1)
    clean = _section(rng)[None]
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    assert np.array_equal(guard_sections(clean, noisy), clean)


@pytest.mark.parametrize("added", ["low", "high"])
def test_energy_the_output_added_is_taken_back(added):
    rng = np.random.default_rng(2)
    x = _section(rng)[None]
    t = np.arange(x.shape[-1])
    if added == "low":  # a smooth wandering background (v5's blotches): 2 Hz at 4 ms
        extra = 0.05 * np.cos(2 * np.pi * 0.008 * t)[None, None, :] * np.linspace(0.5, 1.5, x.shape[1])[None, :, None]
        band = (0.5, 4.0)
    else:  # a faint floor above the signal's band
        extra = 0.01 * rng.normal(size=x.shape)
        band = (80.0, 125.0)
    y = (x + extra).astype(np.float32)
    assert _band_power(y, *band) > 3 * _band_power(x, *band)
    guarded = guard_sections(y, x)
    assert _band_power(guarded, *band) <= 1.2 * _band_power(x, *band)
    # the signal's band is not touched
    signal = _band_power(x, 10, 40)
    assert abs(_band_power(guarded, 10, 40) - signal) < 0.05 * signal
    # the level (zero frequency) stays the output's
    np.testing.assert_allclose(guarded.mean(axis=-1), y.mean(axis=-1), atol=2e-3)


def test_dead_traces_stay_dead_and_shapes_of_any_size_pass():
    rng = np.random.default_rng(3)
    for traces, samples in [(1, 5), (3, 40), (17, 333)]:
        x = _section(rng, traces, samples)[None]
        y = x + rng.normal(0, 0.05, x.shape).astype(np.float32)
        y[:, 0] = x[:, 0] = 0.0
        out = guard_sections(y, x)
        assert out.shape == x.shape and out.dtype == np.float32
        assert np.all(out[:, 0] == 0.0)


def test_cards_say_who_gets_the_guard():
    assert ModelIO.from_card(new_card(scaling="robust")).output_guard.band_energy
    assert not ModelIO.from_card(new_card(scaling="minmax")).output_guard.band_energy
    card = new_card(scaling="robust")
    card.pop("output_guard")
    assert ModelIO.from_card(card).output_guard.band_energy  # field-ready cards written before the guard get it
    card["output_guard"] = {"kind": "none"}
    assert not ModelIO.from_card(card).output_guard.band_energy


def test_the_tiling_path_applies_it_to_whole_sections():
    """A "model" that adds a low-frequency background: through tiling (tiled, TTA) the guard takes it back."""
    rng = np.random.default_rng(4)
    x = np.stack([_section(rng, 70, 300), _section(rng, 70, 300)])
    t = np.arange(64)

    def adds_background(batch):
        return batch + np.float32(0.05) * np.cos(2 * np.pi * 0.01 * t)[None, None, None, :].astype(np.float32)

    plain = predict_sections(x, adds_background, (32, 64), tta=True, batch=5, pad_value=0.5)
    guarded = predict_sections(x, adds_background, (32, 64), tta=True, batch=5, pad_value=0.5,
                               guard=OutputGuard(band_energy=True))
    assert _band_power(plain, 0.5, 6) > 2 * _band_power(x, 0.5, 6)
    assert _band_power(guarded, 0.5, 6) <= 1.2 * _band_power(x, 0.5, 6)
