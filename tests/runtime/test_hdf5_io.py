"""HDF5 volumes: dataset selection, orientation, lazy reads, chunked atomic writes with attributes."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from impeccable.core.errors import InputError, OutputError  # noqa: E402
from impeccable.runtime.volumes.hdf5 import CHUNK_BYTES, Hdf5Reader, Hdf5Writer, section_chunks  # noqa: E402
from impeccable.runtime.volumes import open_reader, open_writer  # noqa: E402
from fake_engines import MixingEngine  # noqa: E402

SHAPE = (6, 9, 40)  # (inline, crossline, sample)


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return np.random.default_rng(5).standard_normal(SHAPE).astype(np.float32)


def _h5(path, datasets: dict, attrs: dict | None = None, root_attrs: dict | None = None):
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            ds = f.create_dataset(name, data=data)
            for key, value in (attrs or {}).items():
                ds.attrs[key] = value
        f.attrs.update(root_attrs or {})
    return path


@pytest.mark.parametrize("time_axis, stored", [(2, lambda v: v), (0, lambda v: np.moveaxis(v, -1, 0)),
                                                ("auto", lambda v: np.moveaxis(v, -1, 0)), ("auto", lambda v: v)])
def test_reads_canonical_in_either_orientation(tmp_path, volume, time_axis, stored):
    path = _h5(tmp_path / "v.h5", {"seismic": stored(volume), "coords": np.zeros((6, 9))})
    with Hdf5Reader(path, time_axis=time_axis) as reader:
        assert reader.shape == SHAPE and reader.dataset_name == "/seismic"
        np.testing.assert_array_equal(reader.read(), volume)
        for inlines, crosslines in [(slice(1, 4), slice(None)), (slice(None), slice(2, 5)),
                                    (slice(None, None, -2), slice(7, 0, -3)), (slice(2, 2), slice(None))]:
            np.testing.assert_array_equal(reader.read(inlines, crosslines), volume[inlines, crosslines])


def test_integer_samples_read_as_float32(tmp_path, volume):
    ints = (volume * 100).astype(np.int16)
    with Hdf5Reader(_h5(tmp_path / "v.h5", {"v": ints})) as reader:
        assert reader.dtype == np.int16
        block = reader.read()
    assert block.dtype == np.float32
    np.testing.assert_array_equal(block, ints.astype(np.float32))


def test_dataset_by_path(tmp_path, volume):
    path = _h5(tmp_path / "v.h5", {"a/noisy": volume, "a/clean": volume * 2})
    with open_reader(path, dataset="a/clean") as reader:
        assert isinstance(reader, Hdf5Reader) and reader.dataset_name == "/a/clean"
        np.testing.assert_array_equal(reader.read(), volume * 2)
    with open_reader(path, dataset="/a/noisy") as reader:
        np.testing.assert_array_equal(reader.read(), volume)


@pytest.mark.parametrize("datasets, dataset, match", [
    ({"a/noisy": np.zeros((2, 3, 4)), "clean": np.zeros((2, 3, 4))}, None,
     r"^2 3-D datasets in v.h5 \| received /a/noisy, /clean \| expected one, or --dataset naming which"),
    ({"map": np.zeros((3, 4)), "trace": np.zeros(5)}, None,
     r"^no 3-D dataset in v.h5 \| received datasets /map \(3, 4\), /trace \(5,\)"),
    ({}, None, r"^no 3-D dataset in v.h5 \| received datasets none"),
    ({"vol": np.zeros((2, 3, 4))}, "other", r"^dataset other in v.h5 is missing \| received 3-D datasets: /vol"),
    ({"g/vol": np.zeros((2, 3, 4))}, "g", r"^dataset g in v.h5 is a group \| received 3-D datasets: /g/vol"),
    ({"vol": np.zeros((2, 3, 4)), "map": np.zeros((3, 4))}, "map", r"^dataset /map has 2 dimension\(s\)"),
    ({"vol": np.zeros((2, 3, 3))}, None, r"^cannot tell the time axis"),
    ({"vol": np.zeros((0, 3, 4))}, None, r"^dataset /vol is empty"),
    ({"vol": np.array([[[b"a"]]])}, None, r"^dataset /vol does not hold real numbers"),
])
def test_dataset_selection_errors(tmp_path, datasets, dataset, match):
    path = _h5(tmp_path / "v.h5", datasets)
    with pytest.raises(InputError, match=match) as info:
        Hdf5Reader(path, dataset=dataset)
    assert "\n" not in str(info.value)


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "v.h5"
    path.write_bytes(b"not hdf5" * 100)
    with pytest.raises(InputError, match=r"^cannot read v.h5 as HDF5"):
        Hdf5Reader(path)


def _write_all(reader, path, values, step=4, dtype=np.float32):
    writer = open_writer(path, like=reader, dtype=dtype)
    assert isinstance(writer, Hdf5Writer)
    for start in range(0, values.shape[0], step):
        writer.write(slice(start, start + step), values[start:start + step])
    writer.commit()


@pytest.mark.parametrize("time_first", [False, True])
def test_round_trip_keeps_name_orientation_and_attributes(tmp_path, volume, time_first):
    stored = np.moveaxis(volume, -1, 0) if time_first else volume
    attrs = {"units": "m/s", "dt_ms": 4.0, "origin": np.array([1, 2, 3], dtype=np.int32), "label": b"raw"}
    src = _h5(tmp_path / "in.h5", {"survey/amplitude": stored, "survey/xy": np.zeros((6, 9))}, attrs=attrs,
              root_attrs={"project": "north"})
    out = tmp_path / "out.h5"
    with Hdf5Reader(src, time_axis=0 if time_first else 2, dataset="survey/amplitude") as reader:
        _write_all(reader, out, volume * 3)
    with h5py.File(out, "r") as f, h5py.File(src, "r") as g:
        ds, original = f["survey/amplitude"], g["survey/amplitude"]
        assert ds.shape == stored.shape and ds.dtype == np.float32
        np.testing.assert_array_equal(ds[()], stored * 3)
        assert set(ds.attrs) == set(attrs) and f.attrs["project"] == "north"
        for key in attrs:  # same values and same stored types
            np.testing.assert_array_equal(ds.attrs[key], original.attrs[key])
            assert ds.attrs.get_id(key).dtype == original.attrs.get_id(key).dtype
        assert ds.attrs["origin"].dtype == np.int32
        assert ds.chunks is not None
    with Hdf5Reader(out) as again:
        np.testing.assert_array_equal(again.read(), volume * 3)


def test_dimension_scales_are_not_copied(tmp_path, volume):
    """References into the input file (HDF5 dimension scales) cannot live in the output: skipped, not fatal."""
    path = tmp_path / "in.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("v", data=volume)
        ds.attrs["units"] = "ms"
        f["inline"] = np.arange(SHAPE[0])
        f["inline"].make_scale("inline")
        ds.dims[0].attach_scale(f["inline"])
    with Hdf5Reader(path) as reader:
        _write_all(reader, tmp_path / "out.h5", volume)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert set(f["v"].attrs) == {"units"}


def test_chunks_follow_sections_and_stay_near_a_megabyte():
    assert section_chunks((300, 300, 1259), 4) == (1, 150, 1259)
    assert section_chunks((1000, 1000, 1500), 4) == (1, 167, 1500)
    assert section_chunks((10, 20, 30), 4) == (10, 20, 30)
    for shape, itemsize in [((300, 300, 1259), 4), ((1000, 1000, 1500), 4), ((64, 50, 3000), 1), ((5, 7, 900000), 4)]:
        chunk = section_chunks(shape, itemsize)
        assert all(1 <= c <= n for c, n in zip(chunk, shape))
        assert np.prod(chunk) * itemsize <= CHUNK_BYTES


def test_written_chunks_in_stored_order(tmp_path):
    vol = np.zeros((20, 300, 1259), np.float32)
    with Hdf5Reader(_h5(tmp_path / "in.h5", {"v": np.moveaxis(vol, -1, 0)})) as reader:
        assert reader.time_axis == 0
        writer = Hdf5Writer(tmp_path / "out.h5", like=reader)
        assert writer._dataset.chunks == (1259, 1, 150)  # (sample, inline, crossline) like the input
        writer.abort()


def test_uint8_output(tmp_path, volume):
    values = (np.arange(np.prod(SHAPE)) % 256).reshape(SHAPE).astype(np.uint8)
    with Hdf5Reader(_h5(tmp_path / "in.h5", {"v": volume})) as reader:
        _write_all(reader, tmp_path / "out.h5", values, dtype=np.uint8)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["v"].dtype == np.uint8
        np.testing.assert_array_equal(f["v"][()], values)


def test_abort_and_incomplete_commit_leave_nothing(tmp_path, volume):
    with Hdf5Reader(_h5(tmp_path / "in.h5", {"v": volume})) as reader:
        writer = Hdf5Writer(tmp_path / "out.h5", like=reader)
        writer.write(slice(0, 2), volume[:2])
        writer.abort()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]

        writer = Hdf5Writer(tmp_path / "out.h5", like=reader)
        writer.write(slice(0, 2), volume[:2])
        with pytest.raises(OutputError, match="HDF5 output incomplete"):
            writer.commit()
        writer = Hdf5Writer(tmp_path / "out.h5", like=reader)
        with pytest.raises(OutputError, match="block does not fit"):
            writer.write(slice(0, 2), volume[:1])
        writer.abort()
    with pytest.raises(OutputError, match="needs an HDF5 input"):
        Hdf5Writer(tmp_path / "out.h5", like=object())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]


FakeEngine = MixingEngine


@pytest.mark.parametrize("time_first", [False, True])
def test_hdf5_denoised_equals_the_npy_path(tmp_path, volume, time_first):
    pipeline = pytest.importorskip("impeccable.runtime.pipeline")
    from impeccable.runtime.config import DenoiseConfig

    stored = np.moveaxis(volume, -1, 0) if time_first else volume
    np.save(tmp_path / "in.npy", stored)
    _h5(tmp_path / "in.h5", {"data/vol": stored, "data/map": np.zeros((3, 3))}, attrs={"units": "ms"})
    config = DenoiseConfig(views="both", batch_size=2, progress=False, time_axis=0 if time_first else 2)
    pipeline.denoise_file(tmp_path / "in.npy", tmp_path / "out.npy", config, engine=FakeEngine())
    pipeline.denoise_file(tmp_path / "in.h5", tmp_path / "out.h5", config, engine=FakeEngine())
    expected = np.load(tmp_path / "out.npy")
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["data/vol"].attrs["units"] == "ms"
        got = f["data/vol"][()]
    assert not np.allclose(expected, stored)
    np.testing.assert_array_equal(got, expected)
    assert {p.name for p in tmp_path.iterdir()} == {"in.npy", "in.h5", "out.npy", "out.h5"}
