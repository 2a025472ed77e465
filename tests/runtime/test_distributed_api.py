"""``impeccable.denoise``: numpy, xarray and dask volumes give what ``denoise_file`` writes, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import impeccable
from impeccable.core.errors import InputError
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.pipeline import denoise_file

SHAPE = (11, 40, 150)


@pytest.fixture(scope="module")
def case(tmp_path_factory, tiny_model_dir, tiny_volume):
    """The volume (NaN present) and denoise_file's output for views inline and both."""
    tmp = tmp_path_factory.mktemp("api")
    vol = tiny_volume(SHAPE, seed=8)
    vol[4, 3, 60] = np.nan
    np.save(tmp / "in.npy", vol)
    refs = {}
    for views in ("inline", "both"):
        config = DenoiseConfig(model=tiny_model_dir, engine="onnxruntime", views=views, batch_size=2,
                               progress=False, engine_options={"threads": 1})
        denoise_file(tmp / "in.npy", tmp / f"{views}.npy", config)
        refs[views] = np.load(tmp / f"{views}.npy")
    return vol, refs


def _kw(model, views):
    return {"model": model, "engine": "onnxruntime", "views": views, "batch_size": 2, "engine_options": {"threads": 1}}


@pytest.mark.parametrize("views", ["inline", "both"])
def test_numpy(case, tiny_model_dir, views):
    vol, refs = case
    out = impeccable.denoise(vol, **_kw(tiny_model_dir, views))
    assert isinstance(out, np.ndarray) and np.array_equal(out, refs[views])


@pytest.mark.parametrize("views", ["inline", "both"])
def test_dask_is_lazy_and_equal(case, tiny_model_dir, views):
    da = pytest.importorskip("dask.array")
    vol, refs = case
    out = impeccable.denoise(da.from_array(vol, chunks=(4, 16, 100)), **_kw(tiny_model_dir, views))
    assert isinstance(out, da.Array) and out.shape == vol.shape
    assert np.array_equal(out.compute(), refs[views])


def test_xarray_keeps_dims_coords_attrs(case, tiny_model_dir):
    xr = pytest.importorskip("xarray")
    vol, refs = case
    array = xr.DataArray(np.moveaxis(vol, -1, 0), dims=("time", "inline", "crossline"), name="amplitude",
                         coords={"time": np.arange(SHAPE[2]) * 4.0, "inline": np.arange(SHAPE[0]) + 100},
                         attrs={"units": "Pa"})
    out = impeccable.denoise(array, **_kw(tiny_model_dir, "both"))
    assert out.dims == array.dims and out.attrs == {"units": "Pa"} and out.name == "amplitude"
    assert np.array_equal(out["inline"], array["inline"]) and np.array_equal(out["time"], array["time"])
    assert np.array_equal(np.moveaxis(out.values, 0, -1), refs["both"])
    lazy = impeccable.denoise(array.chunk({"inline": 5}), **_kw(tiny_model_dir, "inline"))
    assert lazy.chunks is not None and np.array_equal(np.moveaxis(lazy.values, 0, -1), refs["inline"])


@pytest.mark.parametrize("volume, options, match", [
    (np.zeros((3, 4)), {}, "not a 3-D numeric volume"),
    (np.ones((3, 4, 5)), {}, "volume is constant"),
    (np.zeros((3, 4, 5)), {"speed": 2}, "unknown option"),
    (np.zeros((3, 4, 5)), {"views": "diagonal"}, "unknown views"),
])
def test_errors(tiny_model_dir, volume, options, match):
    with pytest.raises(InputError, match=match):
        impeccable.denoise(volume, model=tiny_model_dir, engine="onnxruntime", **options)
