"""Field QC figures (impeccable.core.qc) on sections whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from impeccable.core.qc import BAND_WARN, exact_sum, merge_qc, qc_part, sample_interval_ms

DT_MS = 4.0


def _report(x, y, interval=DT_MS, cuts=None):
    """The QC report of input ``x`` and output ``y`` ``(inline, crossline, sample)``, measured in ``cuts``."""
    cuts = cuts or [(0, x.shape[0])]
    sampled = list(range(x.shape[0]))
    parts = [qc_part(a, x[a:b], y[a:b], None, mean=0.0, sampled=sampled) for a, b in cuts]
    return merge_qc(parts, interval)


def _reflectivity(shape, seed=0):
    """Flat reflectors (the same on every trace): a band-limited, laterally coherent section."""
    rng = np.random.default_rng(seed)
    trace = gaussian_filter1d(rng.normal(size=shape[2]), 2.0)
    return np.broadcast_to(trace, shape).astype(np.float32).copy()


@pytest.mark.parametrize("hz", [10.0, 25.0, 60.0])
def test_a_sine_lands_in_its_bin_in_hz_and_in_cycles_per_sample(hz):
    t = np.arange(1000) * DT_MS * 1e-3
    x = np.broadcast_to(np.sin(2 * np.pi * hz * t), (2, 8, 1000)).astype(np.float32)
    y = 0.5 * x
    q = _report(x, y)
    freq = np.asarray(q["spectra"]["frequency"])
    width = freq[1] - freq[0]
    assert q["frequency_unit"] == "Hz"
    for key in ("input", "output", "removed"):
        assert abs(freq[np.argmax(q["spectra"][key])] - hz) <= width
    assert q["signal_band"][0] == pytest.approx(hz, abs=2 * width)
    unknown = _report(x, y, interval=None)
    f = np.asarray(unknown["spectra"]["frequency"])
    assert unknown["frequency_unit"] == "cycles/sample"
    assert abs(f[np.argmax(unknown["spectra"]["input"])] - hz * DT_MS * 1e-3) <= f[1] - f[0]
    assert "sample interval unknown" in unknown["summary"]


def test_removed_white_noise_is_incoherent_and_a_removed_reflector_coherent():
    rng = np.random.default_rng(1)
    signal = _reflectivity((3, 40, 500))
    noise = rng.normal(scale=signal.std(), size=signal.shape).astype(np.float32)
    good = _report(signal + noise, signal)  # removes exactly the noise
    assert abs(good["coherence"]["removed"]) < 0.1
    assert "incoherent" in good["summary"]
    lost = _report(signal + noise, noise)  # removes the reflectors, keeps the noise
    assert lost["coherence"]["removed"] > 0.9
    assert any("coherent across traces" in w for w in lost["warnings"])
    assert lost["local_similarity"] < 0.2 and good["local_similarity"] < 0.2  # both orthogonal locally


def test_added_low_frequencies_are_warned_and_a_clean_run_is_not():
    rng = np.random.default_rng(2)
    t = np.arange(750) * DT_MS * 1e-3
    signal = _reflectivity((2, 30, 750), seed=3)
    signal = signal - gaussian_filter1d(signal, 6, axis=-1)  # no energy below ~8 Hz
    noise = 0.3 * rng.normal(scale=signal.std(), size=signal.shape)
    x = (signal + noise).astype(np.float32)
    clean = _report(x, signal)
    assert not clean["warnings"], clean["warnings"]
    assert "nothing added below 8 Hz" in clean["summary"]
    swell = 2.0 * signal.std() * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6, (2, 30, 1)))
    added = _report(x, (signal + swell).astype(np.float32))
    assert added["low_frequency"]["below_8_hz"]["output_over_input"] > BAND_WARN
    assert any("below 8 Hz" in w for w in added["warnings"])
    assert any("in the band 0 Hz-" in w for w in added["warnings"])
    assert "ADDED energy below 8 Hz" in added["summary"]
    # A noise-free input and the swell at 1/100 of that amplitude: the ratio is above 1.1 but of next to nothing
    # (under 0.1 % of the input's energy), so no warning, and the summary says so rather than "nothing added (3x)".
    spectrum = np.fft.rfft(signal, axis=-1)
    spectrum[..., np.fft.rfftfreq(750, DT_MS * 1e-3) < 10.0] = 0
    quiet = np.fft.irfft(spectrum, 750, axis=-1)  # nothing at all below 10 Hz
    faint = _report(quiet.astype(np.float32), (quiet + 1e-2 * swell).astype(np.float32))
    assert faint["low_frequency"]["below_8_hz"]["output_share"] < 1e-3
    assert faint["low_frequency"]["below_8_hz"]["output_over_input"] > BAND_WARN
    assert not any("below 8 Hz" in w for w in faint["warnings"])
    assert "nothing of weight added below 8 Hz" in faint["summary"]


def test_a_blob_at_the_bottom_shows_in_the_removed_energy_by_depth():
    signal = _reflectivity((2, 20, 400), seed=4)
    y = signal.copy()
    y[:, :, -40:] += 5 * signal.std()  # a painted blob in the last window
    q = _report(signal, y)
    ratios = [w["removed_over_input"] for w in q["removed_by_depth"]]
    assert len(ratios) == 10 and np.argmax(ratios) == 9 and ratios[9] > 1 and max(ratios[:9]) == 0
    assert q["removed_by_depth"][9]["to"] == 400 * DT_MS
    assert any("painted" in w for w in q["warnings"])


def test_parts_merge_exactly_however_the_volume_is_cut_and_the_report_is_json():
    rng = np.random.default_rng(5)
    x = rng.normal(100, 20, (7, 9, 130)).astype(np.float32)
    y = gaussian_filter1d(x, 2, axis=-1).astype(np.float32)
    whole = _report(x, y)
    cut = _report(x, y, cuts=[(4, 7), (0, 3), (3, 4)])
    assert whole == cut
    assert json.loads(json.dumps(whole)) == whole
    part = qc_part(0, x, y, None, mean=0.0, sampled=[0])
    assert merge_qc([json.loads(json.dumps(part))], DT_MS) == merge_qc([part], DT_MS)


def test_exact_sum_does_not_depend_on_grouping():
    v = np.array([1e16, 1.0, -1e16, 3.5e-300, 2.0**-40])
    a = exact_sum(v)
    assert a == exact_sum(v[::-1])
    from impeccable.core.qc import _add_pairs, _value

    assert _add_pairs(exact_sum(v[:2]), exact_sum(v[2:])) == a
    assert _value(a) == 1.0 + 3.5e-300 + 2.0**-40


def test_sample_interval_from_a_reader():
    class Segy:
        samples = np.arange(0, 20, 2.0)

    class Known:
        sample_interval_ms = 4

    class Runtime:  # the runtime's readers (runtime.volumes.VolumeReader.sample_interval)
        sample_interval = 2.5

    class Unknown:
        sample_interval = None

    assert sample_interval_ms(Segy()) == 2.0
    assert sample_interval_ms(Known()) == 4.0
    assert sample_interval_ms(Runtime()) == 2.5
    assert sample_interval_ms(Unknown()) is None


def test_a_volume_one_crossline_wide_pairs_consecutive_inlines_across_parts():
    rng = np.random.default_rng(6)
    line = _reflectivity((1, 60, 300), seed=7)[0][:, None, :]  # (60 inlines, 1 crossline, 300 samples)
    noise = rng.normal(scale=line.std(), size=line.shape).astype(np.float32)
    whole = _report(line + noise, noise)  # removes the (flat, coherent) reflectors
    assert whole["coherence"]["pairs"] == 59 and whole["coherence"]["removed"] > 0.9
    assert _report(line + noise, noise, cuts=[(17, 60), (0, 5), (5, 17)]) == whole
