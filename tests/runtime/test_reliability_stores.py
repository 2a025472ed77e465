"""Issue 28: nothing lost, nothing misread on Zarr/MDIO stores, two cluster clients and SEG-Y writing.

In the style of test_reliability.py: each case the issue found, reproduced, then what must hold.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from fake_engines import MixingEngine

from impeccable.core.errors import InputError, OutputError
from impeccable.runtime.cli import main
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.pipeline import denoise_file
from impeccable.runtime.volumes.files import input_identity

zarr = pytest.importorskip("zarr")
WINDOW = (16, 64)
SHAPE = (6, 12, 40)


def _store(path, volume):
    array = zarr.create_array(store=str(path), shape=volume.shape, chunks=(2, volume.shape[1], volume.shape[2]),
                              dtype="float32")
    array[:] = volume
    return path


class OnFirstCall(MixingEngine):
    """The stand-in engine, doing ``action()`` at its first call (something another program does mid-run)."""

    def __init__(self, action):
        super().__init__(WINDOW)
        self.action, self.done = action, False

    def __call__(self, batch):
        if not self.done:
            self.done = True
            self.action()
        return super().__call__(batch)


def _config(**kw) -> DenoiseConfig:
    return DenoiseConfig(progress=False, batch_size=2, **kw)


def test_row1_a_second_cluster_client_is_refused_and_never_deletes_a_live_run(tmp_path, tiny_volume, client):
    """The first client holds its run directory; the second, even with --overwrite or --resume, is refused."""
    from impeccable.runtime.distributed import run_distributed
    from impeccable.runtime.distributed_plan import RunDir

    np.save(tmp_path / "in.npy", tiny_volume(SHAPE))
    out = tmp_path / "out.npy"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from impeccable.runtime.distributed_plan import RunDir; "
         "RunDir(sys.argv[1]).open({'first': 1}, False, False); print('ready', flush=True); time.sleep(600)",
         str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        record = (RunDir(out).path / "run.json").read_text()
        for flags in ({"overwrite": True}, {"resume": True}, {}):
            config = _config(overwrite=flags.get("overwrite", False))
            with pytest.raises(InputError, match="another client is running this output now"):
                run_distributed(tmp_path / "in.npy", out, config, client=client, resume=flags.get("resume", False),
                                engine_factory=lambda: MixingEngine(WINDOW))
            assert (RunDir(out).path / "run.json").read_text() == record  # the live run's state untouched
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder is dead: its state is an interrupted run's, which --overwrite replaces.
    with pytest.raises(InputError, match="an interrupted run of this output exists"):
        run_distributed(tmp_path / "in.npy", out, _config(), client=client, engine_factory=lambda: MixingEngine(WINDOW))
    run_distributed(tmp_path / "in.npy", out, _config(overwrite=True), client=client,
                    engine_factory=lambda: MixingEngine(WINDOW))
    ref = tmp_path / "ref.npy"
    denoise_file(tmp_path / "in.npy", ref, _config(), engine=MixingEngine(WINDOW))
    assert np.array_equal(np.load(out), np.load(ref)) and not RunDir(out).path.exists()


@pytest.mark.parametrize("what", ["directory", "file"])
def test_row2_a_store_appearing_at_the_output_survives_untouched(tmp_path, tiny_volume, what):
    source = _store(tmp_path / "in.zarr", tiny_volume(SHAPE))
    out = tmp_path / "out.zarr"

    def appear():
        if what == "directory":
            out.mkdir()
            (out / "theirs.txt").write_text("theirs")
        else:
            out.write_text("theirs")

    with pytest.raises(OutputError, match="output appeared during the run"):
        denoise_file(source, out, _config(), engine=OnFirstCall(appear))
    theirs = out / "theirs.txt" if what == "directory" else out
    assert theirs.read_text() == "theirs"
    kept = [p.name for p in tmp_path.iterdir() if p.name.startswith("out.") and p.name != "out.zarr"]
    assert kept == [f"out.{os.getpid()}.zarr"]  # the finished result, beside it, visible
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no hidden temporary left


@pytest.mark.parametrize("change", ["rewrite", "delete"])
def test_row3_a_zarr_input_changed_mid_run_fails_in_one_line_and_writes_nothing(tmp_path, tiny_volume, change):
    source = _store(tmp_path / "in.zarr", tiny_volume(SHAPE))
    chunk = sorted(p for p in (source / "c").rglob("*") if p.is_file())[0]

    def edit():
        if change == "delete":
            chunk.unlink()
        else:  # the same bytes written again: a new modification time, as a rewrite in place gives
            data = chunk.read_bytes()
            time.sleep(0.01)
            chunk.write_bytes(data)

    before = input_identity(source)
    with pytest.raises(InputError, match="input changed during the run; nothing was written"):
        denoise_file(source, tmp_path / "out.zarr", _config(), engine=OnFirstCall(edit))
    assert input_identity(source) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr"]


@pytest.mark.parametrize("change", ["rewrite", "delete"])
def test_row3_on_the_cluster_too(tmp_path, tiny_volume, client, change):
    """The same edits on a cluster run (the workers read the chunks): refused at the commit, nothing written."""
    from impeccable.runtime.distributed import run_distributed

    source = _store(tmp_path / "in.zarr", tiny_volume(SHAPE))
    chunk = sorted(p for p in (source / "c").rglob("*") if p.is_file())[-1]
    data, stamp = chunk.read_bytes(), chunk.stat().st_mtime_ns

    def edit():  # each worker's engine is a copy of this closure: idempotent
        if change == "delete":
            chunk.unlink(missing_ok=True)
        else:
            time.sleep(0.01)
            chunk.write_bytes(data)

    out = tmp_path / "out.zarr"
    with pytest.raises(InputError, match="input changed during the run; nothing was written"):
        run_distributed(source, out, _config(), client=client, engine_factory=lambda: OnFirstCall(edit))
    assert (not chunk.exists()) if change == "delete" else chunk.stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr"]  # no run state: it could never be resumed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out.")]


@pytest.mark.parametrize("cluster", [[], ["--cluster", "local"]])
def test_row4_an_output_inside_the_input_store_is_refused_at_once(tmp_path, tiny_volume, cluster):
    source = _store(tmp_path / "in.zarr", tiny_volume(SHAPE))
    before = input_identity(source)
    result = CliRunner().invoke(main, [str(source), "-o", str(source / "out.zarr"), "--no-progress", *cluster])
    assert result.exit_code == 1 and result.output.count("Error: output inside the input store") == 1
    assert input_identity(source) == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr"]


def test_row5_a_dead_runs_temporary_store_is_removed_by_the_next_run(tmp_path, tiny_volume):
    from impeccable.core.atomic import temp_path

    source = _store(tmp_path / "in.zarr", tiny_volume(SHAPE))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = temp_path(tmp_path / "out.zarr", tag="store")
    stale = stale.with_name(stale.name.replace(f".{os.getpid()}.", f".{pid}."))
    _store(stale, tiny_volume(SHAPE))  # what a SIGKILLed run leaves
    report = denoise_file(source, tmp_path / "out.zarr", _config(), engine=MixingEngine(WINDOW))
    assert report.stale_removed == (stale,) and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.zarr"]


def test_row7_create_segy_leaves_the_callers_array_alone(tmp_path, tiny_volume):
    pytest.importorskip("segyio")
    from impeccable.runtime.volumes.segy import create_segy

    volume = tiny_volume(SHAPE)
    copy = volume.copy()
    create_segy(tmp_path / "ibm.sgy", volume, sample_format=1)
    assert np.array_equal(volume, copy)
