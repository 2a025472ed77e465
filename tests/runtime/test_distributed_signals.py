"""``--cluster local`` ended by a signal: one line, exit 128 + signal, its cluster gone, its done slabs kept.

The CLI runs in a child process (``cluster_child.py``) in its own session, with one worker process listening on
127.0.0.1, whose engine holds a call once some slabs are done; the test signals the client, then checks the
exit code, the line, that no process of the session is left, the folder, and that ``--resume`` finishes the
run from the kept slabs with the single process's output, byte for byte.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
segyio = pytest.importorskip("segyio")

from fake_engines import MixingEngine  # noqa: E402
from impeccable.runtime.config import DenoiseConfig  # noqa: E402
from impeccable.runtime.distributed import run_distributed  # noqa: E402
from impeccable.runtime.distributed_plan import RunDir  # noqa: E402
from impeccable.runtime.pipeline import denoise_file  # noqa: E402
from impeccable.runtime.volumes.segy import create_segy  # noqa: E402

CHILD = Path(__file__).with_name("cluster_child.py")
WINDOW = (16, 48)  # cluster_child.py's: a (7, 11, 40) survey is one window per section


class _Factory:
    """The stand-in engine of cluster_child.py, without the hold (its identity: the name ``fake``)."""

    name = "fake"

    def __call__(self):
        return MixingEngine(WINDOW)


def _session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_ends_a_cluster_run_and_resume_finishes_it(tmp_path, sig):
    rng = np.random.default_rng(0)
    source = create_segy(tmp_path / "in.sgy", (rng.standard_normal((7, 11, 40)) * 100).astype(np.float32))
    model = tmp_path / "fake.onnx"
    model.write_bytes(b"stand-in model")
    output, ready = tmp_path / "out.sgy", tmp_path.parent / f"{tmp_path.name}.ready"
    # Batch 2 of one-window sections: one engine call per two-section slab; call 2 is the third slab's.
    args = [str(source), "-o", str(output), "--model", str(model), "--batch-size", "2", "--cluster", "local",
            "--workers", "1", "--slab-sections", "2", "--no-progress"]
    child = subprocess.Popen([sys.executable, str(CHILD), "2", str(ready), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the worker never reached its third engine call"
            time.sleep(0.1)
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    assert child.returncode == 128 + sig, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert errors[0].startswith(f"Error: interrupted by {signal.Signals(sig).name} | cluster closed")
    # nothing around the line: no worker's "CancelledError" warning, no resource tracker's "leaked semaphore"
    others = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("Error: ", "dashboard: "))]
    assert not others, stderr
    assert errors[0].endswith("rerun the same command with --resume")
    deadline = time.monotonic() + 10
    while _session_alive(child.pid) and time.monotonic() < deadline:  # the worker process, the nanny: gone
        time.sleep(0.1)
    assert not _session_alive(child.pid)
    run = RunDir(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.sgy", "fake.onnx", run.path.name])
    flags = {p.name for p in run.flags.glob("predict-inline-*.json")}
    assert len(flags) == 2 and (run.path / "output.sgy").is_file()
    assert not [p for p in run.path.rglob("*") if p.name.endswith(".tmp")]

    config = DenoiseConfig(model=model, batch_size=2, progress=False)
    denoise_file(source, tmp_path / "ref.sgy", config, engine=MixingEngine(WINDOW))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        report = run_distributed(source, output, config, client=client, slab_sections=2, resume=True,
                                 engine_factory=_Factory())
    assert report.sections == 7 - 4  # the two slabs done before the signal were not predicted again
    assert output.read_bytes() == (tmp_path / "ref.sgy").read_bytes()
