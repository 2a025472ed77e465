"""``.npy`` reader and writer: canonical views, refusals (never unpickling), atomic writes, bounded RSS."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from impeccable.core.errors import InputError
from impeccable.runtime.volumes.npy import NpyReader, NpyWriter, release_pages
from impeccable.runtime.volumes import open_reader, open_writer


@pytest.mark.parametrize("time_first", [False, True])
def test_reader_views_either_orientation_canonically(tmp_path, tiny_volume, time_first):
    vol = tiny_volume((5, 7, 30))
    np.save(tmp_path / "v.npy", np.moveaxis(vol, -1, 0) if time_first else vol)
    reader = open_reader(tmp_path / "v.npy")
    assert isinstance(reader, NpyReader)
    assert reader.shape == (5, 7, 30) and reader.time_axis == (0 if time_first else 2)
    np.testing.assert_array_equal(reader.read(), vol)
    block = reader.read(inlines=slice(1, 3))
    assert block.dtype == np.float32 and block.flags.c_contiguous
    np.testing.assert_array_equal(block, vol[1:3])
    np.testing.assert_array_equal(reader.read(crosslines=slice(2, 5)), vol[:, 2:5])
    reader.close()


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8, np.float64, np.float16, ">f4"])
def test_integer_and_other_real_dtypes_read_as_float32(tmp_path, dtype):
    stored = (np.arange(4 * 5 * 12) % 97).reshape(4, 5, 12).astype(dtype)
    np.save(tmp_path / "v.npy", stored)
    reader = NpyReader(tmp_path / "v.npy")
    assert reader.dtype == np.dtype(dtype)
    block = reader.read()
    assert block.dtype == np.float32
    np.testing.assert_array_equal(block, stored.astype(np.float32))


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        np.save(path, data, allow_pickle=True)
    return path


class Exploding:
    """Unpickling this would run code: the reader must refuse before it ever gets there."""

    def __reduce__(self):
        return (sys.exit, ("unpickled!",))


def _truncated(keep: int) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros((10, 10, 20), np.float32))
    return buf.getvalue()[:keep]


BAD_FILES = [
    ("object array", np.array([Exploding(), 1], dtype=object), "pickled/object arrays are refused"),
    ("raw pickle", pickle.dumps({"a": Exploding()}), "truncated or unreadable|pickled"),
    ("truncated data", _truncated(1000), "truncated"),
    ("truncated header", _truncated(50), "truncated"),
    ("empty file", b"", "truncated"),
    ("1-D", np.zeros(10, np.float32), "1 dimension"),
    ("2-D", np.zeros((10, 12), np.float32), "2 dimension"),
    ("4-D", np.zeros((2, 3, 4, 5), np.float32), "4 dimension"),
    ("complex", np.zeros((3, 4, 9), np.complex64), "real numbers"),
    ("bool", np.zeros((3, 4, 9), bool), "real numbers"),
    ("structured", np.zeros((3, 4, 9), dtype=[("a", "f4")]), "real numbers"),
    ("ambiguous time axis", np.zeros((9, 4, 9), np.float32), "time axis"),
]


@pytest.mark.parametrize(("case", "data", "match"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_are_refused(tmp_path, case, data, match):
    path = _write(tmp_path, "bad.npy", data)
    with pytest.raises(InputError, match=match) as info:
        NpyReader(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("time_first", [False, True])
def test_writer_writes_the_stored_orientation_and_commits_atomically(tmp_path, tiny_volume, time_first):
    vol = tiny_volume((4, 6, 20))
    stored = np.moveaxis(vol, -1, 0) if time_first else vol
    np.save(tmp_path / "in.npy", stored)
    reader = NpyReader(tmp_path / "in.npy")
    out = tmp_path / "out.npy"
    writer = open_writer(out, like=reader)
    for start in range(0, 4, 3):
        writer.write(slice(start, start + 3), vol[start:start + 3] * 2)
        assert not out.exists()
    writer.commit()
    np.testing.assert_array_equal(np.load(out), stored * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]


def test_writer_abort_leaves_nothing_and_keeps_an_existing_output(tmp_path, tiny_volume):
    np.save(tmp_path / "in.npy", tiny_volume((4, 6, 20)))
    np.save(tmp_path / "out.npy", np.ones(3))
    writer = NpyWriter(tmp_path / "out.npy", like=NpyReader(tmp_path / "in.npy"), dtype=np.dtype(np.uint8))
    writer.write(slice(0, 1), np.zeros((1, 6, 20), np.uint8))
    writer.abort()
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise RuntimeError("no RssFile")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_reads_do_not_keep_the_mapped_file_resident(tmp_path):
    # 64 MB file read block by block: without dropping the pages the whole file would stay in RSS.
    np.save(tmp_path / "big.npy", np.ones((64, 256, 1024), np.float32))
    reader = NpyReader(tmp_path / "big.npy")
    before = _rss_file_kb()
    peak = 0
    for start in range(0, 64, 4):
        reader.read(inlines=slice(start, start + 4))
        peak = max(peak, _rss_file_kb() - before)
    assert peak < 16 * 1024, f"mapped pages kept resident: {peak / 1024:.0f} MB"
    release_pages(np.zeros(3))  # not a memmap: a no-op


@pytest.mark.parametrize("time_axis", [0, 1, 2])
@pytest.mark.parametrize("index", [
    (slice(None), slice(None), slice(None)),
    (slice(2, 7), slice(None), slice(None)),
    (slice(None), slice(1, 4), slice(None)),
    (slice(None, None, -1), slice(5, 0, -2), slice(3, 9)),
    (slice(6, 2, -1), slice(None), slice(None, None, 3)),
])
def test_mapped_volume_copies_in_chunks_exactly(tmp_path, time_axis, index):
    from impeccable.runtime.volumes.npy import MappedVolume

    canonical = np.arange(8 * 6 * 10, dtype=np.float32).reshape(8, 6, 10)
    stored = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32,
                                       shape=np.moveaxis(canonical, -1, time_axis).shape)
    stored[:] = np.moveaxis(canonical, -1, time_axis)
    mapped = MappedVolume(stored, time_axis)
    mapped.per_run = 1  # a page release after every slice of the stored outer axis
    assert mapped.shape == canonical.shape
    block = mapped.read(index)
    assert block.flags.c_contiguous
    np.testing.assert_array_equal(block, canonical[index])
    mapped.write(index, -block)
    expected = canonical.copy()
    expected[index] = -canonical[index]
    np.testing.assert_array_equal(np.moveaxis(np.asarray(stored), time_axis, -1), expected)
