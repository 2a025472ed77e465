"""The synthetic generator: determinism, shapes, amplitude contract, noise placement and level, layout, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from impeccable.core.errors import InputError
from impeccable.data import synth
from impeccable.data.preview import save_pair_preview
from impeccable.data.scoring import score_volumes
from impeccable.data.synth_cli import main

SMALL = (16, 16, 256)
MEDIUM = (48, 48, 640)  # big enough for the challenge score to mean something, ~0.3 s per pair


@pytest.fixture(scope="module")
def small_pair():
    return synth.synthesize_pair(7, SMALL)


def _affine_from_water(clean: np.ndarray, noisy: np.ndarray, top: int) -> tuple[float, float]:
    """a, b of ``noisy = a * clean + b`` fitted on the top ``top`` samples (water column, noise-free)."""
    a, b = np.polyfit(clean[..., :top].ravel().astype(np.float64), noisy[..., :top].ravel().astype(np.float64), 1)
    return float(a), float(b)


def test_deterministic_for_a_seed(small_pair):
    clean, noisy = synth.synthesize_pair(7, SMALL)
    np.testing.assert_array_equal(clean, small_pair[0])
    np.testing.assert_array_equal(noisy, small_pair[1])


def test_different_seeds_differ(small_pair):
    clean, noisy = synth.synthesize_pair(8, SMALL)
    assert not np.allclose(clean, small_pair[0])
    assert not np.allclose(noisy, small_pair[1])


@pytest.mark.parametrize("shape", [SMALL, (8, 24, 64), (20, 12, 300)])
def test_shapes_and_dtypes(shape):
    clean, noisy = synth.synthesize_pair(1, shape)
    for vol in (clean, noisy):
        assert vol.shape == shape
        assert vol.dtype == np.float32
        assert np.isfinite(vol).all()


def test_clean_amplitude_like_synthoseis(small_pair):
    clean, _ = small_pair
    assert clean.std() == pytest.approx(synth.CLEAN_STD, rel=1e-3)
    assert abs(float(clean.mean())) < 5.0


def test_noisy_is_an_affine_rescale_plus_noise_and_water_is_noise_free():
    seed, shape = 3, (16, 16, 400)
    clean, noisy = synth.synthesize_pair(seed, shape, 0.5)
    t_wb = synth._draw_plan(seed, shape).t_wb  # seafloor sample per trace
    a, b = _affine_from_water(clean, noisy, int(t_wb.min()) - 2)
    assert 0.15 <= a <= 0.3 and 200 <= b <= 250
    noise = (noisy.astype(np.float64) - b) / a - clean
    above = np.arange(shape[2])[None, None, :] < np.floor(t_wb)[:, :, None]
    assert np.abs(noise[above]).max() < 0.05  # float32 rounding only: nothing added in the water column
    # The level's physical meaning: noise RMS over the volume / clean RMS.
    assert np.sqrt(np.mean(noise ** 2)) / clean.std() == pytest.approx(0.5, rel=0.02)
    # Most noise sits between the seafloor and the curved lower edge, none below it to speak of.
    t_edge = synth._draw_plan(seed, shape).t_edge
    below = np.arange(shape[2])[None, None, :] > t_edge[:, :, None] + 25
    assert np.sqrt(np.mean(noise[below] ** 2)) < 0.1 * np.sqrt(np.mean(noise[~below & ~above] ** 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_drawn_noise_level_scores_in_the_challenge_window(seed):
    clean, noisy = synth.synthesize_pair(seed, MEDIUM)
    score = score_volumes(clean, noisy)
    assert 0.80 <= score <= 0.95
    assert synth.pair_score(clean, noisy) == pytest.approx(score, abs=1e-12)


def test_named_levels_order_and_window():
    moderate = [synth.pair_score(*synth.synthesize_pair(s, MEDIUM, synth.NOISE_LEVELS["moderate"])) for s in (4, 5)]
    strong = [synth.pair_score(*synth.synthesize_pair(s, MEDIUM, "strong")) for s in (4, 5)]
    light = [synth.pair_score(*synth.synthesize_pair(s, MEDIUM, "light")) for s in (4, 5)]
    assert all(0.84 <= m <= 0.95 for m in moderate)
    assert all(0.78 <= s < m for s, m in zip(strong, moderate))
    assert all(m < li <= 0.98 for li, m in zip(light, moderate))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seed": -1}, "seed"),
    ({"seed": 0, "shape": (4, 16, 256)}, "shape"),
    ({"seed": 0, "shape": (16, 16)}, "shape"),
    ({"seed": 0, "noise_level": -0.1}, "noise level"),
    ({"seed": 0, "noise_level": float("nan")}, "noise level"),
    ({"seed": 0, "noise_level": "loud"}, "unknown noise level"),
])
def test_bad_arguments(kwargs, match):
    kwargs.setdefault("shape", SMALL)
    with pytest.raises(InputError, match=match):
        synth.synthesize_pair(**kwargs)


def test_layout_names_orientation_and_atomicity(tmp_path):
    first = synth.write_challenge_layout(tmp_path / "tf", 2, (256, 16, 12), seed=3, time_first=True, progress=False)
    last = synth.write_challenge_layout(tmp_path / "tl", 2, (256, 16, 12), seed=3, time_first=False, progress=False)
    assert [r[0] for r in first] == [r[0] for r in last] == synth.volume_ids(3, 2)
    for (vid, noisy_tf, clean_tf), (_, noisy_tl, clean_tl) in zip(first, last):
        assert len(vid) == 8 and vid.isdigit()
        assert clean_tf == tmp_path / "tf" / vid / f"seismicCubes_RFC_fullstack_2023.{vid}.npy"
        assert noisy_tf == tmp_path / "tf" / vid / f"seismic_w_noise_vol_{vid}.npy"
        for tf_path, tl_path in ((noisy_tf, noisy_tl), (clean_tf, clean_tl)):
            tf = np.load(tf_path, allow_pickle=False)
            tl = np.load(tl_path, allow_pickle=False)
            assert tf.shape == (256, 16, 12) and tl.shape == (16, 12, 256)
            np.testing.assert_array_equal(tf, np.moveaxis(tl, -1, 0))
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".npy")]
    assert leftovers == []


def test_volume_ids_distinct_and_deterministic():
    ids = synth.volume_ids(0, 50)
    assert len(set(ids)) == 50 and ids == synth.volume_ids(0, 50) and ids != synth.volume_ids(1, 50)


def test_cli_writes_layout_scores_and_preview(tmp_path):
    out, png = tmp_path / "out", tmp_path / "pair.png"
    result = CliRunner().invoke(main, [str(out), "--volumes", "2", "--shape", "256,16,16", "--seed", "1",
                                       "--time-last", "--noise-level", "moderate", "--preview", str(png),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    ids = synth.volume_ids(1, 2)
    for vid in ids:
        assert f"{vid}  score 0." in result.output
        assert np.load(out / vid / f"seismic_w_noise_vol_{vid}.npy").shape == (16, 16, 256)
        assert (out / vid / f"seismicCubes_RFC_fullstack_2023.{vid}.npy").is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [["--shape", "256,16"], ["--shape", "a,b,c"], ["--shape", "256,4,16"],
                                  ["--noise-level", "loud"], ["--volumes", "0"], ["--seed", "-2"]])
def test_cli_bad_arguments_are_one_line_errors(tmp_path, args):
    result = CliRunner().invoke(main, [str(tmp_path / "out"), "--no-progress", *args])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in result.output


def test_preview_panels_and_errors(tmp_path, small_pair):
    clean, noisy = small_pair
    assert save_pair_preview(tmp_path / "a.png", clean, noisy).is_file()
    assert save_pair_preview(tmp_path / "b.png", noisy=noisy, denoised=clean, inline=0, title="t").is_file()
    assert save_pair_preview(tmp_path / "c.png", clean=clean).is_file()
    with pytest.raises(InputError, match="no volume"):
        save_pair_preview(tmp_path / "d.png")
    with pytest.raises(InputError, match="one shape"):
        save_pair_preview(tmp_path / "d.png", clean, noisy[:, :8])
    with pytest.raises(InputError, match="out of range"):
        save_pair_preview(tmp_path / "d.png", clean, noisy, inline=99)
    assert not (tmp_path / "d.png").exists()
