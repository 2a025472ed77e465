"""The challenge data reader: pairing, orientation, refusals (never unpickling), the score filter, the HDF5 cache."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from impeccable.core.amplitude import volume_stats
from impeccable.core.errors import DataError, InputError, OutputError
from impeccable.data.challenge import (
    CLEAN_PATTERN,
    NOISY_PATTERN,
    VolumePair,
    build_section_cache,
    clean_name,
    find_pairs,
    load_pair,
    load_volume,
    noisy_name,
    open_section_cache,
    section_score,
)
from impeccable.data.scoring import score_volumes

CANON = (8, 9, 48)  # (inline, crossline, sample): distinct sizes catch swapped axes; >= 7 for the SSIM window


def _volume(seed: int, shape: tuple[int, int, int] = CANON) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _noisy_of(clean: np.ndarray, seed: int, level: float = 0.3) -> np.ndarray:
    """Like the challenge: another affine scale plus a little noise."""
    return (0.2 * (clean + level * _volume(seed, clean.shape)) + 223).astype(np.float32)


def _save(path: Path, canonical: np.ndarray, time_first: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.moveaxis(canonical, -1, 0) if time_first else canonical)
    return path


def _write_pair(root: Path, volume_id: str, clean: np.ndarray, noisy: np.ndarray, noisy_time_first: bool = True,
                clean_time_first: bool = False) -> VolumePair:
    folder = root / volume_id
    return VolumePair(volume_id, _save(folder / f"seismic_w_noise_vol_{volume_id}.npy", noisy, noisy_time_first),
                      _save(folder / f"seismicCubes_RFC_fullstack_2023.{volume_id}.npy", clean, clean_time_first))


class _Boom:
    """Unpickling this creates a file: the proof that a reader unpickled."""

    def __init__(self, flag: Path):
        self.flag = flag

    def __reduce__(self):
        return (open, (str(self.flag), "w"))


@pytest.fixture
def report():
    """Collects the reported lines."""
    return []


def test_pairs_found_anywhere_sorted_and_canonical_in_both_orientations(tmp_path):
    clean_a, clean_b = _volume(1), _volume(2)
    _write_pair(tmp_path / "part2", "200", clean_b, _noisy_of(clean_b, 3), noisy_time_first=False,
                clean_time_first=True)
    _write_pair(tmp_path / "deep" / "part1", "100", clean_a, _noisy_of(clean_a, 4))
    pairs = find_pairs(tmp_path)
    assert [p.volume_id for p in pairs] == ["100", "200"]
    for pair, clean in zip(pairs, (clean_a, clean_b)):
        noisy, loaded = load_pair(pair)
        assert noisy.shape == loaded.shape == CANON
        np.testing.assert_array_equal(loaded, clean)  # inline and crossline kept in order, not swapped
        assert isinstance(noisy.base, np.memmap) or isinstance(noisy, np.memmap)
        assert not noisy.flags.writeable


def test_explicit_time_axis_applies_to_both_files(tmp_path):
    clean = _volume(1)
    pair = _write_pair(tmp_path, "1", clean, _noisy_of(clean, 2), noisy_time_first=True, clean_time_first=True)
    noisy, loaded = load_pair(pair, time_axis=0)
    np.testing.assert_array_equal(loaded, clean)
    # the wrong explicit axis is obeyed, and then the shapes tell
    with pytest.raises(DataError, match="shapes differ|time axis"):
        load_pair(VolumePair("1", pair.noisy, _save(tmp_path / "c.npy", clean, False)), time_axis=0)


def test_unusable_pairs_are_reported_and_skipped(tmp_path, report):
    clean = _volume(1)
    _write_pair(tmp_path, "ok", clean, _noisy_of(clean, 2))
    _write_pair(tmp_path, "shape", clean, _noisy_of(_volume(3, (8, 10, 48)), 4))
    _save(tmp_path / "lonely" / "seismic_w_noise_vol_lonely.npy", _noisy_of(clean, 5), True)
    _save(tmp_path / "orphan" / "seismicCubes_RFC_fullstack_2023.orphan.npy", clean, True)
    flag = tmp_path / "unpickled"
    pickled = _write_pair(tmp_path, "pickled", clean, _noisy_of(clean, 6))
    np.save(pickled.noisy, np.array([_Boom(flag)], dtype=object), allow_pickle=True)
    raw = _write_pair(tmp_path, "raw", clean, _noisy_of(clean, 7))
    raw.clean.write_bytes(pickle.dumps(_Boom(flag)))
    cube = _write_pair(tmp_path, "cube", clean, _noisy_of(clean, 8))
    np.save(cube.clean, np.zeros((9, 9, 9), np.float32))

    pairs = find_pairs(tmp_path, report=report.append)

    assert [p.volume_id for p in pairs] == ["ok"]
    assert not flag.exists(), "a pickle was executed"
    text = "\n".join(report)
    for volume_id, why in [("shape", "shapes differ"), ("lonely", "without a clean partner"),
                           ("orphan", "without a noisy partner"), ("pickled", "pickled files are refused"),
                           ("raw", "pickled files are refused"), ("cube", "not unique")]:
        assert any(volume_id in line and why in line for line in report), (volume_id, why, text)
    assert len(report) == 6


def test_min_ssim_drops_mismatched_pairs(tmp_path, report):
    clean = _volume(1)
    _write_pair(tmp_path, "match", clean, _noisy_of(clean, 2))
    _write_pair(tmp_path, "mismatch", clean, _noisy_of(_volume(9), 3))
    assert [p.volume_id for p in find_pairs(tmp_path)] == ["match", "mismatch"]
    kept = find_pairs(tmp_path, min_ssim=0.7, report=report.append)
    assert [p.volume_id for p in kept] == ["match"]
    assert len(report) == 1 and "mismatch" in report[0] and "below 0.7" in report[0]


def test_duplicate_id_pairs_within_one_folder(tmp_path, report):
    clean = _volume(1)
    _save(tmp_path / "a" / "seismic_w_noise_vol_7.npy", _noisy_of(clean, 2), True)
    pair = _write_pair(tmp_path / "b", "7", clean, _noisy_of(clean, 3))
    pairs = find_pairs(tmp_path, report=report.append)
    assert len(pairs) == 1 and pairs[0] == pair
    assert len(report) == 1 and "ignored" in report[0]


@pytest.mark.parametrize(("layout", "match"), [(None, "data folder not found"), ("empty", "no usable"),
                                               ("bad", "no usable")])
def test_find_pairs_errors(tmp_path, layout, match):
    root = tmp_path / "data"
    if layout:
        root.mkdir()
    if layout == "bad":
        _write_pair(root, "1", _volume(1), _noisy_of(_volume(1, (8, 10, 48)), 2))
    with pytest.raises(DataError, match=match):
        find_pairs(root, report=lambda line: None)


def test_default_report_is_a_logged_warning(tmp_path, caplog):
    clean = _volume(1)
    _write_pair(tmp_path, "ok", clean, _noisy_of(clean, 2))
    _save(tmp_path / "x" / "seismic_w_noise_vol_x.npy", clean, True)
    find_pairs(tmp_path)
    assert any("without a clean partner" in r.message and r.levelname == "WARNING" for r in caplog.records)


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "not found"), ("pickle", "pickled files are refused"), ("object", "pickled files are refused"),
     (np.zeros((4, 5), np.float32), "2 dimension"), (np.zeros((6, 6, 6), np.float32), "not unique"),
     (np.array([["a"] * 3] * 3), "numeric"), (b"\x93NUMPY\x01\x00", "cannot read"), (b"", "cannot read")],
)
def test_load_volume_refusals(tmp_path, content, match):
    path = tmp_path / "v.npy"
    flag = tmp_path / "unpickled"
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "pickle":
        path.write_bytes(pickle.dumps(_Boom(flag)))
    elif content == "object":
        np.save(path, np.array([_Boom(flag), 1], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=match):  # the runtime's .npy reader raises the same class
        load_volume(path)
    assert not flag.exists()


def test_section_score_equals_score_volumes():
    clean = _volume(1, (16, 20, 64))
    noisy = _noisy_of(clean, 2, level=1.0)
    assert section_score(clean, noisy) == pytest.approx(score_volumes(clean, noisy), abs=1e-12)
    time_first = np.moveaxis(noisy, -1, 0)
    assert section_score(clean, np.moveaxis(time_first, 0, -1)) == section_score(clean, noisy)


def test_section_cache_round_trip(tmp_path):
    clean_a, clean_b = _volume(1), _volume(2) * 100
    pairs = [_write_pair(tmp_path / "data", "a", clean_a, _noisy_of(clean_a, 3)),
             _write_pair(tmp_path / "data", "b", clean_b, _noisy_of(clean_b, 4), noisy_time_first=False)]
    path = build_section_cache(pairs, tmp_path / "cache" / "pairs.h5", chunks=(4, 4, 16), progress=False)
    assert sorted(p.name for p in path.parent.iterdir()) == ["pairs.h5"]  # no temporary left behind
    with open_section_cache(path) as cache:
        assert cache.volume_ids == ["a", "b"] and len(cache) == 2
        for cached, pair in zip(cache, pairs):
            noisy, clean = load_pair(pair)
            assert cached.noisy.dtype == np.float16 and cached.noisy.shape == CANON
            assert cached.noisy.chunks == (4, 4, 16) and cached.noisy.compression == "lzf"
            np.testing.assert_array_equal(cached.clean[:, 3, :], clean[:, 3, :].astype(np.float16))
            np.testing.assert_array_equal(cached.noisy[2], noisy[2].astype(np.float16))
            # stats come from the float32 source, not from the float16 copy
            assert cached.noisy_stats == volume_stats(noisy) and cached.clean_stats == volume_stats(clean)
        with pytest.raises(DataError, match="not in the section cache"):
            cache["zzz"]


def test_section_cache_refusals(tmp_path):
    clean = _volume(1)
    pair = _write_pair(tmp_path, "a", clean, _noisy_of(clean, 2))
    path = build_section_cache([pair], tmp_path / "c.h5", progress=False)
    with pytest.raises(OutputError, match="exists"):
        build_section_cache([pair], path, progress=False)
    build_section_cache([pair], path, overwrite=True, progress=False)
    with pytest.raises(DataError, match="share an id"):
        build_section_cache([pair, pair], tmp_path / "d.h5", progress=False)
    assert not (tmp_path / "d.h5").exists() and not list(tmp_path.glob(".d.h5*"))
    loud = _write_pair(tmp_path, "loud", clean * 1e5, _noisy_of(clean, 3))
    with pytest.raises(DataError, match="overflow float16"):
        build_section_cache([loud], tmp_path / "e.h5", progress=False)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match="not a section cache"):
        open_section_cache(tmp_path / "other.h5")
    with pytest.raises(DataError, match="not found"):
        open_section_cache(tmp_path / "missing.h5")


def test_reads_the_synthetic_generators_layout(tmp_path):
    from impeccable.data.synth import write_challenge_layout

    written = write_challenge_layout(tmp_path, 2, shape_tl=(96, 12, 10), seed=3, time_first=True, progress=False)
    pairs = find_pairs(tmp_path, min_ssim=0.7)  # synthetic pairs score 0.8-0.95: none is dropped
    assert [(p.volume_id, p.noisy, p.clean) for p in pairs] == sorted(written)
    noisy, clean = load_pair(pairs[0])
    assert noisy.shape == clean.shape == (12, 10, 96)


def test_section_score_refuses_different_shapes():
    with pytest.raises(DataError, match="differ in shape"):
        section_score(_volume(1), np.moveaxis(_volume(1), -1, 0))


@pytest.mark.parametrize("volume_id", ["12345678", "a.b_c"])
def test_the_writer_and_the_reader_share_the_challenge_names(volume_id):
    assert noisy_name(volume_id) == f"seismic_w_noise_vol_{volume_id}.npy"
    assert clean_name(volume_id) == f"seismicCubes_RFC_fullstack_2023.{volume_id}.npy"
    assert NOISY_PATTERN.match(noisy_name(volume_id))["id"] == volume_id
    assert CLEAN_PATTERN.match(clean_name(volume_id))["id"] == volume_id
    assert not NOISY_PATTERN.match(clean_name(volume_id)) and not CLEAN_PATTERN.match(noisy_name(volume_id))
