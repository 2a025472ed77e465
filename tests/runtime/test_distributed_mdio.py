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


def _segy(path, volume) -> None:
    """An IEEE SEG-Y MDIO ingests: ASCII textual header, coordinate scalar 1, CDP coordinates."""
    segyio.tools.from_array(str(path), volume, format=5)
    with segyio.open(str(path), "r+") as f:
        f.text[0] = segyio.tools.create_text_header({1: "impeccable test survey"})
        for h in f.header:
            h.update({segyio.TraceField.SourceGroupScalar: 1,
                      segyio.TraceField.CDP_X: 1000 + 25 * h[segyio.TraceField.INLINE_3D],
                      segyio.TraceField.CDP_Y: 2000 + 25 * h[segyio.TraceField.CROSSLINE_3D]})


def _export(source, target) -> None:
    from segy.schema import ScalarType
    from segy.standards import get_segy_standard

    spec = get_segy_standard(1.0).model_copy(deep=True)
    spec.trace.data.format = ScalarType.FLOAT32  # the default spec writes IBM samples under a format-5 header
    mdio.mdio_to_segy(segy_spec=spec, input_path=str(source), output_path=str(target))


def test_segy_mdio_round_trip(tmp_path, tiny_model_dir, tiny_volume, monkeypatch):
    from mdio.builder.template_registry import get_template
    from segy.standards import get_segy_standard

    monkeypatch.setenv("MDIO__IMPORT__SAVE_SEGY_FILE_HEADER", "true")  # export needs the file header
    volume = tiny_volume((7, 40, 150), seed=4)
    _segy(tmp_path / "in.sgy", volume)
    mdio.segy_to_mdio(segy_spec=get_segy_standard(1.0), mdio_template=get_template("PostStack3DTime"),
                      input_path=str(tmp_path / "in.sgy"), output_path=str(tmp_path / "in.mdio"), overwrite=True)
    config = DenoiseConfig(model=tiny_model_dir, engine="onnxruntime", views="both", batch_size=2, progress=False,
                           engine_options={"threads": 1})
    denoise_file(tmp_path / "in.sgy", tmp_path / "ref.sgy", config)
    denoise_file(tmp_path / "in.mdio", tmp_path / "one.mdio", config)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c) as client:
            run_distributed(tmp_path / "in.mdio", tmp_path / "out.mdio", config, client=client, slab_sections=3)
    ref = segyio.tools.cube(str(tmp_path / "ref.sgy"))
    for name in ("one", "out"):
        _export(tmp_path / f"{name}.mdio", tmp_path / f"{name}.sgy")
        assert np.array_equal(segyio.tools.cube(str(tmp_path / f"{name}.sgy")), ref), name
    src, out = zarr.open_group(str(tmp_path / "in.mdio"), mode="r"), zarr.open_group(str(tmp_path / "out.mdio"))
    for name in ("headers", "trace_mask", "cdp_x", "cdp_y", "inline", "crossline", "time"):
        assert np.array_equal(np.asarray(out[name][:]), np.asarray(src[name][:])), name
    assert dict(out.attrs) == dict(src.attrs)
    assert "statsV1" not in out["amplitude"].attrs and out["amplitude"].chunks[1:] == (40, 150)
    opened = mdio.open_mdio(str(tmp_path / "out.mdio"))
    assert np.array_equal(opened["amplitude"].values, np.asarray(out["amplitude"][:]))
