"""MDIO: SEG-Y -> MDIO -> denoise (one process and --cluster) -> MDIO -> SEG-Y equals the SEG-Y path's output."""

from __future__ import annotations

import numpy as np
import pytest

mdio = pytest.importorskip("mdio", reason="multidimio is not installed (pip install 'impeccable[mdio]')")
segyio = pytest.importorskip("segyio")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

from impeccable.runtime.config import DenoiseConfig  # noqa: E402
from impeccable.runtime.distributed import run_distributed  # noqa: E402
from impeccable.runtime.pipeline import denoise_file  # noqa: E402


@pytest.fixture(autouse=True)
def _local_dask_scheduler():
    """MDIO's converters and readers compute dask graphs on the *default* scheduler; a distributed client that an
    earlier test left as the default (its cluster gone) once made segy_to_mdio wait forever in CI. Computations
    outside run_distributed (which submits to its own client) run on dask's threads here."""
    import dask

    with dask.config.set(scheduler="threads"):
        yield


def _segy(path, volume, present) -> None:
    """An IEEE SEG-Y of the ``present`` cells that MDIO ingests: ASCII textual header, scalar 1, CDP x/y."""
    field = segyio.TraceField
    cells = [(i, x) for i in range(volume.shape[0]) for x in range(volume.shape[1]) if present[i, x]]
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = 5, list(range(volume.shape[2])), len(cells)
    with segyio.create(str(path), spec) as f:
        f.text[0] = segyio.tools.create_text_header({1: "impeccable test survey"})
        for t, (i, x) in enumerate(cells):
            f.header[t] = {field.INLINE_3D: 10 + i, field.CROSSLINE_3D: 100 + x, field.SourceGroupScalar: 1,
                           field.CDP_X: 1000 + 25 * i, field.CDP_Y: 2000 + 25 * x,
                           field.TRACE_SAMPLE_COUNT: volume.shape[2], field.TRACE_SAMPLE_INTERVAL: 4000}
            f.trace[t] = volume[i, x]
        f.bin.update(hdt=4000, hns=volume.shape[2])


def _traces(path) -> tuple[np.ndarray, list]:
    """A SEG-Y file's traces ``(trace, sample)`` in (inline, crossline) order, and those cells (irregular)."""
    with segyio.open(str(path), "r", ignore_geometry=True) as f:
        keys = [(h[segyio.TraceField.INLINE_3D], h[segyio.TraceField.CROSSLINE_3D]) for h in f.header]
        return np.array([f.trace[t] for t in np.lexsort(np.array(keys).T[::-1])]), sorted(keys)


def _export(source, target) -> None:
    from segy.schema import ScalarType
    from segy.standards import get_segy_standard

    spec = get_segy_standard(1.0).model_copy(deep=True)
    spec.trace.data.format = ScalarType.FLOAT32  # the default spec writes IBM samples under a format-5 header
    mdio.mdio_to_segy(segy_spec=spec, input_path=str(source), output_path=str(target))


def test_segy_mdio_round_trip(tmp_path, tiny_model_dir, tiny_volume, monkeypatch):
    """An irregular survey (a corner cut away, holes): MDIO's trace mask plays the SEG-Y geometry's part."""
    from mdio.builder.template_registry import get_template
    from segy.standards import get_segy_standard

    monkeypatch.setenv("MDIO__IMPORT__SAVE_SEGY_FILE_HEADER", "true")  # export needs the file header
    volume = tiny_volume((7, 40, 150), seed=4)
    present = np.ones(volume.shape[:2], bool)
    present[:2, :5] = False
    present[4, 17] = present[5, 30] = False
    _segy(tmp_path / "in.sgy", volume, present)
    mdio.segy_to_mdio(segy_spec=get_segy_standard(1.0), mdio_template=get_template("PostStack3DTime"),
                      input_path=str(tmp_path / "in.sgy"), output_path=str(tmp_path / "in.mdio"), overwrite=True)
    config = DenoiseConfig(model=tiny_model_dir, engine="onnxruntime", views="both", batch_size=2, progress=False,
                           engine_options={"threads": 1})
    denoise_file(tmp_path / "in.sgy", tmp_path / "ref.sgy", config)
    denoise_file(tmp_path / "in.mdio", tmp_path / "one.mdio", config)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c) as client:
            run_distributed(tmp_path / "in.mdio", tmp_path / "out.mdio", config, client=client, slab_sections=3)
    ref, cells = _traces(tmp_path / "ref.sgy")
    assert len(cells) == present.sum()
    for name in ("one", "out"):
        _export(tmp_path / f"{name}.mdio", tmp_path / f"{name}.sgy")
        traces, exported = _traces(tmp_path / f"{name}.sgy")
        assert exported == cells and np.array_equal(traces, ref), name
    src, out = zarr.open_group(str(tmp_path / "in.mdio"), mode="r"), zarr.open_group(str(tmp_path / "out.mdio"))
    for name in ("headers", "trace_mask", "cdp_x", "cdp_y", "inline", "crossline", "time"):
        a, b = np.asarray(out[name][:]), np.asarray(src[name][:])
        assert a.tobytes() == b.tobytes(), name  # bytes: NaN at absent cells, structured headers
    assert dict(out.attrs) == dict(src.attrs)
    assert "statsV1" not in out["amplitude"].attrs and out["amplitude"].chunks[1:] == (40, 150)
    opened = mdio.open_mdio(str(tmp_path / "out.mdio"))
    assert np.array_equal(opened["amplitude"].values, np.asarray(out["amplitude"][:]))
