"""Sections, normalization, padding, crops, the split by volume, the synthetic cache."""

from __future__ import annotations

import numpy as np
import pytest

from impeccable.core.errors import InputError
from impeccable.train import dataset as ds


def test_sections_are_scaled_with_whole_volume_statistics(volumes):
    noisy_vol, clean_vol = volumes.arrays(0)
    noisy, clean = volumes.section(0, ds.CROSSLINE, 5)
    assert noisy.shape == clean.shape == (24, 256)
    np.testing.assert_allclose(noisy, (noisy_vol[:, 5, :] - noisy_vol.min()) / np.ptp(noisy_vol), atol=1e-6)
    np.testing.assert_allclose(clean, (clean_vol[:, 5, :] - clean_vol.min()) / np.ptp(clean_vol), atol=1e-6)
    # Per volume, not per section: one section rarely spans the volume's whole range.
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_window_padding_flip_and_crop():
    rng = np.random.default_rng(0)
    noisy = rng.random((24, 200), dtype=np.float32)
    clean = noisy * 0.5
    x, y = ds.place_in_window(noisy, clean, (64, 256), rng, flip=False)
    assert x.shape == y.shape == (1, 64, 256)
    np.testing.assert_array_equal(x[0, :24, :200], noisy)  # the seed's x[:rows, :cols] = section
    assert not x[0, 24:].any() and not x[0, :, 200:].any()
    flips = set()
    for seed in range(20):
        x, _ = ds.place_in_window(noisy, clean, (64, 256), np.random.default_rng(seed))
        flipped = np.array_equal(x[0, :24, :200], noisy[::-1])
        assert flipped or np.array_equal(x[0, :24, :200], noisy)
        flips.add(flipped)
    assert flips == {True, False}
    for seed in range(50):
        x, y = ds.place_in_window(noisy, clean, (64, 256), np.random.default_rng(seed), crop=(32, 128))
        assert x.shape == (1, 32, 128)
        valid = np.count_nonzero(x[0].any(axis=1))
        assert valid >= 16  # at least half the crop's traces hold data
        np.testing.assert_allclose(y, x * 0.5)


def test_sections_larger_than_the_window_are_cropped_to_it():
    big = np.arange(100 * 300, dtype=np.float32).reshape(100, 300)
    x, _ = ds.place_in_window(big, big, (64, 256), np.random.default_rng(1), flip=False)
    assert x.shape == (1, 64, 256) and x.all()


def test_split_is_by_volume(volumes):
    train, val = ds.split_volumes(len(volumes), 1, seed=3)
    assert sorted(train + val) == [0, 1, 2, 3] and not set(train) & set(val)
    refs = ds.section_refs(volumes, train, stride=5)
    assert {r.volume for r in refs} == set(train)
    assert {r.axis for r in refs} == {ds.INLINE, ds.CROSSLINE}
    assert len(refs) == len(train) * 2 * len(range(0, 24, 5))
    with pytest.raises(InputError, match="no volume left for training"):
        ds.split_volumes(2, 2, seed=0)


def test_epoch_keys_are_deterministic_and_shard_without_overlap():
    keys = ds.epoch_keys(n_sections=7, steps=5, global_batch=4, seed=1, epoch=2)
    assert keys == ds.epoch_keys(7, 5, 4, 1, 2) and keys != ds.epoch_keys(7, 5, 4, 1, 3)
    assert len(keys) == 20 and set(k[0] for k in keys) == set(range(7))
    shards = [ds.process_keys(keys, 0, batch=2, rank=r, world=2) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == sorted(keys)
    assert ds.process_keys(keys, 3, batch=4, rank=0, world=1) == keys[12:]


def test_dataset_item(volumes):
    refs = ds.section_refs(volumes, [0, 1], stride=6)
    data = ds.SectionDataset(volumes, refs, (64, 256), crop=(32, 128))
    x, y = data[(3, 12345)]
    assert x.shape == y.shape == (1, 32, 128)
    x2, _ = data[(3, 12345)]
    assert (x == x2).all()


def test_clean_fraction_feeds_the_clean_section_as_input(volumes):
    refs = ds.section_refs(volumes, [0, 1], stride=6)
    plain = ds.SectionDataset(volumes, refs, (64, 256), crop=(32, 128))
    keys = [(k % len(refs), 1000 + k) for k in range(40)]
    identity = [bool((x == y).all()) for x, y in (plain[k] for k in keys)]
    assert not any(identity)  # the fixture's noisy sections differ from the clean ones
    half = ds.SectionDataset(volumes, refs, (64, 256), crop=(32, 128), clean_fraction=0.5)
    items = [half[k] for k in keys]
    identity = [bool((x == y).all()) for x, y in items]
    assert 8 <= sum(identity) <= 32  # about half, decided per key
    all_clean = ds.SectionDataset(volumes, refs, (64, 256), crop=(32, 128), clean_fraction=1.0)
    assert all(bool((x == y).all()) for x, y in (all_clean[k] for k in keys))
    assert all((all_clean[k][0] == half[k][0]).all() for k, same in zip(keys, identity) if same)


def test_synthetic_cache_is_written_once(tmp_path, fake_synth):
    sources = ds.synthetic_sources(2, (256, 24, 16), seed=5, cache_dir=tmp_path, progress=False)
    noisy, clean = sources[1].open()
    assert noisy.shape == clean.shape == (24, 16, 256) and isinstance(noisy, np.memmap)
    stamp = sources[1].noisy_path.stat().st_mtime_ns
    again = ds.synthetic_sources(3, (256, 24, 16), seed=5, cache_dir=tmp_path, progress=False)
    assert again[1].noisy_path == sources[1].noisy_path and again[1].noisy_path.stat().st_mtime_ns == stamp
    assert len(list(tmp_path.glob("*.npy"))) == 6


def test_statistics_are_cached(tmp_path, fake_synth):
    sources = ds.synthetic_sources(2, (256, 24, 16), seed=5, cache_dir=tmp_path, progress=False)
    cache = tmp_path / "stats.json"
    first = ds.pair_stats(sources, cache, progress=False)

    class Unopenable(ds.NpyPair):
        def open(self):
            raise AssertionError("statistics should come from the cache")

    second = ds.pair_stats([Unopenable(s.volume_id, s.noisy_path, s.clean_path) for s in sources], cache,
                           progress=False)
    assert first == second and first[0][0].vmin < first[0][0].vmax


def test_hdf5_section_cache_source(tmp_path, pair_factory):
    from impeccable.data.challenge import build_section_cache, find_pairs

    for i in range(2):
        clean, noisy = pair_factory(i)
        folder = tmp_path / "data" / f"{i}"
        folder.mkdir(parents=True)
        np.save(folder / f"seismic_w_noise_vol_{i}.npy", np.moveaxis(noisy, -1, 0))  # stored time first
        np.save(folder / f"seismicCubes_RFC_fullstack_2023.{i}.npy", clean)
    cache = build_section_cache(find_pairs(tmp_path / "data"), tmp_path / "cache.h5", progress=False)
    from_files = ds.VolumeSet(*_with_stats(ds.challenge_sources(tmp_path / "data")))
    from_cache = ds.VolumeSet(*_with_stats(ds.challenge_sources(cache)))
    assert from_files.ids == from_cache.ids == ["0", "1"]
    a, b = from_files.section(1, ds.INLINE, 3), from_cache.section(1, ds.INLINE, 3)
    np.testing.assert_allclose(a[0], b[0], atol=2e-3)  # float16 cache
    np.testing.assert_allclose(a[1], b[1], atol=2e-3)


def _with_stats(sources):
    return sources, ds.pair_stats(sources, progress=False)


def test_synthetic_family_is_part_of_the_cache_key(tmp_path, fake_synth):
    from impeccable.data.synth_b import synthesize_pair_b

    a = ds.synthetic_sources(2, (64, 12, 10), seed=5, cache_dir=tmp_path, progress=False)
    b = ds.synthetic_sources(2, (64, 12, 10), seed=5, cache_dir=tmp_path, progress=False, family="b")
    mix = ds.synthetic_sources(2, (64, 12, 10), seed=5, cache_dir=tmp_path, progress=False, family="mix")
    assert {s.noisy_path for s in a}.isdisjoint(s.noisy_path for s in b)  # an A cache is never reused as B
    assert [s.noisy_path for s in mix] == [a[0].noisy_path, b[1].noisy_path]
    noisy, clean = b[1].open()
    want_clean, want_noisy = synthesize_pair_b(ds.synthetic_seeds(5, 2)[1], (12, 10, 64))
    np.testing.assert_array_equal(clean, want_clean)
    np.testing.assert_array_equal(noisy, want_noisy)
    assert len(list(tmp_path.glob("*.npy"))) == 8
    with pytest.raises(InputError, match="unknown synthetic family"):
        ds.synthetic_sources(1, (64, 12, 10), seed=5, cache_dir=tmp_path, progress=False, family="c")


def test_section_gain_balances_input_and_target_alike(volumes):
    from impeccable.core.section_gain import SectionGain

    refs = ds.section_refs(volumes, [0, 1], stride=6)
    kwargs = dict(crop=None, flip=False, scaling="robust")
    plain = ds.SectionDataset(volumes, refs, (64, 256), **kwargs)
    gained = ds.SectionDataset(volumes, refs, (64, 256), section_gain=SectionGain(window=31), **kwargs)
    changed = 0
    for key in [(k % len(refs), 77 + k) for k in range(6)]:
        (x0, y0), (x1, y1) = plain[key], gained[key]
        x0, y0, x1, y1 = (t.numpy()[0] for t in (x0, y0, x1, y1))
        data = x0 != 0.5  # the padding (the zero level) is left as it is
        ratio_x = (x0[data] - 0.5) / np.where(x1[data] == 0.5, np.nan, x1[data] - 0.5)
        ratio_y = (y0[data] - 0.5) / np.where(y1[data] == 0.5, np.nan, y1[data] - 0.5)
        unclipped = (np.abs(x0[data] - 0.5) < 1.9) & (np.abs(x0[data] - 0.5) > 1e-2) & (np.abs(y0[data] - 0.5) > 1e-2)
        # one gain per sample divides input and target (the unclipped input), so their ratios agree
        np.testing.assert_allclose(ratio_x[unclipped], ratio_y[unclipped], rtol=1e-3)
        changed += not np.allclose(x0, x1)
    assert changed  # the gain did something
