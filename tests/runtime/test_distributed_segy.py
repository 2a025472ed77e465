"""SEG-Y with the distributed runner: the output file equals the single process's, byte for byte.

The tasks of a run write disjoint traces into one temporary copy of the input (a shared filesystem); the files
are compared whole (textual, binary and trace headers included) against ``denoise_file`` with the same stand-in
engine, for regular, irregular, dead-trace and 2-D surveys. Clusters are in-process (nothing listens).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
segyio = pytest.importorskip("segyio")

from fake_engines import MixingEngine  # noqa: E402
from test_segy_irregular import write_lines, write_survey  # noqa: E402
from impeccable.core.errors import InputError, OutputError  # noqa: E402
from impeccable.runtime.config import DenoiseConfig  # noqa: E402
from impeccable.runtime.distributed import run_distributed  # noqa: E402
from impeccable.runtime.distributed_plan import RunDir, check_trace_ownership  # noqa: E402
from impeccable.runtime.pipeline import denoise_file  # noqa: E402
from impeccable.runtime.volumes.segy import create_segy  # noqa: E402

WINDOW = (8, 16)


@dataclass(frozen=True)
class MixingFactory:
    """Builds the stand-in engine on each worker; fails every call after ``calls`` calls when set."""

    name: str = "fake"
    calls: int | None = None

    def __call__(self):
        engine = MixingEngine(WINDOW)
        if self.calls is None:
            return engine
        limit = self.calls

        class Stopping(MixingEngine):
            done = 0

            def __call__(self, batch):
                Stopping.done += 1
                if Stopping.done > limit:
                    raise RuntimeError("node lost")
                return engine(batch)

        return Stopping(WINDOW)


@pytest.fixture
def model(tmp_path) -> Path:
    """A model path for the run's identity (the stand-in engine reads nothing)."""
    path = tmp_path / "fake.onnx"
    path.write_bytes(b"stand-in model")
    return path


def _cube(shape=(7, 11, 40), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 100 + 3).astype(np.float32)


def _survey(path: Path, cube: np.ndarray, present: np.ndarray, *, dead=None, sorting="inline", fmt=5,
            iline=189, xline=193) -> Path:
    """A 3-D survey with traces at the ``present`` cells only (identification code 2 where ``dead``)."""
    write_survey(path, cube, present, dead=dead, sorting=sorting, fmt=fmt, iline=iline, xline=xline)
    return path


def _lines(path: Path, lines: list[np.ndarray], key: int = 189) -> Path:
    """2-D lines one after the other, told apart by byte ``key``, ordered by CDP (byte 21)."""
    write_lines(path, lines, key=key)
    return path


def _corner_and_holes(shape) -> np.ndarray:
    present = np.ones(shape[:2], bool)
    present[:2, :3] = False  # a corner cut away
    present[4, 5] = present[3, 6] = False  # holes
    return present


def _regular(tmp_path):
    cube = _cube()
    cube[2, 4, 7] = np.nan  # filled with the finite mean: the statistics' sums must merge alike
    return create_segy(tmp_path / "in.sgy", cube), {}


def _crossline_ibm(tmp_path):
    return create_segy(tmp_path / "in.sgy", _cube(seed=1), sorting="crossline", sample_format=1), {}


def _irregular(tmp_path):
    cube = _cube(seed=2)
    return _survey(tmp_path / "in.sgy", cube, _corner_and_holes(cube.shape), iline=9, xline=21), \
        {"iline_byte": 9, "xline_byte": 21}


def _dead(tmp_path):
    cube = _cube(seed=3)
    present = _corner_and_holes(cube.shape)
    dead = np.zeros(present.shape, bool)
    dead[3, 3] = True  # code 2, with samples that would dominate the statistics
    cube[3, 3] = 1e6
    cube[2, 7] = cube[5, 0] = cube[6, 10] = 0.0  # all-zero traces, found as they are read
    cube[4, 2, 5] = np.nan
    return _survey(tmp_path / "in.sgy", cube, present, dead=dead, sorting="crossline"), {}


def _two_d(tmp_path):
    return _lines(tmp_path / "in.sgy", [_cube((1, n, 40), seed=n)[0] for n in (23, 9, 31)]), {}


def _two_d_keyed(tmp_path):
    lines = [_cube((1, n, 40), seed=n)[0] for n in (12, 20, 7)]
    return _lines(tmp_path / "in.sgy", lines, key=233), {"line_key": 233}


SURVEYS = {"regular": _regular, "crossline-sorted IBM": _crossline_ibm, "irregular": _irregular,
           "dead traces": _dead, "2-D lines": _two_d, "2-D lines by --line-key": _two_d_keyed}


def _config(model: Path, **kw) -> DenoiseConfig:
    return DenoiseConfig(model=model, tta=True, batch_size=2, progress=False, **kw)


@pytest.mark.parametrize("survey, views, scale", [
    ("regular", "inline", "input"), ("regular", "both", "uint8"), ("crossline-sorted IBM", "both", "input"),
    ("irregular", "both", "input"), ("irregular", "crossline", "unit"), ("dead traces", "inline", "input"),
    ("dead traces", "both", "input"), ("2-D lines", "inline", "input"), ("2-D lines by --line-key", "inline", "uint8"),
])
def test_segy_file_equals_denoise_file(tmp_path, model, client, survey, views, scale):
    source, options = SURVEYS[survey](tmp_path)
    config = _config(model, views=views, scale=scale, **options)
    ref = denoise_file(source, tmp_path / "ref.sgy", config, engine=MixingEngine(WINDOW))
    report = run_distributed(source, tmp_path / "out.sgy", config, client=client, slab_sections=2,
                             engine_factory=MixingFactory())
    assert (tmp_path / "out.sgy").read_bytes() == (tmp_path / "ref.sgy").read_bytes()
    assert report.qc == ref.qc and report.fit == ref.fit and report.stats == ref.stats
    assert report.slabs["inline"] > 1 and len(report.workers) == 2
    assert not RunDir(tmp_path / "out.sgy").path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "fake.onnx", "ref.sgy", "out.sgy"])


@pytest.mark.parametrize("survey", ["irregular", "dead traces"])
def test_tiny_model_on_onnxruntime(tmp_path, tiny_model_dir, client, survey):
    """The tiny UNet++ through ONNX Runtime, one engine per worker: the same file as one process."""
    source, options = SURVEYS[survey](tmp_path)
    config = DenoiseConfig(model=tiny_model_dir, engine="onnxruntime", views="both", batch_size=2, progress=False,
                           engine_options={"threads": 1}, **options)
    denoise_file(source, tmp_path / "ref.sgy", config)
    run_distributed(source, tmp_path / "out.sgy", config, client=client, slab_sections=2)
    assert (tmp_path / "out.sgy").read_bytes() == (tmp_path / "ref.sgy").read_bytes()


def test_two_task_threads_per_worker(tmp_path, model):
    """Tasks side by side in one worker: concurrent trace writes into the one copy, a reader per task thread."""
    source, _ = _dead(tmp_path)
    config = _config(model, views="both")
    denoise_file(source, tmp_path / "ref.sgy", config, engine=MixingEngine(WINDOW))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as c, distributed.Client(c) as cl:
        run_distributed(source, tmp_path / "out.sgy", config, client=cl, slab_sections=1,
                        engine_factory=MixingFactory())
    assert (tmp_path / "out.sgy").read_bytes() == (tmp_path / "ref.sgy").read_bytes()


def test_worker_processes(tmp_path, model):
    """Two worker processes on 127.0.0.1: the tasks, the job and the trace writer cross process boundaries."""
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(sys.modules[MixingEngine.__module__])
    source, options = _irregular(tmp_path)
    config = _config(model, views="both", **options)
    denoise_file(source, tmp_path / "ref.sgy", config, engine=MixingEngine(WINDOW))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as cl:
        report = run_distributed(source, tmp_path / "out.sgy", config, client=cl, slab_sections=2,
                                 engine_factory=MixingFactory())
    assert len(report.workers) == 2
    assert (tmp_path / "out.sgy").read_bytes() == (tmp_path / "ref.sgy").read_bytes()


def test_resume_of_a_segy_run(tmp_path, model):
    source, _ = _dead(tmp_path)
    output = tmp_path / "out.sgy"
    config = _config(model, views="both")
    denoise_file(source, tmp_path / "ref.sgy", config, engine=MixingEngine(WINDOW))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c, distributed.Client(c) as one_worker:
        with pytest.raises(OutputError, match="--resume"):
            run_distributed(source, output, config, client=one_worker, slab_sections=2, retries=0,
                            engine_factory=MixingFactory(calls=12))
        flags = {p.name for p in RunDir(output).flags.glob("*.json")}
        assert any(f.startswith("predict-inline") for f in flags) and not output.exists()
        with pytest.raises(InputError, match="cannot resume.*settings differ"):
            run_distributed(source, output, _config(model, views="both", cdp_byte=25),
                            client=one_worker, slab_sections=2, resume=True, engine_factory=MixingFactory())
        report = run_distributed(source, output, config, client=one_worker, slab_sections=2, resume=True,
                                 engine_factory=MixingFactory())
    assert report.resumed == len(flags) > 0
    assert output.read_bytes() == (tmp_path / "ref.sgy").read_bytes()


def test_segy_with_crossline_views_on_2d_lines_is_refused(tmp_path, model):
    source, _ = _two_d(tmp_path)
    with pytest.raises(InputError, match="no crossline sections: 2-D lines"):
        run_distributed(source, tmp_path / "out.sgy", _config(model, views="both"), engine_factory=MixingFactory())
    assert not (tmp_path / "out.sgy").exists() and not RunDir(tmp_path / "out.sgy").path.exists()


def test_output_appearing_during_the_run_is_left_alone(tmp_path, model, client, monkeypatch):
    source, _ = _regular(tmp_path)
    output = tmp_path / "out.sgy"
    import impeccable.runtime.distributed as runner

    real = runner.commit_output

    def appear_then_commit(run, sink, out, overwrite):
        out.write_bytes(b"theirs")
        real(run, sink, out, overwrite)

    monkeypatch.setattr(runner, "commit_output", appear_then_commit)
    with pytest.raises(OutputError, match="output appeared during the run"):
        run_distributed(source, output, _config(model), client=client, slab_sections=2,
                        engine_factory=MixingFactory())
    assert output.read_bytes() == b"theirs"
    assert (RunDir(output).path / "output.sgy").is_file()  # the finished result is kept, as the error says


@pytest.mark.parametrize("scale", ["input", "uint8"])
def test_preview_is_the_single_process_one(tmp_path, model, client, scale):
    """Drawn on the client from the middle inline in the input's units: the same PNG, byte for byte."""
    pytest.importorskip("matplotlib")
    source, _ = _dead(tmp_path)
    config = _config(model, views="both", scale=scale)
    one, many = tmp_path / "one", tmp_path / "many"  # the same output name: the picture's title holds it
    one.mkdir(), many.mkdir()
    denoise_file(source, one / "out.sgy", replace(config, preview=one / "p.png"), engine=MixingEngine(WINDOW))
    run_distributed(source, many / "out.sgy", replace(config, preview=many / "p.png"), client=client,
                    slab_sections=2, engine_factory=MixingFactory())
    assert (many / "p.png").read_bytes() == (one / "p.png").read_bytes()
    assert (many / "out.sgy").read_bytes() == (one / "out.sgy").read_bytes()


@dataclass(frozen=True)
class TouchingFactory:
    """The stand-in engine, whose first call rewrites the input's modification time (a file written meanwhile)."""

    path: str
    name: str = "fake"

    def __call__(self):
        path = self.path

        class Touching(MixingEngine):
            touched = False

            def __call__(self, batch):
                if not Touching.touched:
                    Touching.touched = True
                    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
                return super().__call__(batch)

        return Touching(WINDOW)


def test_input_changed_during_the_run_leaves_no_output(tmp_path, model, client):
    source, _ = _regular(tmp_path)
    with pytest.raises(InputError, match="input changed during the run; nothing was written"):
        run_distributed(source, tmp_path / "out.sgy", _config(model), client=client, slab_sections=2,
                        engine_factory=TouchingFactory(str(source)))
    assert not (tmp_path / "out.sgy").exists()


def _index(cells: list[list[int]]) -> np.ndarray:
    return np.asarray(cells, dtype=np.int64)


@pytest.mark.parametrize("index, traces, match", [
    (_index([[0, 1], [1, 2]]), 3, "two tasks would write one SEG-Y trace"),  # trace 1 in inlines 0 and 1
    (_index([[0, 0], [1, 2]]), 3, "write one SEG-Y trace twice"),
    (_index([[0, -1], [1, 2]]), 4, "do not write every SEG-Y trace"),
])
def test_trace_ownership_check(index, traces, match):
    with pytest.raises(OutputError, match=match):
        check_trace_ownership(((0, 1), (1, 2)), index, traces)
    check_trace_ownership(((0, 2),), _index([[0, 3], [1, 2]]), 4)  # a scattered, complete slab passes


def test_run_leaves_no_file_but_the_output(tmp_path, model, client):
    """The sink's copy, the dead-trace mask and the flags live in the run directory, gone once committed."""
    source, _ = _dead(tmp_path)
    before = set(os.listdir(tmp_path))
    run_distributed(source, tmp_path / "out.sgy", _config(model), client=client, slab_sections=3,
                    engine_factory=MixingFactory())
    assert set(os.listdir(tmp_path)) - before == {"out.sgy"}
