"""The distributed runner: same output as ``denoise_file``, retries, a killed worker, resume, refusals.

Clusters are in-process (``processes=False``: inproc transport, nothing listens) except the killed-worker
test's, whose two worker processes listen on 127.0.0.1; every cluster is closed by its test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

from impeccable.core.errors import InputError, OutputError  # noqa: E402
from impeccable.runtime.config import DenoiseConfig  # noqa: E402
from impeccable.runtime.distributed import EngineFactory, run_distributed  # noqa: E402
from impeccable.runtime.distributed_plan import RunDir, check_ownership, make_plan  # noqa: E402
from impeccable.runtime.pipeline import denoise_file  # noqa: E402

SHAPE = (13, 40, 150)  # 150 samples > the 128-sample window: tiled sections; 13 inlines: no even split


@pytest.fixture
def one_worker():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c) as cl:
            yield cl


@pytest.fixture
def volume(tiny_volume):
    vol = tiny_volume(SHAPE, seed=5)
    vol[3, 7, 20] = np.nan
    vol[9, 0, 149] = np.inf
    return vol


def _config(model: Path, **kw) -> DenoiseConfig:
    return DenoiseConfig(model=model, engine="onnxruntime", batch_size=2, progress=False,
                         engine_options={"threads": 1}, **kw)


def _reference(tmp_path: Path, source: Path, config: DenoiseConfig) -> np.ndarray:
    ref = tmp_path / f"ref{source.suffix}"
    report = denoise_file(source, ref, config)
    if ref.suffix == ".npy":
        return report, np.load(ref)
    return report, np.asarray(zarr.open_array(str(ref), path=config.dataset or "")[:])


@pytest.mark.parametrize("views, scale", [("inline", "input"), ("crossline", "input"), ("both", "input"),
                                          ("both", "uint8")])
def test_npy_matches_denoise_file(tmp_path, tiny_model_dir, volume, client, views, scale):
    source = tmp_path / "in.npy"
    np.save(source, np.moveaxis(volume, -1, 0))  # time first: inline slabs are strided in the file
    config = _config(tiny_model_dir, views=views, scale=scale)
    ref_report, ref = _reference(tmp_path, source, config)
    report = run_distributed(source, tmp_path / "out.npy", config, client=client, slab_sections=3)
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == ref.dtype and np.array_equal(out, ref)
    assert report.qc == ref_report.qc and report.fit == ref_report.fit
    assert report.slabs["inline"] > 2 and len(report.workers) == 2
    assert not RunDir(tmp_path / "out.npy").path.exists()  # committed: the run's state is gone


def test_batch_bounded_by_memory_as_in_one_process(tmp_path, tiny_model_dir, volume, client, monkeypatch):
    """A --batch-size the memory cannot hold is cut to what fits, as denoise_file cuts it, and said once."""
    from impeccable.runtime import memory

    base, per_image = memory.engine_memory("onnxruntime", "fp32", (64, 128))
    budget = base + 3 * 2 * per_image  # 3 windows with TTA
    monkeypatch.setattr(memory, "worker_budget", lambda limits: budget)  # the workers'
    monkeypatch.setattr(memory, "memory_budget", lambda: budget)  # the single-process reference's
    source = tmp_path / "in.npy"
    np.save(source, volume)
    config = _config(tiny_model_dir, views="inline")
    config = DenoiseConfig(**{**config.__dict__, "batch_size": 100000})
    _, ref = _reference(tmp_path, source, config)
    lines = []
    run_distributed(source, tmp_path / "out.npy", config, client=client, announce=lines.append)
    assert np.array_equal(np.load(tmp_path / "out.npy"), ref)
    assert [line for line in lines if "--batch-size 100000 reduced to 3" in line]


def test_zarr_in_and_out(tmp_path, tiny_model_dir, volume, client):
    """A group with a named, time-first array whose chunks cut the sections: output chunks hold whole sections."""
    store = tmp_path / "in.zarr"
    group = zarr.open_group(str(store), mode="w", attributes={"survey": "t"})
    arr = group.create_array("amplitude", shape=(150, 13, 40), chunks=(64, 4, 16), dtype="float32",
                             dimension_names=("time", "inline", "crossline"), attributes={"unit": "Pa"})
    arr[:] = np.moveaxis(volume, -1, 0)
    group.create_array("other", shape=(3, 3, 3), dtype="float32")  # a second 3-D array: --dataset required
    config = _config(tiny_model_dir, views="both", dataset="amplitude")
    ref_report, ref = _reference(tmp_path, store, config)
    report = run_distributed(store, tmp_path / "out.zarr", config, client=client, slab_sections=3)
    out = zarr.open_array(str(tmp_path / "out.zarr"), path="amplitude")
    assert np.array_equal(np.asarray(out[:]), ref) and report.qc == ref_report.qc
    assert out.chunks == (150, 4, 40)  # (time, inline, crossline): whole sections, the input's inline chunk
    assert dict(out.attrs) == {"unit": "Pa"} and tuple(out.metadata.dimension_names) == ("time", "inline",
                                                                                          "crossline")
    npy = tmp_path / "same.npy"
    np.save(npy, np.moveaxis(volume, -1, 0))
    _, from_npy = _reference(tmp_path, npy, _config(tiny_model_dir, views="both"))
    assert np.array_equal(np.asarray(out[:]), from_npy)  # Zarr reads as .npy does


def test_onnxruntime_cpu_is_batch_independent(tiny_model_dir):
    """Why slabs may be planned freely as long as batches match: the section's result is the same either way."""
    from impeccable.runtime.engines import create_engine

    x = np.random.default_rng(0).random((5, 1, 64, 128), dtype=np.float32)
    with create_engine("onnxruntime", tiny_model_dir, batch_size=8, threads=1) as engine:
        whole = engine(x)
        assert np.array_equal(whole, np.concatenate([engine(x[i:i + 1]) for i in range(5)]))


# ----- fault injection: engines that fail, kill their process, or stop after some calls -----------------


@dataclass(frozen=True)
class FailingOnce(EngineFactory):
    """The real engine, whose first call in the whole run raises (a marker file says it already did)."""

    marker: str = ""
    kill: bool = False

    def __call__(self):
        engine = EngineFactory.__call__(self)
        marker, kill = Path(self.marker), self.kill

        class Wrapped:
            window, name, precision, max_batch = engine.window, engine.name, engine.precision, None

            def __call__(self, batch):
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL)  # exactly one caller wins, across processes
                except FileExistsError:
                    return engine(batch)
                os.close(fd)
                if kill:
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("injected failure")

            def close(self):
                engine.close()

        return Wrapped()


@dataclass(frozen=True)
class StoppingAfter(EngineFactory):
    """The real engine that fails every call after its first ``calls`` (an interrupted run)."""

    calls: int = 0

    def __call__(self):
        engine = EngineFactory.__call__(self)
        limit = self.calls

        class Wrapped:
            window, name, precision, max_batch = engine.window, engine.name, engine.precision, None
            done = 0

            def __call__(self, batch):
                Wrapped.done += 1
                if Wrapped.done > limit:
                    raise RuntimeError("node lost")
                return engine(batch)

            def close(self):
                engine.close()

        return Wrapped()


@dataclass(frozen=True)
class Counting(EngineFactory):
    """The real engine; each build appends a line to ``log`` (engines built per worker, not per task)."""

    log: str = ""

    def __call__(self):
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return EngineFactory.__call__(self)


def _factory(cls, model: Path, **kw):
    return cls("onnxruntime", str(model), 4, (("threads", 1),), **kw)


def test_engine_built_once_per_worker(tmp_path, tiny_model_dir, volume, client):
    source = tmp_path / "in.npy"
    np.save(source, volume)
    log = tmp_path / "builds"
    report = run_distributed(source, tmp_path / "out.npy", _config(tiny_model_dir, views="both"), client=client,
                             slab_sections=2, engine_factory=_factory(Counting, tiny_model_dir, log=str(log)))
    assert report.slabs["inline"] + report.slabs["crossline"] > 10
    assert len(log.read_text().split()) == 2  # two workers, two engines, for dozens of tasks


def test_failing_task_is_retried(tmp_path, tiny_model_dir, volume, client):
    source = tmp_path / "in.npy"
    np.save(source, volume)
    config = _config(tiny_model_dir)
    _, ref = _reference(tmp_path, source, config)
    report = run_distributed(source, tmp_path / "out.npy", config, client=client, slab_sections=3,
                             engine_factory=_factory(FailingOnce, tiny_model_dir, marker=str(tmp_path / "m")))
    assert (tmp_path / "m").exists() and report.retries == 1
    assert np.array_equal(np.load(tmp_path / "out.npy"), ref)


def test_task_failing_past_retries(tmp_path, tiny_model_dir, volume, client):
    source = tmp_path / "in.npy"
    np.save(source, volume)
    with pytest.raises(OutputError, match="distributed run failed.*--resume"):
        run_distributed(source, tmp_path / "out.npy", _config(tiny_model_dir), client=client, retries=0,
                        engine_factory=_factory(FailingOnce, tiny_model_dir, marker=str(tmp_path / "m")))
    # Nothing was predicted yet: no state is kept (test_resume_* covers a run stopped later).
    assert not (tmp_path / "out.npy").exists() and not RunDir(tmp_path / "out.npy").path.exists()


def test_killed_worker_process(tmp_path, tiny_model_dir, volume):
    """SIGKILL of a worker process mid-task: the scheduler recomputes its slab, the output is right."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    source = tmp_path / "in.npy"
    np.save(source, volume)
    config = _config(tiny_model_dir, views="both")
    _, ref = _reference(tmp_path, source, config)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as cl:
        run_distributed(source, tmp_path / "out.npy", config, client=cl, slab_sections=3,
                        engine_factory=_factory(FailingOnce, tiny_model_dir, marker=str(tmp_path / "m"), kill=True))
    assert (tmp_path / "m").exists()
    assert np.array_equal(np.load(tmp_path / "out.npy"), ref)


def _flags(output: Path) -> set[str]:
    return {p.name for p in RunDir(output).flags.glob("*.json")}


def test_resume_computes_only_missing_slabs(tmp_path, tiny_model_dir, volume, one_worker):
    source = tmp_path / "in.npy"
    np.save(source, volume)
    output = tmp_path / "out.npy"
    config = _config(tiny_model_dir, views="both")
    _, ref = _reference(tmp_path, source, config)
    with pytest.raises(OutputError, match="--resume"):
        run_distributed(source, output, config, client=one_worker, slab_sections=3, retries=0,
                        engine_factory=_factory(StoppingAfter, tiny_model_dir, calls=6))
    before = _flags(output)
    assert any(f.startswith("predict-inline") for f in before) and not any(f.startswith("write") for f in before)
    with pytest.raises(InputError, match="interrupted run of this output exists"):
        run_distributed(source, output, config, client=one_worker, slab_sections=3)
    done_sections = sum(json.loads((RunDir(output).flags / f).read_text())["sections"]
                        for f in before if f.startswith("predict-"))
    report = run_distributed(source, output, config, client=one_worker, slab_sections=3, resume=True)
    assert report.resumed == len(before) and done_sections > 0
    assert report.sections == SHAPE[0] + SHAPE[1] - done_sections  # only the missing slabs were predicted
    assert np.array_equal(np.load(output), ref)


def test_resume_with_another_model_is_refused(tmp_path, tiny_model_dir, volume, one_worker):
    source = tmp_path / "in.npy"
    np.save(source, volume)
    output = tmp_path / "out.npy"
    with pytest.raises(OutputError):
        run_distributed(source, output, _config(tiny_model_dir), client=one_worker, retries=0, slab_sections=3,
                        engine_factory=_factory(StoppingAfter, tiny_model_dir, calls=6))
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    card = json.loads((other / "model.json").read_text())
    card["name"] = "another model"
    (other / "model.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="cannot resume.*model differ"):
        run_distributed(source, output, _config(other), client=one_worker, resume=True, slab_sections=3)
    with pytest.raises(InputError, match="cannot resume.*settings differ"):
        run_distributed(source, output, _config(tiny_model_dir, tta=False), client=one_worker, resume=True,
                        slab_sections=3)
    np.save(source, volume + 1)  # the input changed (size equal, mtime not)
    with pytest.raises(InputError, match="cannot resume.*input differ"):
        run_distributed(source, output, _config(tiny_model_dir), client=one_worker, resume=True, slab_sections=3)
    assert RunDir(output).path.is_dir()  # the refusals kept the first attempt's state
    assert not output.exists()


@pytest.mark.parametrize("name, match", [("in.h5", "HDF5 cannot be written by many workers"),
                                         ("in.raw", "not supported with --cluster")])
def test_formats_refused(tmp_path, tiny_model_dir, name, match):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(InputError, match=match):
        run_distributed(tmp_path / name, tmp_path / f"out{Path(name).suffix}", _config(tiny_model_dir))


def test_plan_slabs_hold_whole_batches_and_chunks():
    plan = make_plan((50, 30, 100), ("inline", "crossline"), {"inline": 3, "crossline": 2}, chunk=4, target=10)
    assert all((b - a) % 12 == 0 for a, b in plan.inline[:-1]) and plan.inline[-1][1] == 50
    assert all((b - a) % 2 == 0 for a, b in plan.crossline[:-1]) and plan.crossline[-1][1] == 30


@pytest.mark.parametrize("slabs, match", [(((0, 6), (6, 12)), "two tasks would write one output chunk"),
                                          (((0, 4), (8, 12)), "do not cover the volume once")])
def test_ownership_check(slabs, match):
    with pytest.raises(OutputError, match=match):
        check_ownership(slabs, chunk=4, count=12)
