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


def _weak_removal(reflectors, rng, coherent: bool):
    """A stack, a removed part 8 dB under it (the stack's own weaker reflectors, or random noise), and the
    denoiser's output without it: ``(input, output)`` in model units."""
    signal = reflectors(rng)
    signal /= signal.std()
    if coherent:
        part = reflectors(rng)  # other reflectors: what a network takes from a stack when it mistakes them
    else:
        part = rng.normal(size=signal.shape)
    part *= 10 ** (-8 / 20) / part.std()
    return _unit(signal + part), _unit(signal)


def test_a_coherent_raise_keeps_weak_reflectors_and_still_removes_weak_random_noise(reflectors):
    """The same removed power, 8 dB under the stack: reflector energy stays, random noise goes."""
    x, out = _weak_removal(reflectors, np.random.default_rng(3), coherent=True)
    assert _applied(floor_sections(out, x, -13.0), x, out) > 0.8  # the plain floor takes it
    assert _applied(floor_sections(out, x, -13.0, coherence_db=10.0), x, out) < 0.3
    x, out = _weak_removal(reflectors, np.random.default_rng(4), coherent=False)
    plain = _applied(floor_sections(out, x, -13.0), x, out)
    assert plain > 0.7 and _applied(floor_sections(out, x, -13.0, coherence_db=10.0), x, out) > 0.97 * plain


def test_strong_coherent_noise_is_removed_under_a_coherent_raise(reflectors):
    """Swell, ground roll, linear noise: laterally coherent, but standing well out of the floor."""
    rng = np.random.default_rng(5)
    signal = reflectors(rng)
    signal /= signal.std()
    dipping = reflectors(rng)  # coherent events, 6 dB over the signal
    x, out = _unit(signal + 2.0 * dipping / dipping.std()), _unit(signal)
    assert _applied(floor_sections(out, x, -13.0, coherence_db=10.0), x, out) > 0.9


def test_no_raise_is_the_plain_floor_bit_for_bit(reflectors):
    x, out = _weak_removal(reflectors, np.random.default_rng(6), coherent=True)
    assert np.array_equal(floor_sections(out, x, -13.0, coherence_db=0.0), floor_sections(out, x, -13.0))


def test_lateral_coherence_tells_reflectors_from_random_and_erratic_traces(reflectors):
    from impeccable.core.removal_floor import lateral_coherence

    rng = np.random.default_rng(7)
    assert np.median(lateral_coherence(reflectors(rng))) > 0.8
    assert abs(np.median(lateral_coherence(rng.normal(size=(120, 400))))) < 0.1
    erratic = np.zeros((120, 400))
    erratic[::7] = rng.normal(size=(len(range(0, 120, 7)), 400))  # isolated bad traces
    assert np.median(lateral_coherence(erratic)) < 0.1
    assert np.all(lateral_coherence(np.ones((1, 50))) == 0)  # one trace: nothing to line up with


def test_the_run_sets_the_raise_and_the_card_can_carry_it():
    import pytest

    from impeccable.core.errors import InputError

    card = new_card(scaling="robust")
    assert ModelIO.from_card(card).output_guard.removal_floor_coherence_db == 10.0  # new cards' default
    del card["output_guard"]["removal_floor_coherence_db"]
    io = ModelIO.from_card(card)
    assert io.output_guard.removal_floor_coherence_db == 0.0  # cards without it (v9-v12's first card): no raise
    assert io.with_removal_floor(None, 10).output_guard.removal_floor_coherence_db == 10.0
    assert io.with_removal_floor(-9, None).output_guard.removal_floor_coherence_db == 0.0
    card["output_guard"]["removal_floor_coherence_db"] = 8
    assert ModelIO.from_card(card).output_guard.removal_floor_coherence_db == 8.0
    with pytest.raises(InputError, match="coherence raise needs a removal floor"):
        io.with_removal_floor("off", 10)
    with pytest.raises(InputError, match="field-ready model"):
        ModelIO.from_card(new_card()).with_removal_floor(None, 10)


def _events(rng, dip, traces=120, samples=400, count=20):
    """``count`` band-limited reflections all dipping ``dip`` samples per trace, unit std, ``(traces, samples)``."""
    t = np.arange(samples)
    out = np.zeros((traces, samples))
    for _ in range(count):
        centre = rng.uniform(0, samples) + dip * np.arange(traces)[:, None]
        out += rng.normal() * np.exp(-((t - centre) / 3.0) ** 2) * np.cos((t - centre) / 2.0)
    return out / out.std()


def test_a_conforming_raise_keeps_what_runs_with_the_stack_and_removes_what_crosses_it():
    """Reflector energy taken from a stack runs parallel to the events kept; weak coherent noise that crosses
    them (the challenge's streaks) gets the plain floor back."""
    rng = np.random.default_rng(7)
    stack = _events(rng, 0.2)
    weak = 10 ** (-8 / 20)
    parallel, crossing = weak * _events(rng, 0.2), weak * _events(rng, -0.8)
    for part, kept_with_conformity in ((parallel, True), (crossing, False)):
        x, out = _unit(stack + part), _unit(stack)
        plain = _applied(floor_sections(out, x, -13.0), x, out)
        raised = _applied(floor_sections(out, x, -13.0, coherence_db=10.0), x, out)
        conforming = _applied(floor_sections(out, x, -13.0, coherence_db=10.0, conformity=0.6), x, out)
        assert plain > 0.8 and raised < 0.4  # the plain raise keeps both
        if kept_with_conformity:
            assert conforming < 0.4
        else:
            assert conforming > 0.9 * plain


def test_the_card_carries_the_conformity_and_without_it_the_raise_is_unchanged(reflectors):
    from impeccable.core.output_guard import OutputGuard

    card = new_card(scaling="robust")
    del card["output_guard"]["removal_floor_conformity"]
    card["output_guard"].update(removal_floor_db=-13, removal_floor_coherence_db=10)
    assert OutputGuard.from_card(card, robust=True).removal_floor_conformity == 0.0
    card["output_guard"]["removal_floor_conformity"] = 0.6
    guard = OutputGuard.from_card(card, robust=True)
    assert guard.removal_floor_conformity == 0.6 and guard.as_dict()["removal_floor_conformity"] == 0.6
    x, out = _weak_removal(reflectors, np.random.default_rng(9), coherent=True)
    assert np.array_equal(floor_sections(out, x, -13.0, coherence_db=10.0, conformity=0.0),
                          floor_sections(out, x, -13.0, coherence_db=10.0))
