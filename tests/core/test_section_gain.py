"""Section gain (core.section_gain): a section's amplitude trend balanced before the network, restored after."""
import numpy as np
import pytest

from impeccable.core.card import new_card
from impeccable.core.model_io import ModelIO
from impeccable.core.section_gain import SectionGain
from impeccable.core.tiling import predict_sections


def _decaying_section(rng, traces=96, samples=600, decay=20.0):
    """Continuous reflections whose amplitude falls ``decay``-fold from top to bottom, in model units."""
    t = np.arange(samples)
    trace = np.convolve(rng.laplace(size=samples) * (rng.random(samples) < 0.2), np.hanning(9), mode="same")
    reflect = np.broadcast_to(trace, (traces, samples)).copy()
    envelope = np.exp(-np.log(decay) * t / (samples - 1))
    return (0.5 + 0.1 * reflect * envelope / reflect.std()).astype(np.float32)


def _shrink(threshold):
    """A stand-in network that removes whatever is fainter than ``threshold`` (what a denoiser does to faint
    energy): soft thresholding around the zero level, per image ``(N, 1, rows, cols)``."""
    def run(batch):
        d = batch - 0.5
        return (0.5 + np.sign(d) * np.maximum(np.abs(d) - threshold, 0.0)).astype(np.float32)
    return run


def test_balance_then_restore_is_the_identity():
    rng = np.random.default_rng(0)
    x = _decaying_section(rng)[None]
    gain = SectionGain()
    g = gain.gains(x)
    assert g.shape == (1, x.shape[-1]) and g.dtype == np.float32
    np.testing.assert_allclose(gain.restore(gain.balance(x, g), g), x, atol=1e-6)


def test_a_true_amplitude_section_is_balanced():
    rng = np.random.default_rng(1)
    x = _decaying_section(rng)[None]
    gain = SectionGain()
    balanced = gain.balance(x, gain.gains(x)) - 0.5
    rms = [float(np.sqrt(np.mean(balanced[..., k:k + 100] ** 2))) for k in range(50, 500, 100)]
    raw = [float(np.sqrt(np.mean((x[..., k:k + 100] - 0.5) ** 2))) for k in range(50, 500, 100)]
    assert max(raw) / min(raw) > 8  # the section decays ...
    assert max(rms) / min(rms) < 2  # ... its balanced form does not


def test_faint_deep_reflections_survive_an_amplitude_dependent_network():
    rng = np.random.default_rng(2)
    x = _decaying_section(rng)[None]
    run = _shrink(0.02)
    plain = predict_sections(x, run, (128, 640), tta=True, batch=4, pad_value=0.5)
    balanced = predict_sections(x, run, (128, 640), tta=True, batch=4, pad_value=0.5, gain=SectionGain())

    def kept(out, window):
        return np.sum((out[..., window] - 0.5) ** 2) / np.sum((x[..., window] - 0.5) ** 2)

    shallow, deep = slice(50, 200), slice(450, 600)
    # Without the gain the faint deep part is treated far worse than the top; with it, about alike.
    assert kept(plain, deep) < 0.25 * kept(plain, shallow), (kept(plain, deep), kept(plain, shallow))
    assert kept(balanced, deep) > 0.5 * kept(balanced, shallow), (kept(balanced, deep), kept(balanced, shallow))
    assert kept(balanced, deep) > 4 * kept(plain, deep)


def test_bad_traces_and_mutes_do_not_move_it():
    rng = np.random.default_rng(3)
    x = _decaying_section(rng, decay=1.0)[None]
    gain = SectionGain()
    clean_g = gain.gains(x)
    spoiled = x.copy()
    spoiled[0, ::17] += rng.normal(size=spoiled[0, ::17].shape).astype(np.float32) * 2.0  # erratic traces
    spoiled[0, 5] = 0.5  # a dead trace
    np.testing.assert_allclose(gain.gains(spoiled), clean_g, rtol=0.15)
    muted = x.copy()
    muted[..., :150] = 0.5
    g = gain.gains(muted)
    assert g[0, :100].min() == pytest.approx(gain.floor)  # a muted zone is not blown up
    assert np.array_equal(gain.balance(muted, g)[..., :100], muted[..., :100])


def test_tiles_of_a_long_section_share_the_section_gain():
    rng = np.random.default_rng(4)
    x = np.concatenate([_decaying_section(rng, traces=100) for _ in range(4)], axis=0)[None]  # 400 traces
    identity = lambda batch: batch  # noqa: E731
    out = predict_sections(x, identity, (128, 640), tta=True, batch=4, pad_value=0.5, gain=SectionGain())
    np.testing.assert_allclose(out, x, atol=1e-6)  # no seam: one gain for all the tiles, undone exactly


def test_the_card_switches_it_on():
    assert ModelIO.from_card(new_card(scaling="robust")).section_gain == SectionGain()
    assert ModelIO.from_card(new_card(scaling="minmax")).section_gain is None
    older = new_card(scaling="robust")
    del older["section_gain"]  # field-ready cards before v8: trained without it, run without it
    assert ModelIO.from_card(older).section_gain is None
