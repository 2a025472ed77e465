"""Zarr volumes in the single-process pipeline: same output as the .npy path, refusals, overwrite."""

from __future__ import annotations

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from impeccable.core.errors import InputError, OutputError  # noqa: E402
from impeccable.runtime.config import DenoiseConfig  # noqa: E402
from impeccable.runtime.pipeline import denoise_file  # noqa: E402
from impeccable.runtime.volumes import open_reader  # noqa: E402
from impeccable.runtime.volumes.zarr import section_chunks  # noqa: E402


def _config(model, **kw):
    return DenoiseConfig(model=model, engine="onnxruntime", batch_size=2, progress=False,
                         engine_options={"threads": 1}, **kw)


def test_plain_array_matches_npy(tmp_path, tiny_model_dir, noisy_volume):
    store = tmp_path / "in.zarr"
    zarr.create_array(str(store), data=noisy_volume, chunks=(2, 40, 150))
    np.save(tmp_path / "in.npy", noisy_volume)
    denoise_file(store, tmp_path / "out.zarr", _config(tiny_model_dir))
    denoise_file(tmp_path / "in.npy", tmp_path / "out.npy", _config(tiny_model_dir))
    out = zarr.open_array(str(tmp_path / "out.zarr"))
    assert out.chunks == (2, 40, 150) and np.array_equal(np.asarray(out[:]), np.load(tmp_path / "out.npy"))
    with pytest.raises(OutputError, match="output exists"):
        denoise_file(store, tmp_path / "out.zarr", _config(tiny_model_dir))
    denoise_file(store, tmp_path / "out.zarr", _config(tiny_model_dir, scale="unit", overwrite=True))
    assert float(np.asarray(zarr.open_array(str(tmp_path / "out.zarr"))[:]).max()) <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "in.zarr", "out.npy", "out.zarr"]


def test_reader_reads_time_first_by_dimension_name(tmp_path, noisy_volume):
    store = tmp_path / "t.zarr"
    zarr.create_array(str(store), data=np.moveaxis(noisy_volume, -1, 0), dimension_names=("time", "il", "xl"))
    reader = open_reader(store)
    assert reader.shape == noisy_volume.shape and reader.time_axis == 0
    assert np.array_equal(reader.read(inlines=slice(2, 4), crosslines=slice(5, 9)), noisy_volume[2:4, 5:9])


def test_refusals(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a", shape=(4, 5, 6), dtype="float32")
    group.create_array("b", shape=(4, 5, 6), dtype="float32")
    with pytest.raises(InputError, match="cannot tell which Zarr array is the volume"):
        open_reader(tmp_path / "g.zarr")
    with pytest.raises(InputError, match="Zarr dataset not found"):
        open_reader(tmp_path / "g.zarr", dataset="c")
    with pytest.raises(InputError, match="input file not found"):
        open_reader(tmp_path / "missing.zarr")


def test_section_chunks_hold_whole_sections():
    assert section_chunks((100, 30, 50), (8, 10, 25)) == (8, 30, 50)
    assert section_chunks((3, 30, 50), (8, 10, 25)) == (3, 30, 50)
