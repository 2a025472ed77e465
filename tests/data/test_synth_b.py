"""Family B: shapes and orientation, determinism, zero noise, calibrated levels, the layout CLI, the training flag."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from impeccable.core.errors import InputError
from impeccable.data import synth
from impeccable.data.families import family_of, synthesize_family_pair
from impeccable.data.synth_b import TARGET_SCORES_B, synthesize_pair_b
from impeccable.data.scoring import score_volumes
from impeccable.data.synth_cli import main

SMALL = (12, 20, 96)
SCORED = (32, 32, 1259)  # full trace length: the score depends on it; ~0.3 s per pair


@pytest.fixture(scope="module")
def small_pair():
    return synthesize_pair_b(3, SMALL, "moderate")


def test_shapes_dtype_and_time_last(small_pair):
    clean, noisy = small_pair
    assert clean.shape == noisy.shape == SMALL
    assert clean.dtype == noisy.dtype == np.float32
    # Layers are laterally continuous: neighbouring traces correlate on both lateral axes (median over
    # volumes, as a fault or a channel can break one). With time on a lateral axis, that axis would compare
    # samples of different times and the volume would not be (12, 20, 96).
    corrs = []
    for seed in range(6):
        c, _ = synthesize_pair_b(seed, SMALL, 0.0)
        c = c - c.mean()
        for axis in (0, 1):
            a, b = np.moveaxis(c, axis, 0)[:-1], np.moveaxis(c, axis, 0)[1:]
            corrs.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    assert np.median(corrs) > 0.7, corrs


def test_dominant_frequency_falls_with_time():
    from scipy import fft

    freqs = fft.rfftfreq(400, 0.004)  # 4 ms samples

    def centroid(window: np.ndarray) -> float:
        power = (np.abs(fft.rfft(window, axis=-1)) ** 2).sum(axis=(0, 1))
        return float((power * freqs).sum() / power.sum())

    for seed in range(6):
        clean, _ = synthesize_pair_b(seed, (8, 8, 1259), 0.0)
        clean = clean - clean.mean()
        shallow, deep = centroid(clean[..., 100:500]), centroid(clean[..., 800:1200])
        assert deep < 0.95 * shallow, (seed, shallow, deep)
        assert 5 < deep and shallow < 60  # seismic band at 4 ms


def test_deterministic_per_seed_and_seeds_differ(small_pair):
    clean, noisy = synthesize_pair_b(3, SMALL, "moderate")
    np.testing.assert_array_equal(clean, small_pair[0])
    np.testing.assert_array_equal(noisy, small_pair[1])
    other, _ = synthesize_pair_b(4, SMALL, "moderate")
    assert not np.allclose(other, clean)


def test_zero_noise_returns_the_clean_volume_exactly():
    clean, noisy = synthesize_pair_b(5, SMALL, 0.0)
    np.testing.assert_array_equal(noisy, clean)
    assert noisy is not clean


def test_level_only_scales_the_noise():
    clean1, noisy1 = synthesize_pair_b(6, SMALL, 0.2)
    clean2, noisy2 = synthesize_pair_b(6, SMALL, 0.4)
    np.testing.assert_array_equal(clean1, clean2)
    n1, n2 = (noisy1 - clean1).astype(np.float64), (noisy2 - clean2).astype(np.float64)
    scale = float(np.abs(clean1).max())
    np.testing.assert_allclose(n2, 2 * n1, atol=1e-4 * scale)
    assert np.abs(n1).max() > 1e-2 * scale


def test_scale_and_offset_vary_between_volumes():
    stds, means = [], []
    for seed in range(8):
        clean, _ = synthesize_pair_b(seed, SMALL, 0.0)
        stds.append(float(clean.std()))
        means.append(abs(float(clean.mean())) / float(clean.std()))
    assert max(stds) / min(stds) > 5  # not min-max scaled: units differ by orders of magnitude
    assert max(means) > 0.1  # some volumes sit on a DC offset


def test_named_levels_score_their_targets():
    for name, target in TARGET_SCORES_B.items():
        for seed in range(2):
            clean, noisy = synthesize_pair_b(seed, SCORED, name)
            assert score_volumes(clean, noisy) == pytest.approx(target, abs=0.006), (name, seed)
    # The solved level is the numeric level that gives the same pair.
    clean, noisy = synthesize_pair_b(0, SCORED, "moderate")
    level = float(np.std(noisy.astype(np.float64) - clean)) / float(clean.std())
    assert 0.1 < level < 2.0


def test_drawn_levels_include_zero_and_span_the_window():
    scores = [score_volumes(*synthesize_pair_b(seed, (16, 16, 400))) for seed in range(30)]
    noise_free = sum(v == 1.0 for v in scores)
    assert 1 <= noise_free <= 8
    noisy = [v for v in scores if v < 1.0]
    assert 0.795 <= min(noisy) and max(noisy) <= 0.975
    assert min(noisy) < 0.85 and max(noisy) > 0.93  # the whole window, not one level


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"seed": -1}, "seed"),
    ({"shape": (4, 16, 64)}, "too small"),
    ({"noise_level": "loud"}, "unknown noise level"),
    ({"noise_level": -0.1}, "finite number >= 0"),
])
def test_bad_arguments(kwargs, match):
    args = {"seed": 0, "shape": SMALL, **kwargs}
    with pytest.raises(InputError, match=match):
        synthesize_pair_b(**args)


def test_mix_alternates_families():
    assert [family_of("mix", i) for i in range(4)] == ["a", "b", "a", "b"]
    assert family_of("b", 0) == "b" and family_of("a", 1) == "a"
    with pytest.raises(InputError, match="unknown synthetic family"):
        family_of("c", 0)
    np.testing.assert_array_equal(synthesize_family_pair("mix", 1, 9, SMALL, "light")[1],
                                  synthesize_pair_b(9, SMALL, "light")[1])
    np.testing.assert_array_equal(synthesize_family_pair("mix", 0, 9, (16, 16, 64), "light")[1],
                                  synth.synthesize_pair(9, (16, 16, 64), "light")[1])


@pytest.mark.parametrize("family", ["b", "mix"])
def test_cli_family_writes_the_layout(tmp_path, family):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [str(out), "--volumes", "2", "--shape", "96,12,20", "--seed", "2",
                                       "--family", family, "--noise-level", "moderate", "--no-progress"])
    assert result.exit_code == 0, result.output
    ids = synth.volume_ids(2, 2)
    for index, vid in enumerate(ids):
        noisy = np.load(out / vid / f"seismic_w_noise_vol_{vid}.npy", allow_pickle=False)
        clean = np.load(out / vid / f"seismicCubes_RFC_fullstack_2023.{vid}.npy", allow_pickle=False)
        assert noisy.shape == clean.shape == (96, 12, 20)  # time first, as the challenge stores it
        want = synthesize_family_pair(family, index, synth.volume_seed(2, index), (12, 20, 96), "moderate")
        np.testing.assert_array_equal(np.moveaxis(clean, 0, -1), want[0])
        np.testing.assert_array_equal(np.moveaxis(noisy, 0, -1), want[1])
    assert result.output.count("score") == 2


def test_cli_rejects_an_unknown_family(tmp_path):
    result = CliRunner().invoke(main, [str(tmp_path / "out"), "--family", "c", "--no-progress"])
    assert result.exit_code != 0 and "family" in result.output
    assert not (tmp_path / "out").exists()


def test_train_config_takes_and_validates_the_family(tmp_path):
    from impeccable.train.config import TrainConfig

    assert TrainConfig(out=tmp_path, synthetic=2, synthetic_family="mix").synthetic_family == "mix"
    assert TrainConfig(out=tmp_path, synthetic=2).synthetic_family == "a"
    with pytest.raises(InputError, match="synthetic-family"):
        TrainConfig(out=tmp_path, synthetic=2, synthetic_family="c")


def test_every_drawn_volume_is_finite():
    # Gains divide by a running RMS: a silent water column or rounding below zero must not make NaN/Inf.
    for seed in range(24):
        clean, noisy = synthesize_pair_b(seed, (8, 8, 400), 0.3)
        assert np.isfinite(clean).all() and np.isfinite(noisy).all(), seed
        assert clean.std() > 0, seed
