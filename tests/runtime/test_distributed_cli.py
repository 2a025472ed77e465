"""``impeccable-denoise --cluster``: a running scheduler, a local cluster, the summary, the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

distributed = pytest.importorskip("distributed")

from impeccable.runtime.cli import main  # noqa: E402


def _args(model, *extra):
    return ["--model", str(model), "--engine", "onnxruntime", "--batch-size", "2", "--no-progress", *extra]


@pytest.fixture
def source(tmp_path, tiny_volume):
    path = tmp_path / "in.npy"
    np.save(path, tiny_volume((9, 40, 150), seed=2))
    return path


def _single(tmp_path, source, model, *extra) -> np.ndarray:
    result = CliRunner().invoke(main, [str(source), "-o", str(tmp_path / "ref.npy"), *_args(model, *extra)])
    assert result.exit_code == 0, result.output
    return np.load(tmp_path / "ref.npy")


def test_running_scheduler(tmp_path, source, tiny_model_dir):
    ref = _single(tmp_path, source, tiny_model_dir, "--views", "both")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        result = CliRunner().invoke(main, [str(source), "-o", str(tmp_path / "out.npy"), "--views", "both",
                                           "--cluster", cluster.scheduler_address, "--slab-sections", "3",
                                           "--report", str(tmp_path / "r.json"), "--preview", str(tmp_path / "p.png"),
                                           *_args(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "dashboard:" in result.output and "on 2 workers" in result.output and "retries 0" in result.output
    assert "slabs: 3 inline + 14 crossline" in result.output and "QC: removed" in result.output
    assert np.array_equal(np.load(tmp_path / "out.npy"), ref)
    assert f"preview {tmp_path / 'p.png'}" in result.output and (tmp_path / "p.png").stat().st_size > 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sections"] == 9 + 40 and report["resumed"] == 0 and len(report["workers"]) == 2


def test_local_cluster(tmp_path, source, tiny_model_dir):
    ref = _single(tmp_path, source, tiny_model_dir)
    result = CliRunner().invoke(main, [str(source), "-o", str(tmp_path / "out.npy"), "--cluster", "local",
                                       "--workers", "1", *_args(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "scheduler tcp://127.0.0.1:" in result.output and "on 1 workers" in result.output
    assert np.array_equal(np.load(tmp_path / "out.npy"), ref)


@pytest.mark.parametrize("name, extra, message", [
    ("in.npy", ["--resume"], "Error: --resume and --workers need --cluster"),
    ("in.h5", ["--cluster", "local"], "Error: HDF5 cannot be written by many workers"),
    ("in.npy", ["--cluster", "tcp://127.0.0.1:9", "--slab-sections", "2"], "Error: cannot reach the Dask scheduler"),
    ("in.npy", ["--cluster", "bogus"], "Error: --cluster is not a scheduler address"),
])
def test_refusals(tmp_path, source, tiny_model_dir, name, extra, message, monkeypatch):
    monkeypatch.setattr("impeccable.runtime.distributed_cluster.CONNECT_TIMEOUT", "1s")
    path = source if name == "in.npy" else tmp_path / name
    path.touch()
    result = CliRunner().invoke(main, [str(path), "-o", str(tmp_path / f"out{path.suffix}"), *extra,
                                       *_args(tiny_model_dir)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert "--resume" not in result.output.replace(" ".join(extra), "")  # no run state exists to resume
    assert not any(p.name.endswith(".impeccable-run") for p in tmp_path.iterdir())
    import distributed

    # A client that never connected is not left as this process's default: the caller's (or the next test's)
    # dask computations would wait on it forever (a CI run hung so in mdio.segy_to_mdio).
    with pytest.raises(ValueError, match="No clients found"):
        distributed.default_client()
