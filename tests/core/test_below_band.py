"""Below the model's band: outstanding very-low-frequency energy goes, a stack's faint low end stays."""
from __future__ import annotations

import numpy as np
import pytest

from impeccable.core.below_band import below_band_sections
from impeccable.core.card import new_card
from impeccable.core.output_guard import OutputGuard

T = np.arange(600) * 0.004  # seconds, 4 ms


def _low_energy(x: np.ndarray) -> float:
    """Energy below 3 Hz, (tapered) FFT."""
    spec = np.abs(np.fft.rfft((x - x.mean(axis=-1, keepdims=True)) * np.hanning(x.shape[-1]), axis=-1)) ** 2
    return float(spec[..., np.fft.rfftfreq(x.shape[-1], 0.004) < 3.0].sum())


@pytest.fixture
def stack():
    """A stack-like section: sparse reflectivity, laterally continuous, a 25 Hz Ricker wavelet, level 7."""
    rng = np.random.default_rng(3)
    reflectivity = np.where(rng.random(600) < 0.05, rng.normal(size=600), 0.0)
    tw = np.arange(-30, 31) * 0.004
    ricker = (1 - 2 * (np.pi * 25 * tw) ** 2) * np.exp(-(np.pi * 25 * tw) ** 2)
    trace = np.convolve(reflectivity, ricker, mode="same")
    section = np.stack([np.roll(trace, k // 4) * (1 + 0.01 * k) for k in range(40)])
    return (section + 7.0)[None].astype(np.float32)


def test_swell_on_some_traces_goes_and_the_other_traces_are_untouched(stack):
    swell = np.zeros_like(stack)
    swell[0, 10:20] = 2.0 * stack.std() * np.sin(2 * np.pi * 1.2 * T + 0.3)
    out = below_band_sections(stack + swell, 3.0, 4.0, -20.0)
    hit, clear = slice(10, 20), np.r_[0:10, 20:40]
    assert _low_energy(out[0, hit]) < 0.01 * _low_energy(swell[0, hit])
    signal_energy = np.sum((stack[0, clear] - 7.0) ** 2)
    assert np.sum((out - stack)[0, clear] ** 2) < 1e-5 * signal_energy  # a stack's low end is 30 dB down
    # what went is the swell, not the stack's signal above the band
    assert np.sum((out - stack)[0, hit] ** 2) < 0.02 * np.sum(swell[0, hit] ** 2)


def test_a_stack_keeps_its_faint_low_end_and_its_level(stack):
    faint = stack.std() * 10 ** (-35 / 20) * np.sin(2 * np.pi * 2.0 * T)  # broadband signal 35 dB down at 2 Hz
    x = (stack + faint).astype(np.float32)
    out = below_band_sections(x, 3.0, 4.0, -20.0)
    assert _low_energy(out) > 0.97 * _low_energy(x)
    np.testing.assert_allclose(out.mean(axis=-1), x.mean(axis=-1), rtol=1e-5)


def test_the_threshold_decides(stack):
    swell = 0.2 * stack.std() * np.sin(2 * np.pi * 1.2 * T)  # about -14 dB of the stack, on every trace
    x = (stack + swell).astype(np.float32)
    kept = below_band_sections(x, 3.0, 4.0, 0.0)
    gone = below_band_sections(x, 3.0, 4.0, -30.0)
    assert _low_energy(kept) > 0.9 * _low_energy(x) and _low_energy(gone) < 0.05 * _low_energy(x)


def test_sections_under_two_periods_of_the_edge_come_back_as_given_and_a_bad_edge_is_refused():
    x = np.random.default_rng(0).standard_normal((1, 4, 160)).astype(np.float32)  # 640 ms: under two 333 ms periods
    assert below_band_sections(x, 3.0, 4.0, -20.0) is x
    with pytest.raises(ValueError, match="band edge"):
        below_band_sections(np.zeros((1, 4, 200), np.float32), 200.0, 4.0, -20.0)


def test_the_card_carries_it_with_the_models_band_and_interval():
    card = new_card(scaling="robust")
    assert OutputGuard.from_card(card, robust=True).below_band_db == -15.0  # new cards' default
    del card["output_guard"]["below_band_db"]
    assert OutputGuard.from_card(card, robust=True).below_band_db is None  # older cards: off
    card["output_guard"]["below_band_db"] = -20
    card["sampling"].update(interval_ms=2.0, band_hz=[5.0, 120.0])
    guard = OutputGuard.from_card(card, robust=True)
    assert (guard.below_band_db, guard.band_hz, guard.interval_ms) == (-20.0, (5.0, 120.0), 2.0)
    assert guard.as_dict()["below_band_db"] == -20.0
