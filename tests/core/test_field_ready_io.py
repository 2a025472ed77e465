"""The field-ready input contract: robust scaling, padding at the data's zero level, the sample interval."""
from __future__ import annotations

import numpy as np
import pytest

from impeccable.core import tiling
from impeccable.core.amplitude import MINMAX, ROBUST, Scaling, merge_stats, stats_part, volume_stats
from impeccable.core.card import new_card
from impeccable.core.errors import InputError
from impeccable.core.model_io import ModelIO
from impeccable.core.resample import Resampling


def _volume(seed: int = 0, shape=(6, 20, 300)) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 40 + 7).astype(np.float32)


def test_robust_figures_merge_alike_however_the_volume_is_cut():
    v = _volume()
    whole = volume_stats(v)
    parts = merge_stats([stats_part(v[4:]), stats_part(v[:1]), stats_part(v[1:4])])
    assert (parts.center, parts.spread) == (whole.center, whole.spread)
    assert whole.center == pytest.approx(7, abs=2) and whole.spread == pytest.approx(40 * 2.576, rel=0.05)


def test_spikes_move_neither_the_level_nor_the_spread():
    v = _volume()
    spiky = v.copy()
    spiky[2, 3, 100], spiky[4, 0, 5] = 1e7, -3e6
    a, b = volume_stats(v), volume_stats(spiky)
    assert b.spread == pytest.approx(a.spread, rel=0.01) and b.center == pytest.approx(a.center, abs=0.5)
    unit = ROBUST.normalize(spiky, b)
    assert unit.min() == -1.5 and unit.max() == 2.5  # clipped at 8x the spread
    assert np.median(unit) == pytest.approx(0.5, abs=0.01)
    # min-max: the same two spikes squeeze the data into a sliver
    assert np.ptp(MINMAX.normalize(spiky, b)[np.abs(spiky) < 1e3]) < 1e-3


def test_robust_scaling_round_trips_and_puts_zero_level_at_half():
    v = _volume()
    stats = volume_stats(v)
    unit = ROBUST.normalize(v, stats)
    assert np.abs(ROBUST.denormalize(unit, stats) - v).max() < 1e-3
    assert ROBUST.pad_value == 0.5 and MINMAX.pad_value == 0.0
    assert ROBUST.normalize(np.float32([stats.center]), stats)[0] == pytest.approx(0.5)


def test_model_io_reads_the_card_and_old_cards_keep_the_seed_contract():
    old = new_card(input_size=(64, 128))
    io = ModelIO.from_card(old)
    assert (io.window, io.scaling, io.pad_value, io.interval_ms) == ((64, 128), MINMAX, 0.0, 4.0)
    del old["sampling"]
    assert ModelIO.from_card(old).interval_ms == 4.0
    new = ModelIO.from_card(new_card(input_size=(64, 128), scaling="robust"))
    assert (new.scaling, new.pad_value) == (ROBUST, 0.5)
    assert new.resampling(None) is None and new.resampling(4.0) is None
    assert new.resampling(2.0) == Resampling(1, 2) and new.resampling(8.0) == Resampling(2, 1)
    with pytest.raises(InputError, match="unknown normalization"):
        Scaling("zscore")


@pytest.mark.parametrize("pad_value", [0.0, 0.5])
@pytest.mark.parametrize("shape", [(2, 10, 37), (1, 64, 128), (3, 70, 300)])
def test_every_section_size_is_padded_with_the_cards_value(shape, pad_value):
    seen = []

    def record(batch):
        seen.append(batch.copy())
        return batch

    sections = np.random.default_rng(1).random(shape).astype(np.float32)
    out = tiling.predict_sections(sections, record, (64, 128), tta=True, batch=3, pad_value=pad_value)
    np.testing.assert_allclose(out, sections, atol=1e-6)
    images = np.concatenate(seen)[:, 0]
    rows, cols = min(shape[1], 64), min(shape[2], 128)
    if shape[1] < 64:
        assert np.all(images[:, rows:, :] == pad_value)
    if shape[2] < 128:
        assert np.all(images[:, :, cols:] == pad_value)


def _trace(interval_ms: float, samples: int) -> np.ndarray:
    t = np.arange(samples) * interval_ms / 1000
    wavelet = np.sin(2 * np.pi * 25 * t) * np.exp(-((t - t.mean()) / 0.3) ** 2)
    return wavelet.astype(np.float32)[None, None, :]


def test_resampling_round_trip_keeps_a_band_limited_trace():
    x = _trace(2.0, 1000)
    r = Resampling.between(2.0, 4.0)
    down = r.to_model(x)
    assert down.shape[-1] == 500
    np.testing.assert_allclose(r.to_data(down, 1000), x, atol=5e-3)
    np.testing.assert_allclose(down[0, 0], _trace(4.0, 500)[0, 0], atol=5e-3)  # the same trace at 4 ms


def test_an_identity_model_gives_the_data_back_at_any_interval():
    x = np.random.default_rng(2).random((2, 30, 301)).astype(np.float32)
    for data_ms in (1.0, 2.0, 3.0, 4.0, 8.0):
        out = tiling.predict_sections(x, lambda b: b, (64, 128), tta=True, batch=4, pad_value=0.5,
                                      resampling=Resampling.between(data_ms, 4.0))
        np.testing.assert_allclose(out, x, atol=1e-5)


def test_what_lies_above_the_models_band_passes_through_untouched():
    """A 2 ms line's 100 Hz tone is invisible at 4 ms after anti-aliasing...: a model that removes
    everything it sees removes the 20 Hz part only."""
    t = np.arange(800) * 0.002
    low, high = np.sin(2 * np.pi * 20 * t), 0.5 * np.sin(2 * np.pi * 180 * t)
    x = (low + high).astype(np.float32)[None, None, :].repeat(8, axis=1)
    out = tiling.predict_sections(x, np.zeros_like, (64, 128), tta=False, batch=4, pad_value=0.0,
                                  resampling=Resampling.between(2.0, 4.0))
    inner = slice(100, -100)
    np.testing.assert_allclose(out[0, :, inner], np.broadcast_to(high[inner], (8, 600)), atol=0.05)


def test_the_output_guard_judges_at_the_models_interval_so_2ms_and_4ms_come_out_alike(reflectors):
    """A leaky 'model' (a lateral blur: it takes noise and some of the dipping signal) with every guard step the
    card can ask for: the same line at 2 ms and at 4 ms loses the same removed part (at 4 ms, brought back)."""
    from scipy.ndimage import gaussian_filter1d, uniform_filter1d
    from scipy.signal import resample_poly

    from impeccable.core.output_guard import OutputGuard

    rng = np.random.default_rng(11)
    signal = reflectors(rng, traces=80, samples=300)
    noise = gaussian_filter1d(rng.standard_normal(signal.shape), 1.5, axis=-1)  # below 4 ms's Nyquist, as field noise
    x4 = (0.5 + 0.1 * (signal + noise / noise.std() * 0.3 * signal.std()))[None].astype(np.float32)
    x2 = resample_poly(x4, 2, 1, axis=-1).astype(np.float32)  # the same line, sampled at 2 ms
    guard = OutputGuard(band_energy=True, recover_signal=True, removal_floor_db=-13.0,
                        removal_floor_coherence_db=10.0, removal_floor_conformity=0.6)

    def leaky(images):
        return uniform_filter1d(images, 5, axis=-2, mode="reflect")

    def removed(x, data_ms):
        out = tiling.predict_sections(x, leaky, (64, 128), tta=False, batch=4, pad_value=0.5, guard=guard,
                                      resampling=Resampling.between(data_ms, 4.0))
        return x - out

    r4 = removed(x4, 4.0)
    r2 = resample_poly(removed(x2, 2.0), 1, 2, axis=-1)
    inner = (slice(None), slice(None), slice(20, -20))
    diff = np.linalg.norm((r2 - r4)[inner]) / np.linalg.norm(r4[inner])
    assert np.linalg.norm(r4) > 0.1 * np.linalg.norm(x4 - 0.5)  # the guard left a removal to compare
    assert diff < 0.05, diff  # guarded after resampling back: 0.18
