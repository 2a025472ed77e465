"""The sample interval, read once per format and carried to the model tiles by every driver (issue 25).

Each reader reports ``sample_interval`` (ms, None when the file does not say) and ``depth``; ``--sample-interval``
overrides it (and is the only source for ``.npy``); data at another interval than the model's are resampled to it
and back; an unknown interval is said once in the run's summary.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from impeccable.runtime.cli import main
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.pipeline import denoise_file
from impeccable.runtime.volumes import open_reader

SHAPE = (5, 20, 150)


def _config(model, **kw) -> DenoiseConfig:
    return DenoiseConfig(model=model, engine="onnxruntime", batch_size=2, progress=False,
                         engine_options={"threads": 1}, **kw)


def test_segy_binary_header_then_trace_header(tmp_path, tiny_volume):
    segyio = pytest.importorskip("segyio")
    from impeccable.runtime.volumes.segy import create_segy

    create_segy(tmp_path / "a.sgy", tiny_volume(SHAPE), dt_us=2000)
    with open_reader(tmp_path / "a.sgy") as reader:
        assert reader.sample_interval == 2.0 and reader.depth is False
    create_segy(tmp_path / "b.sgy", tiny_volume(SHAPE), dt_us=3000)
    with segyio.open(str(tmp_path / "b.sgy"), "r+", ignore_geometry=True) as f:
        f.bin.update(hdt=0)
    with open_reader(tmp_path / "b.sgy") as reader:
        assert reader.sample_interval == 3.0
    with segyio.open(str(tmp_path / "b.sgy"), "r+", ignore_geometry=True) as f:
        for t in range(f.tracecount):
            f.header[t] = {segyio.TraceField.TRACE_SAMPLE_INTERVAL: 0}
    with open_reader(tmp_path / "b.sgy") as reader:
        assert reader.sample_interval is None


def test_hdf5_attributes(tmp_path, tiny_volume):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("v", data=tiny_volume(SHAPE)).attrs["dt"] = 0.002  # seconds
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f.create_dataset("v", data=tiny_volume(SHAPE))
        f.attrs.update({"sample_interval": 8.0, "domain": "depth"})
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("v", data=tiny_volume(SHAPE))
    assert [(r.sample_interval, r.depth) for r in map(open_reader, (tmp_path / n for n in ("a.h5", "b.h5", "c.h5")))
            ] == [(2.0, False), (8.0, True), (None, False)]


def test_zarr_attributes_and_mdio_like_coordinate(tmp_path, tiny_volume):
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=SHAPE, dtype="float32",
                          attributes={"sample_interval_ms": 1.0})
    z[:] = tiny_volume(SHAPE)
    group = zarr.open_group(str(tmp_path / "b.zarr"), mode="w")
    amp = group.create_array("amplitude", shape=SHAPE, dtype="float32",
                             dimension_names=("inline", "crossline", "depth"))
    amp[:] = tiny_volume(SHAPE)
    coordinate = group.create_array("depth", shape=(SHAPE[2],), dtype="float64")
    coordinate[:] = 100.0 + 12.5 * np.arange(SHAPE[2])
    with open_reader(tmp_path / "a.zarr") as a, open_reader(tmp_path / "b.zarr") as b:
        assert (a.sample_interval, a.depth) == (1.0, False) and (b.sample_interval, b.depth) == (12.5, True)


def test_npy_has_none_and_the_unknown_interval_is_said_once(tmp_path, tiny_model_dir, tiny_volume):
    np.save(tmp_path / "in.npy", tiny_volume(SHAPE))
    with open_reader(tmp_path / "in.npy") as reader:
        assert reader.sample_interval is None
    result = CliRunner().invoke(main, [str(tmp_path / "in.npy"), "--model", str(tiny_model_dir), "--engine",
                                       "onnxruntime", "--no-progress", "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert result.output.count("sample interval unknown: run at the model's 4 ms") == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sampling"] == {"data_ms": None, "model_ms": 4.0, "source": "unknown", "resampled": False}


def test_the_option_overrides_the_file_and_reaches_every_driver(tmp_path, tiny_model_dir, tiny_volume, client):
    """A 2 ms SEG-Y is resampled to the model's 4 ms; with --sample-interval 4 it runs as a 4 ms file does."""
    pytest.importorskip("segyio")
    from impeccable.runtime.distributed import run_distributed
    from impeccable.runtime.volumes.segy import create_segy

    vol = tiny_volume(SHAPE, seed=3)
    create_segy(tmp_path / "two.sgy", vol, dt_us=2000)
    create_segy(tmp_path / "four.sgy", vol, dt_us=4000)

    def data(path):
        with open_reader(path) as reader:
            return reader.read()

    two = denoise_file(tmp_path / "two.sgy", tmp_path / "two.out.sgy", _config(tiny_model_dir))
    assert two.sampling == {"data_ms": 2.0, "model_ms": 4.0, "source": "file", "resampled": True}
    denoise_file(tmp_path / "four.sgy", tmp_path / "four.out.sgy", _config(tiny_model_dir))
    forced = denoise_file(tmp_path / "two.sgy", tmp_path / "forced.out.sgy",
                          _config(tiny_model_dir, sample_interval=4.0))
    assert forced.sampling["source"] == "option" and not forced.sampling["resampled"]
    assert np.array_equal(data(tmp_path / "forced.out.sgy"), data(tmp_path / "four.out.sgy"))
    assert not np.array_equal(data(tmp_path / "two.out.sgy"), data(tmp_path / "four.out.sgy"))
    # --cluster and the API carry the interval to the tiles too: the same bytes as one process.
    cluster = run_distributed(tmp_path / "two.sgy", tmp_path / "two.dist.sgy", _config(tiny_model_dir),
                              client=client, slab_sections=2)
    assert cluster.sampling == two.sampling
    assert (tmp_path / "two.dist.sgy").read_bytes() == (tmp_path / "two.out.sgy").read_bytes()
    import impeccable

    np.save(tmp_path / "two.npy", vol)
    denoise_file(tmp_path / "two.npy", tmp_path / "two.out.npy", _config(tiny_model_dir, sample_interval=2.0))
    out = impeccable.denoise(vol, model=tiny_model_dir, engine="onnxruntime", batch_size=2,
                             engine_options={"threads": 1}, sample_interval=2.0)
    assert np.array_equal(out, np.load(tmp_path / "two.out.npy"))
    assert np.allclose(np.load(tmp_path / "two.out.npy"), data(tmp_path / "two.out.sgy"), atol=1e-5 * np.ptp(vol))
