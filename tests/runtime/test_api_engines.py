"""``impeccable.denoise`` on every installed CPU engine: the dask path with both views, several threads sharing
one engine, gives the CLI's output on the same file (issue 26: OpenVINO's request is not reentrant); time-first
arrays, the API's dtype and time-dimension rules, the batch bound and the engine cache."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import impeccable
from impeccable.core.errors import InputError
from impeccable.runtime import api
from impeccable.runtime.cli import main
from impeccable.runtime.engines import default_engine_name, installed

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

SHAPE = (10, 24, 150)  # 150 samples > the 128-sample window: tiled sections
ENGINES = [pytest.param(name, marks=pytest.mark.skipif(not installed(name), reason=f"{name} is not installed"))
           for name in ("openvino", "onnxruntime")] + [None]


def _run_cli(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("engine", ENGINES)
def test_dask_both_views_on_every_engine_equals_the_cli(tmp_path, tiny_model_dir, tiny_volume, engine):
    vol = tiny_volume(SHAPE, seed=21)
    np.save(tmp_path / "in.npy", vol)
    name = engine or default_engine_name(tiny_model_dir)
    _run_cli([str(tmp_path / "in.npy"), "-o", str(tmp_path / "cli.npy"), "--model", str(tiny_model_dir),
              "--engine", name, "--views", "both", "--batch-size", "2", "--no-progress"])
    ref = np.load(tmp_path / "cli.npy")
    kw = {"model": tiny_model_dir, "engine": engine, "views": "both", "batch_size": 2}
    # Four threads, one engine: without one call at a time OpenVINO raised "Infer Request is busy" or hung.
    with dask.config.set(scheduler="threads", num_workers=4):
        lazy = impeccable.denoise(da.from_array(vol, chunks=(3, 8, 150)), **kw)
        assert np.array_equal(lazy.compute(), ref)
        xr = pytest.importorskip("xarray")
        array = xr.DataArray(vol, dims=("inline", "crossline", "twt")).chunk({"inline": 3})
        assert np.array_equal(impeccable.denoise(array, **kw).values, ref)


def test_time_first_numpy_and_dask_equal_the_cli_on_the_same_file(tmp_path, tiny_model_dir, tiny_volume):
    stored = np.moveaxis(tiny_volume(SHAPE, seed=22), -1, 0)  # (sample, inline, crossline), as impeccable-synth
    np.save(tmp_path / "t.npy", stored)
    _run_cli([str(tmp_path / "t.npy"), "-o", str(tmp_path / "cli.npy"), "--model", str(tiny_model_dir),
              "--engine", "onnxruntime", "--batch-size", "2", "--no-progress"])
    ref = np.load(tmp_path / "cli.npy")
    kw = {"model": tiny_model_dir, "engine": "onnxruntime", "batch_size": 2}
    out = impeccable.denoise(stored, **kw)
    assert out.shape == stored.shape and np.array_equal(out, ref)
    assert np.array_equal(impeccable.denoise(stored, time_axis=0, **kw), ref)
    lazy = impeccable.denoise(da.from_array(stored, chunks=(150, 4, 24)), **kw)
    assert lazy.shape == stored.shape and np.array_equal(lazy.compute(), ref)


def test_an_unnamed_time_dimension_is_the_longest_as_in_zarr(tmp_path, tiny_model_dir, tiny_volume):
    xr = pytest.importorskip("xarray")
    vol = tiny_volume(SHAPE, seed=23)
    kw = {"model": tiny_model_dir, "engine": "onnxruntime", "batch_size": 2}
    ref = impeccable.denoise(vol, **kw)
    array = xr.DataArray(np.moveaxis(vol, -1, 0), dims=("twt_ms", "il", "xl"))  # time first, unknown name
    assert np.array_equal(np.moveaxis(impeccable.denoise(array, **kw).values, 0, -1), ref)
    assert np.array_equal(np.moveaxis(impeccable.denoise(array, time_axis="twt_ms", **kw).values, 0, -1), ref)


@pytest.mark.parametrize("volume, options, match", [
    (np.zeros((20, 20, 20), np.float32), {}, "cannot tell the time axis"),
    (np.zeros((3, 4, 50), np.complex64), {}, "not a 3-D numeric volume"),
    (np.zeros((3, 4, 50), bool), {}, "not a 3-D numeric volume"),
    (np.zeros((3, 4, 50), np.float32), {"time_axis": 1}, "time axis out of range"),
])
def test_numpy_and_dask_refuse_alike(tiny_model_dir, volume, options, match):
    for candidate in (volume, da.from_array(volume)):
        with pytest.raises(InputError, match=match):
            impeccable.denoise(candidate, model=tiny_model_dir, engine="onnxruntime", **options)


def test_dataarray_with_no_time_name_and_no_longest_dimension_is_refused(tiny_model_dir):
    xr = pytest.importorskip("xarray")
    array = xr.DataArray(np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32), dims=("a", "b", "c"))
    with pytest.raises(InputError, match="cannot tell the DataArray's time dimension"):
        impeccable.denoise(array, model=tiny_model_dir, engine="onnxruntime")


def test_the_batch_is_bounded_as_the_cli_and_engines_are_cached_and_closed(tiny_model_dir, tiny_volume, monkeypatch):
    import impeccable.runtime.memory as memory

    seen = []
    real = api.predict_volume
    monkeypatch.setattr(api, "predict_volume", lambda r, e, s, config, *rest: seen.append(config.batch_size)
                        or real(r, e, s, config, *rest))
    monkeypatch.setattr(memory, "memory_budget", lambda: 1)  # room for one window per call
    vol = tiny_volume(SHAPE, seed=24)
    api.close_engines()
    impeccable.denoise(vol, model=tiny_model_dir, engine="onnxruntime", batch_size=64)
    assert seen == [1]
    (engine,) = api.ENGINE_CACHE.engines.values()
    assert not engine.closed  # kept warm for the next call with the same recipe
    impeccable.denoise(vol, model=tiny_model_dir, engine="onnxruntime", batch_size=64, tta=False)
    assert engine.closed and len(api.ENGINE_CACHE.engines) == 1  # another recipe: the idle one closed
    api.close_engines()
    assert not api.ENGINE_CACHE.engines
