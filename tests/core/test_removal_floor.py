"""The removal floor (core.removal_floor): weak removal on strong signal is left out, real noise still goes."""
import numpy as np

from impeccable.core.card import new_card
from impeccable.core.model_io import ModelIO
from impeccable.core.removal_floor import floor_sections


def _unit(x):
    return (0.5 + 0.1 * x)[None].astype(np.float32)


def _applied(out, x, perfect):
    """Share of the denoiser's removal that the floor applied (energy)."""
    return float(np.sum((x - out) ** 2) / np.sum((x - perfect) ** 2))


def test_a_stack_with_faint_noise_comes_back_nearly_unchanged(reflectors):
    rng = np.random.default_rng(0)
    signal = reflectors(rng)
    signal /= signal.std()
    x = _unit(signal + 0.03 * rng.normal(size=signal.shape))  # noise 30 dB under the signal
    perfect = _unit(signal)  # a denoiser that removes exactly the noise
    out = floor_sections(perfect, x, -13.0)
    assert _applied(out, x, perfect) < 0.01


def test_real_noise_is_still_removed(reflectors):
    rng = np.random.default_rng(1)
    signal = reflectors(rng)
    signal /= signal.std()
    x = _unit(signal + 0.7 * rng.normal(size=signal.shape))  # about 3 dB under the signal
    perfect = _unit(signal)
    out = floor_sections(perfect, x, -13.0)
    assert _applied(out, x, perfect) > 0.95
    # an erratic trace on a quiet stack: its removal stands out locally and is applied in full
    x = _unit(signal + 0.03 * rng.normal(size=signal.shape))
    x[0, 60] += 0.1 * 5 * rng.normal(size=signal.shape[1])
    cleaned = x.copy()
    cleaned[0, 60] = perfect[0, 60]
    out = floor_sections(cleaned, x, -13.0)
    assert float(np.sum((out[0, 60] - perfect[0, 60]) ** 2) / np.sum((x[0, 60] - perfect[0, 60]) ** 2)) < 0.05


def test_quiet_zones_are_judged_against_the_whole_section(reflectors):
    rng = np.random.default_rng(2)
    signal = reflectors(rng)
    signal /= signal.std()
    signal[:, :100] = 0.0  # a top mute: the output is nothing there, the ratio alone would keep any noise
    top = (slice(None), slice(None), slice(None, 80))
    noise = 0.3 * rng.normal(size=signal.shape)  # noise the mute makes plain: 10 dB under the section's signal
    x, perfect = _unit(signal + noise), _unit(signal)
    assert _applied(floor_sections(perfect, x, -13.0)[top], x[top], perfect[top]) > 0.95
    faint = _unit(signal + 0.01 * noise)  # 50 dB under it: as harmless there as anywhere, kept
    assert _applied(floor_sections(perfect, faint, -13.0)[top], faint[top], perfect[top]) < 0.01


def test_the_card_switches_it_on_and_older_cards_keep_their_output():
    card = new_card(scaling="robust")
    card["output_guard"]["removal_floor_db"] = -13
    assert ModelIO.from_card(card).output_guard.removal_floor_db == -13.0
    card["output_guard"].pop("removal_floor_db")
    assert ModelIO.from_card(card).output_guard.removal_floor_db is None
    assert not ModelIO.from_card(new_card()).output_guard  # min-max cards: no guard at all
