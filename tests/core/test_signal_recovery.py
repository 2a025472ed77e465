"""Signal recovery (core.signal_recovery): leaked reflectors come back, independent noise stays out."""
import numpy as np

from impeccable.core.card import new_card
from impeccable.core.model_io import ModelIO
from impeccable.core.output_guard import OutputGuard
from impeccable.core.signal_recovery import recover_sections
from impeccable.core.tiling import predict_sections


def _snr(clean, estimate):
    return 10 * np.log10(np.sum(clean ** 2) / np.sum((clean - estimate) ** 2))


def test_leaked_reflectors_come_back(reflectors):
    rng = np.random.default_rng(0)
    signal = reflectors(rng)
    noise = rng.normal(size=signal.shape) * signal.std()
    x = (0.5 + 0.1 * (signal + noise))[None].astype(np.float32)
    leaky = (0.5 + 0.1 * (0.6 * signal + 0.1 * noise))[None].astype(np.float32)  # 40 % of the reflectors removed
    recovered = recover_sections(leaky, x)
    before, after = _snr(0.1 * signal, leaky[0] - 0.5), _snr(0.1 * signal, recovered[0] - 0.5)
    assert after > before + 3, (before, after)


def test_independent_noise_is_not_put_back(reflectors):
    rng = np.random.default_rng(1)
    signal = reflectors(rng)
    noise = rng.normal(size=signal.shape) * signal.std()
    x = (0.5 + 0.1 * (signal + noise))[None].astype(np.float32)
    perfect = (0.5 + 0.1 * signal)[None].astype(np.float32)
    recovered = recover_sections(perfect, x)
    # what came back of the removed noise is a small share of it
    put_back = np.sum((recovered - perfect) ** 2) / np.sum((x - perfect) ** 2)
    assert put_back < 0.01, put_back
    assert _snr(0.1 * signal, recovered[0] - 0.5) > 25


def test_never_takes_away_and_quiet_zones_stay(reflectors):
    rng = np.random.default_rng(2)
    signal = reflectors(rng)
    signal[:, :100] = 0.0  # a top mute
    x = (0.5 + 0.1 * signal)[None].astype(np.float32)
    doubled = (0.5 + 0.2 * signal)[None].astype(np.float32)  # more than the input: anti-correlated removed part
    assert np.array_equal(recover_sections(doubled, x), doubled)
    half = (0.5 + 0.05 * signal)[None].astype(np.float32)
    out = recover_sections(half, x)
    np.testing.assert_allclose(out[..., :100], half[..., :100], atol=1e-4)
    assert np.abs(out - x).max() < np.abs(half - x).max()


def test_the_card_switches_it_on_through_tiling(reflectors):
    card = new_card(scaling="robust")
    guard = ModelIO.from_card(card).output_guard  # new field-ready cards ask for it
    card["output_guard"].pop("recover_signal")
    assert not ModelIO.from_card(card).output_guard.recover_signal  # cards written before it keep their output
    assert guard.recover_signal and guard.band_energy
    rng = np.random.default_rng(3)
    x = np.stack([0.5 + 0.1 * reflectors(rng, 70, 300)]).astype(np.float32)

    def halves(batch):  # a "model" that removes half of everything
        return (0.5 + 0.5 * (batch - 0.5)).astype(np.float32)

    plain = predict_sections(x, halves, (32, 64), tta=True, batch=5, pad_value=0.5)
    guarded = predict_sections(x, halves, (32, 64), tta=True, batch=5, pad_value=0.5, guard=guard)
    assert np.sum((guarded - x) ** 2) < 0.2 * np.sum((plain - x) ** 2)


def test_erratic_traces_are_not_put_back(reflectors):
    """A noisy trace's removed part lines up with what is left of its noise: the lateral median ignores it."""
    rng = np.random.default_rng(5)
    signal = reflectors(rng)
    bad = rng.choice(signal.shape[0], 6, replace=False)
    erratic = np.zeros_like(signal)
    erratic[bad] = rng.normal(size=(bad.size, signal.shape[1])) * 4 * signal.std()
    x = (0.5 + 0.1 * (signal + erratic))[None].astype(np.float32)
    y = (0.5 + 0.1 * (signal + 0.3 * erratic))[None].astype(np.float32)  # 70 % of the bad traces' noise removed
    recovered = recover_sections(y, x)
    clean = (0.5 + 0.1 * signal)[None]
    assert np.sum((recovered - clean)[0, bad] ** 2) < 1.1 * np.sum((y - clean)[0, bad] ** 2)
