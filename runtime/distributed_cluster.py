"""The client side of the distributed runner: the cluster, its workers' engines, and the passes' submission."""

from __future__ import annotations

import logging
import os
import sys

from impeccable.core.errors import InputError, OutputError
from impeccable.runtime.distributed_plan import RunDir
from impeccable.runtime.distributed_worker import PLUGIN_NAME, EngineFactory, import_distributed, run_task

#: How long to try reaching a running scheduler (``--cluster tcp://...``).
CONNECT_TIMEOUT = "15s"


def start_client(cluster: str, workers: int | None = None, processes: bool = True):
    """A client of a running cluster (``tcp://HOST:PORT``) or of a new local one (``local``).

    The local cluster listens on 127.0.0.1 only: one worker per GPU through ``dask-cuda`` where it and a GPU
    exist, else ``workers`` single-threaded workers [default: the cores, halved for the engines' own threads].
    """
    distributed = import_distributed()
    if cluster != "local":
        before = _default_client(distributed)
        try:
            return distributed.Client(cluster, timeout=CONNECT_TIMEOUT)
        except ValueError as exc:  # not an address at all ("missing port number in address 'bogus'")
            _drop_half_made_client(distributed, before)
            raise InputError("--cluster is not a scheduler address", received=f"{cluster} ({exc})",
                             expected="local, or a scheduler's address such as tcp://10.0.0.5:8786",
                             todo="pass --cluster local, or the address `dask scheduler` printed") from exc
        except (OSError, TimeoutError) as exc:
            _drop_half_made_client(distributed, before)
            raise InputError("cannot reach the Dask scheduler", received=f"{cluster} ({exc})",
                             expected="a running `dask scheduler`", todo="start it, or pass --cluster local") from exc
    quiet_resource_tracker()
    # Workers log at CRITICAL only: closing a busy worker (a signal, a failed task) logs warnings such as "Async
    # instruction ... ended with CancelledError", and a task that fails logs "Compute Failed" with its traceback
    # at each retry (a full disk: three blocks); they would surround the command's own line. What goes wrong
    # reaches the user through the runner's errors.
    kwargs = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0", "processes": processes,
              "silence_logs": logging.CRITICAL}
    try:
        from dask_cuda import LocalCUDACluster  # one worker per GPU, each seeing its GPU as device 0
        from dask_cuda.utils import get_n_gpus

        if get_n_gpus() > 0:
            return distributed.Client(LocalCUDACluster(n_workers=workers, **kwargs))
    except (ImportError, RuntimeError, OSError):  # no dask-cuda, or no usable GPU: CPU workers
        pass
    n = workers or max(1, (os.cpu_count() or 2) // 2)
    return distributed.Client(distributed.LocalCluster(n_workers=n, threads_per_worker=1, **kwargs))


def _default_client(distributed):
    """The process's default dask client, or None."""
    try:
        return distributed.default_client()
    except ValueError:  # "No clients found"
        return None


def _drop_half_made_client(distributed, before) -> None:
    """Close the client a failed ``Client(address)`` registered as the process's default before it failed.

    Dask makes the new client the default before it connects; one that never connected stayed the default, and
    the caller's later dask computations (in the API's process, or the next test's) waited on it forever. A
    default client the caller had before is left alone.
    """
    left = _default_client(distributed)
    if left is not None and left is not before:
        left.close()


#: The warning filter the multiprocessing resource tracker's process is started with (see quiet_resource_tracker).
TRACKER_FILTER = "ignore:resource_tracker:UserWarning"


def quiet_resource_tracker() -> None:
    """Keep the resource tracker from warning about the local cluster's semaphores at exit.

    A local cluster ended by a signal leaves its nannies' queue semaphores registered; the tracker, a process
    of its own, then prints "There appear to be 1 leaked semaphore objects" after the command's one line. The
    operating system frees them anyway. The tracker takes its warning filters from ``sys.warnoptions`` when it
    starts, so the filter is added before the cluster creates any.
    """
    if TRACKER_FILTER not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_FILTER)


#: Engines whose CPU thread count can be set (``threads``).
THREADED_ENGINES = ("onnxruntime", "openvino")


def share_cores(factory, client):
    """On a CPU ``LocalCluster`` the workers share this machine's cores: give each engine its share.

    Each engine would otherwise take every physical core, and N workers would run N x cores threads.
    """
    import dataclasses

    if (not isinstance(factory, EngineFactory) or factory.name not in THREADED_ENGINES
            or "threads" in dict(factory.options) or type(client.cluster).__name__ != "LocalCluster"):
        return factory
    from impeccable.core.cpu import physical_cores

    share = max(1, physical_cores() // max(1, len(client.scheduler_info()["workers"])))
    return dataclasses.replace(factory, options=factory.options + (("threads", share),))


def dashboard_link(client) -> str | None:
    """The dashboard's address, where bokeh serves one."""
    import importlib.util

    return getattr(client, "dashboard_link", None) if importlib.util.find_spec("bokeh") else None


def engine_info(client) -> tuple[tuple[int, int], str]:
    """The engines' window and ``"name precision"``, asked of the workers (they must all agree on the window)."""

    def info(dask_worker=None) -> tuple[tuple[int, int], str]:
        engine = dask_worker.plugins[PLUGIN_NAME].engine
        return (tuple(int(n) for n in engine.window),
                f"{getattr(engine, 'name', type(engine).__name__)} {getattr(engine, 'precision', '')}".strip())

    answers = client.run(info).values()
    windows = {window for window, _ in answers}
    if len(windows) != 1:
        raise OutputError("the workers' engines disagree on the model window", received=str(sorted(windows)),
                          expected="one model on every worker", todo="give every worker the same model path")
    return windows.pop(), sorted(name for _, name in answers)[0]


class Passes:
    """Submits a pass's missing slabs, waits for them with a progress bar, records retries and results."""

    def __init__(self, client, run: RunDir, retries: int, bar):
        self.client, self.run, self.retries, self.bar = client, run, retries, bar
        self.resumed = 0
        self.retried = 0

    def pass_(self, kind: str, slabs, call, job_args) -> list[dict]:
        distributed = import_distributed()
        results: list[dict | None] = [self.run.done(kind, i) for i in range(len(slabs))]
        self.resumed += sum(r is not None for r in results)
        futures = {}
        for i, (start, stop) in enumerate(slabs):
            if results[i] is None:
                future = self.client.submit(run_task, str(self.run.path), kind, i, call, *job_args, start, stop,
                                            key=f"impeccable-{kind}-{i}-{os.getpid()}-{id(self)}",
                                            retries=self.retries, pure=False)
                futures[future] = i
        self.bar.set_description(kind)
        try:
            for future in distributed.as_completed(list(futures)):
                results[futures[future]] = future.result()
                self.bar.update(1)
        except BaseException:
            self.client.cancel(list(futures))
            raise
        self.retried += self._retries_used([f.key for f in futures])
        return results

    def _retries_used(self, keys: list[str]) -> int:
        if not keys:
            return 0

        def count(dask_scheduler, keys=keys, initial=self.retries):
            tasks = dask_scheduler.tasks
            return sum(initial - (tasks[k].retries or 0) for k in keys if k in tasks)

        return int(self.client.run_on_scheduler(count))
