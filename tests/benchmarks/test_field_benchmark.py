"""benchmarks/field.py on a tiny stand-in line: figures of a known denoiser, cases on the quiet stretch, JSON."""
import json

import numpy as np

from impeccable.benchmarks import field


def _line(tmp_path):
    """A (1, 40, 1200) 'stack': continuous reflections in samples 300-800, incoherent noise elsewhere."""
    rng = np.random.default_rng(0)
    volume = rng.normal(0, 1, (1, 40, 1200)).astype(np.float32)
    trace = np.convolve(rng.laplace(size=500), np.hanning(9), mode="same")
    volume[0, :, 300:800] = 3 * trace[None, :]
    np.save(tmp_path / "line.npy", volume)
    return volume


def test_quiet_stretch_finds_the_continuous_part(tmp_path):
    volume = _line(tmp_path)
    stretch, first = field.quiet_stretch(volume)
    assert stretch.shape == (1, 40, field.QUIET_SAMPLES) and 250 <= first <= 375
    short = volume[..., :300]
    assert field.quiet_stretch(short)[1] == 0 and field.quiet_stretch(short)[0].shape == short.shape


def test_identity_removes_nothing_and_results_are_json(tmp_path, monkeypatch):
    _line(tmp_path)
    monkeypatch.setattr(field, "LINES", (("line", "line.npy", {}, "stand-in"),))
    monkeypatch.setattr(field, "NOISE_KINDS", ("band-limited",))
    results = field.run(lambda v, dt: v.copy(), tmp_path, tmp_path / "out", log=lambda _: None)
    fig = results["lines"]["line"]
    assert fig["removed_pct"] == 0.0 and fig["ssim_out_vs_in"] == 1.0 and fig["low_freq_ratio"] == 1.0
    case = results["cases"][0]
    assert case["model"]["snr_db"] == case["input"]["snr_db"]  # the identity gains nothing
    assert results["summary"]["cases"] == 1
    json.dumps(results)  # numpy scalars would fail here
    assert (tmp_path / "out" / "line.png").stat().st_size > 0


def test_the_seam_figure_is_the_inputs_on_an_untouched_line_and_sees_a_pasted_tile():
    rng = np.random.default_rng(1)
    line = rng.normal(0, 1, (1, 534, 64))  # two tiles of 320 traces, starting at 0 and 214
    untouched = field.seam_ratio(line, window_traces=320)
    assert untouched == field.damage_figures(line, line.copy(), 4.0)["seam_ratio_input"]
    assert untouched > 1.0  # the largest of a few jumps over the median, with no tiling at all
    pasted = line.copy()
    pasted[:, 214:] += 3.0  # a tile pasted with an offset: a jump where it begins
    assert field.seam_ratio(pasted, window_traces=320) > 2 * untouched
