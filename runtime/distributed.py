"""Survey scale: the single-process pipeline's passes as ``dask.distributed`` tasks, one per slab (DESIGN §8).

The passes are the pipeline's own functions, run per slab of whole sections, so the output equals
:func:`impeccable.runtime.pipeline.denoise_file` bit for bit with the same engine:

1. statistics: :func:`~impeccable.runtime.pipeline.reader_stats` per inline slab, min/max reduced here;
2. predictions: :func:`~impeccable.runtime.pipeline.predict_volume` per inline slab (and per crossline slab for
   ``--views crossline/both``) into float32 Zarr scratch arrays; slabs hold whole engine batches, so every
   engine call carries the sections the single process gives it;
3. amplitude fit: :func:`~impeccable.runtime.calibrate.block_sums` per inline slab (per-inline sums, added
   exactly with ``math.fsum``, so the fit does not depend on the partition);
4. output: :func:`~impeccable.runtime.calibrate.output_block` per inline slab written into the temporary
   output (each task owns its chunks), with the QC rows, merged here.

The engine is built once per worker by the plugin of :func:`make_plugin` from the model's path (never shipped in tasks).
Tasks are submitted with ``retries``; a worker that dies has its tasks recomputed elsewhere by the scheduler;
each slab leaves a done-flag (:class:`~impeccable.runtime.distributed_plan.RunDir`) so ``--resume`` computes only
what is missing. The output is moved to its final path only when every slab is done.

Formats: ``.npy`` (a preallocated temporary ``.npy`` that tasks fill through memory maps: a shared filesystem),
Zarr / MDIO, and SEG-Y on a shared filesystem: the client copies the input once into the run directory (every
header byte kept, as the single-process writer does), each write task opens that copy itself and writes the
traces of its own inlines' cells (:class:`~impeccable.runtime.volumes.segy.TraceWriter`; the planner proves
that no two tasks write one trace, :func:`~impeccable.runtime.distributed_plan.check_trace_ownership`). HDF5 is
refused (one writer).

SEG-Y geometry and dead traces: each worker infers the grid from the trace headers itself (the same function on
the same file gives the same grid; shipping the ``(inline, crossline)`` trace index, 8 bytes a cell, would cost
more than reading four header words), and checks it against the client's digest. All-zero (dead) traces are
found only as samples are read, so the statistics tasks return the dead traces of their slabs, the client
merges them into one ``(inline, crossline)`` mask in the run directory, and every later task's reader takes it
(:meth:`~impeccable.runtime.volumes.segy.SegyReader.mark_dead`): each task then sees the complete mask the single
process has after its statistics pass, so dead traces stay out of the fit and are written as zeros alike.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from impeccable.core.amplitude import VolumeStats, merge_stats
from impeccable.core.calibration import AmplitudeFit
from impeccable.core.errors import ImpeccableError, InputError, OutputError
from impeccable.core.qc import QualityControl, leakage_inlines
from impeccable.runtime.calibrate import block_sums, live_rows, output_block
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.distributed_plan import (Plan, RunDir, check_trace_ownership, input_identity, make_plan,
                                                 model_identity)
from impeccable.runtime.volumes.npy import MappedVolume
from impeccable.runtime.volumes import open_reader

PLUGIN_NAME = "impeccable-engine"
#: How long to try reaching a running scheduler (``--cluster tcp://...``).
CONNECT_TIMEOUT = "15s"
#: SEG-Y extensions (a shared filesystem: tasks write their traces into one temporary copy of the input).
SEGY_FORMATS = (".sgy", ".segy")
#: Formats the distributed runner writes (each task writes its own inlines).
CLUSTER_FORMATS = (".npy", ".zarr", ".mdio", *SEGY_FORMATS)


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise InputError("--cluster needs dask.distributed", received=str(exc), expected="dask[distributed], zarr",
                         todo="pip install 'impeccable[distributed]'") from exc
    return distributed


@dataclass(frozen=True)
class EngineFactory:
    """A picklable recipe for the engine: what each worker builds once (the model is read by path there)."""

    name: str
    model: str
    batch_size: int
    options: tuple[tuple[str, object], ...] = ()

    def __call__(self):
        from impeccable.runtime.engines import create_engine

        return create_engine(self.name, self.model, batch_size=self.batch_size, **dict(self.options))

    @classmethod
    def from_config(cls, config: DenoiseConfig) -> EngineFactory:
        return cls(config.resolved_engine(), str(config.resolved_model()),
                   config.batch_size * (2 if config.tta else 1), tuple(sorted(config.engine_options.items())))


def make_plugin(factory):
    """A ``distributed.WorkerPlugin`` that builds ``factory()`` once per worker (and opens inputs once)."""
    distributed = _import_distributed()

    class _EnginePlugin(distributed.WorkerPlugin):
        name = PLUGIN_NAME

        def __init__(self, factory):
            self.factory = factory
            self.engine = None
            self.readers: dict = {}
            self.dead: dict = {}

        def setup(self, worker) -> None:
            self.engine = self.factory()

        def teardown(self, worker) -> None:
            if self.engine is not None:
                self.engine.close()
            for reader in self.readers.values():
                reader.close()
            self.engine, self.readers = None, {}

        def reader(self, job: Job):
            # segyio promises no thread safety for one handle (it has one file position), and the reader's
            # dead-trace mask grows as it reads: each task thread of a worker gets its own SEG-Y reader.
            # The input's stamp is in the key: a rewritten file is opened afresh.
            thread = threading.get_ident() if Path(job.input).suffix.lower() in SEGY_FORMATS else None
            key = (job.input, job.time_axis, job.dataset, job.segy, job.stamp, thread)
            if key not in self.readers:
                reader = open_reader(job.input, time_axis=job.time_axis, dataset=job.dataset, segy=dict(job.segy))
                if job.geometry is not None and geometry_digest(reader) != job.geometry:
                    reader.close()
                    raise InputError("a worker sees another SEG-Y geometry than the client", received=job.input,
                                     expected="the client's file, on a filesystem every worker shares",
                                     todo="give every worker the same file (a shared filesystem)")
                self.readers[key] = reader
            reader = self.readers[key]
            if job.dead is not None and self.dead.get(key) != job.dead:
                reader.mark_dead(np.load(job.dead, allow_pickle=False))
                self.dead[key] = job.dead
            return reader

    return _EnginePlugin(factory)


@dataclass(frozen=True)
class Job:
    """What every task needs, picklable: paths, settings, and the results of the earlier passes.

    ``segy``: the SEG-Y header bytes; ``stamp``: the input's identity; ``geometry``: the digest of the client's
    SEG-Y grid (:func:`geometry_digest`); ``dead``: the run's merged dead-trace mask (a ``.npy`` path).
    """

    input: str
    time_axis: int | str
    dataset: str | None
    config: DenoiseConfig
    run: str
    views: tuple[str, ...]
    sink: str
    shape: tuple[int, int, int]
    segy: tuple[tuple[str, object], ...] = ()
    stamp: tuple = ()
    geometry: str | None = None
    dead: str | None = None
    stats: VolumeStats | None = None
    fit: AmplitudeFit | None = None
    unit_range: tuple[float, float] = (0.0, 1.0)


class SubVolume:
    """A reader seen through a range of its inlines or crosslines: ``(inline, crossline, sample)`` float32."""

    def __init__(self, reader, inlines: tuple[int, int] | None = None, crosslines: tuple[int, int] | None = None):
        self.reader = reader
        self.il = inlines or (0, reader.shape[0])
        self.xl = crosslines or (0, reader.shape[1])
        self.shape = (self.il[1] - self.il[0], self.xl[1] - self.xl[0], reader.shape[2])
        self.path, self.dtype = reader.path, reader.dtype
        self.fill = getattr(reader, "fill", "mirror")

    @staticmethod
    def _shift(index: slice, base: tuple[int, int]) -> slice:
        start, stop, _ = index.indices(base[1] - base[0])
        return slice(base[0] + start, base[0] + stop)

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        return self.reader.read(inlines=self._shift(inlines, self.il), crosslines=self._shift(crosslines, self.xl))

    @property
    def live_mask(self) -> np.ndarray | None:
        live = getattr(self.reader, "live_mask", None)
        return None if live is None else live[self.il[0]:self.il[1], self.xl[0]:self.xl[1]]

    def close(self) -> None:
        """The parent reader stays open."""


class _SlabBuffer:
    """Collects a slab's unit predictions (``put`` as the pipeline's stores) in canonical order."""

    def __init__(self, shape: tuple[int, int, int]):
        self.array = np.zeros(shape, dtype=np.float32)

    def put(self, view: str, start: int, stop: int, pred: np.ndarray) -> None:
        if view == "inline":
            self.array[start:stop] = pred
        else:
            self.array[:, start:stop] = pred.transpose(1, 0, 2)


def _scratch_path(run: str, view: str) -> str:
    return str(Path(run) / f"scratch-{view}.zarr")


def _plugin():
    worker = _import_distributed().get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.engine is None:
        raise OutputError("worker has no engine", received=worker.address, expected="the impeccable plugin",
                          todo="register make_plugin(factory) (run_distributed does) before submitting tasks")
    return worker, plugin


def _unit(job: Job, start: int, stop: int) -> np.ndarray:
    """Unit predictions of inlines ``start:stop`` as the pipeline's scratch holds them (views averaged)."""
    from impeccable.runtime.volumes.zarr import open_for_region_writes

    parts = [np.asarray(open_for_region_writes(_scratch_path(job.run, v), None)[start:stop]) for v in job.views]
    if len(parts) == 1:
        return parts[0]
    # The pipeline stores the inline pass, then (inline + crossline) * 0.5 in float32: the same operations.
    out = np.add(parts[0], parts[1])
    out *= np.float32(0.5)
    return out


def geometry_digest(reader) -> str | None:
    """SHA-256 of a SEG-Y reader's grid (kind, line numbers, trace index), None for other formats."""
    geometry = getattr(reader, "geometry", None)
    if geometry is None:
        return None
    digest = hashlib.sha256(geometry.kind.encode())
    for array in (geometry.ilines, geometry.xlines, geometry.index):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _pack(mask: np.ndarray) -> str:
    return base64.b64encode(np.packbits(mask, axis=None).tobytes()).decode("ascii")


def _unpack(text: str, shape: tuple[int, int]) -> np.ndarray:
    bits = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    return np.unpackbits(bits, count=shape[0] * shape[1]).astype(bool).reshape(shape)


def task_stats(job: Job, start: int, stop: int) -> dict:
    """Pass 1 on inlines ``start:stop``: min/max/non-finite count with the pipeline's rule (and dead traces)."""
    from impeccable.runtime.pipeline import reader_stats_part

    _, plugin = _plugin()
    reader = plugin.reader(job)
    part = reader_stats_part(SubVolume(reader, inlines=(start, stop)))
    dead = getattr(reader, "dead_mask", None)
    if dead is not None:  # complete for these inlines now: every one of their traces was read
        part["dead"] = _pack(dead[start:stop])
    return part


def task_predict(job: Job, view: str, start: int, stop: int) -> dict:
    """Pass 2: unit predictions of sections ``start:stop`` of ``view`` into that view's scratch array."""
    from impeccable.runtime.pipeline import predict_volume
    from impeccable.runtime.volumes.zarr import open_for_region_writes

    worker, plugin = _plugin()
    t0 = time.perf_counter()
    reader = plugin.reader(job)
    sub = SubVolume(reader, inlines=(start, stop)) if view == "inline" else SubVolume(reader, crosslines=(start, stop))
    buffer = _SlabBuffer(sub.shape)
    config = replace(job.config, views=view, progress=False)
    sections, images, engine_s = predict_volume(sub, plugin.engine, buffer, config, job.stats)
    scratch = open_for_region_writes(_scratch_path(job.run, view), None)
    if view == "inline":
        scratch[start:stop] = buffer.array
    else:
        scratch[:, start:stop] = buffer.array
    return {"worker": worker.address, "sections": sections, "images": images, "engine_s": engine_s,
            "seconds": time.perf_counter() - t0}


def task_fit(job: Job, start: int, stop: int) -> dict:
    """Pass 3: the amplitude fit's per-inline sums and the unit field's range of inlines ``start:stop``."""
    _, plugin = _plugin()
    reader = plugin.reader(job)
    sums, lo, hi = block_sums(reader.read(inlines=slice(start, stop)), _unit(job, start, stop), job.stats,
                              job.config.strength, live_rows(reader, start, stop))
    return {"sums": sums.tolist(), "lo": lo, "hi": hi}


def _write_sink(job: Job, start: int, stop: int, block: np.ndarray, reader) -> None:
    reader_time_axis = job.time_axis
    if Path(job.sink).suffix.lower() in SEGY_FORMATS:
        from impeccable.runtime.volumes.segy import TraceWriter

        with TraceWriter(Path(job.sink), reader, block.dtype) as out:
            out.write(slice(start, stop), block)
        _fsync(job.sink)
        return
    if job.sink.endswith(".npy"):
        array = np.load(job.sink, mmap_mode="r+", allow_pickle=False)
        MappedVolume(array, reader_time_axis).write((slice(start, stop), slice(None), slice(None)), block)
        array.flush()
        return
    from impeccable.runtime.volumes.zarr import open_for_region_writes, stored_index

    array = open_for_region_writes(Path(job.sink), job.dataset)
    array[stored_index(reader_time_axis, slice(start, stop), slice(None))] = (
        np.moveaxis(block, -1, 0) if reader_time_axis == 0 else block)


def task_write(job: Job, start: int, stop: int) -> dict:
    """Pass 4: inlines ``start:stop`` of the output written into the temporary output, and their QC rows."""
    _, plugin = _plugin()
    reader = plugin.reader(job)
    inputs = reader.read(inlines=slice(start, stop))
    live = live_rows(reader, start, stop)
    written, in_units = output_block(inputs, _unit(job, start, stop), job.fit, job.stats, job.config.scale,
                                     job.config.strength, job.unit_range, live)
    _write_sink(job, start, stop, written, reader)
    qc = QualityControl(mean=job.fit.mean, sampled=leakage_inlines(job.shape[0]))
    qc.add(start, inputs, in_units, live)
    return {"rows": np.concatenate(qc.rows).tolist(),
            "similarity": [[k, v[0], v[1]] for k, v in qc.similarity.items()]}


def _fsync(path: str) -> None:
    """Flush a file to disk: its done-flag, written next, must never outlive the data it vouches for."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _task(run_path: str, kind: str, index: int, call, *args) -> dict:
    """Run a task body, then leave its done-flag (after its data, so a flag always means "written")."""
    result = call(*args)
    RunDir.at(Path(run_path)).mark(kind, index, result)
    return result


@dataclass
class DistributedReport:
    """What a distributed run did.

    Attributes:
        output: The written output.
        sections: Sections predicted in this attempt (all views).
        total_s: Wall seconds.
        slabs: Tasks per pass.
        resumed: Slabs an earlier attempt had done (all passes), not recomputed.
        retries: Task retries the scheduler made.
        workers: Per worker: sections, seconds inside its prediction tasks, sections/s.
        stats: The input's statistics.
        fit: The amplitude fit (as the pipeline's report).
        qc: The QC figures.
        dashboard: The dashboard's address, if any.
    """

    output: Path
    sections: int
    total_s: float
    slabs: dict
    resumed: int
    retries: int
    workers: dict
    stats: VolumeStats
    fit: dict = field(default_factory=dict)
    qc: dict = field(default_factory=dict)
    dashboard: str | None = None

    @property
    def sections_per_s(self) -> float:
        return self.sections / self.total_s if self.total_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {"output": str(self.output), "sections": self.sections, "total_s": self.total_s,
                "sections_per_s": self.sections_per_s, "slabs": self.slabs, "resumed": self.resumed,
                "retries": self.retries, "workers": self.workers, "dashboard": self.dashboard,
                "input": {"min": self.stats.vmin, "max": self.stats.vmax, "nonfinite": self.stats.nonfinite},
                "amplitude_fit": self.fit, "qc": self.qc}


def start_client(cluster: str, workers: int | None = None, processes: bool = True):
    """A client of a running cluster (``tcp://HOST:PORT``) or of a new local one (``local``).

    The local cluster listens on 127.0.0.1 only: one worker per GPU through ``dask-cuda`` where it and a GPU
    exist, else ``workers`` single-threaded workers [default: the cores, halved for the engines' own threads].
    """
    distributed = _import_distributed()
    if cluster != "local":
        try:
            return distributed.Client(cluster, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise InputError("cannot reach the Dask scheduler", received=f"{cluster} ({exc})",
                             expected="a running `dask scheduler`", todo="start it, or pass --cluster local") from exc
    kwargs = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0", "processes": processes}
    try:
        from dask_cuda import LocalCUDACluster  # one worker per GPU, each seeing its GPU as device 0
        from dask_cuda.utils import get_n_gpus

        if get_n_gpus() > 0:
            return distributed.Client(LocalCUDACluster(n_workers=workers, **kwargs))
    except (ImportError, RuntimeError, OSError):  # no dask-cuda, or no usable GPU: CPU workers
        pass
    n = workers or max(1, (os.cpu_count() or 2) // 2)
    return distributed.Client(distributed.LocalCluster(n_workers=n, threads_per_worker=1, **kwargs))


#: Engines whose CPU thread count can be set (``threads``).
THREADED_ENGINES = ("onnxruntime", "openvino")


def _share_cores(factory, client):
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


def _check_formats(input_path: Path, output: Path) -> None:
    ext = input_path.suffix.lower()
    if ext in (".h5", ".hdf5"):
        raise InputError("HDF5 cannot be written by many workers at once (one writer)", received=input_path.name,
                         expected="npy, zarr or SEG-Y with --cluster", todo="run without --cluster, or convert to Zarr")
    if ext not in CLUSTER_FORMATS:
        raise InputError("this format is not supported with --cluster yet", received=input_path.name,
                         expected=" or ".join(CLUSTER_FORMATS), todo="run without --cluster, or convert to Zarr")
    if output.suffix.lower() != ext:
        raise OutputError("output format differs from the input's", received=output.suffix or output.name,
                          expected=ext, todo=f"name the output *{ext}")


def _identity(input_path: Path, config: DenoiseConfig, factory, plan: Plan) -> dict:
    settings = {"engine": getattr(factory, "name", type(factory).__name__), "tta": config.tta,
                "views": config.views, "batch_size": config.batch_size, "scale": config.scale,
                "strength": config.strength, "time_axis": config.time_axis, "dataset": config.dataset,
                "segy": config.segy_options() if input_path.suffix.lower() in SEGY_FORMATS else None,
                "engine_options": {k: str(v) for k, v in sorted(config.engine_options.items())}}
    return {"input": input_identity(input_path), "model": model_identity(config.resolved_model()),
            "settings": settings, "plan": plan.as_dict()}


class _Passes:
    """Submits a pass's missing slabs, waits for them with a progress bar, records retries and results."""

    def __init__(self, client, run: RunDir, retries: int, bar):
        self.client, self.run, self.retries, self.bar = client, run, retries, bar
        self.resumed = 0
        self.retried = 0

    def pass_(self, kind: str, slabs, call, job_args) -> list[dict]:
        distributed = _import_distributed()
        results: list[dict | None] = [self.run.done(kind, i) for i in range(len(slabs))]
        self.resumed += sum(r is not None for r in results)
        futures = {}
        for i, (start, stop) in enumerate(slabs):
            if results[i] is None:
                future = self.client.submit(_task, str(self.run.path), kind, i, call, *job_args, start, stop,
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


def run_distributed(input_path: str | Path, output: str | Path, config: DenoiseConfig, client=None,
                    engine_factory=None, resume: bool = False, retries: int = 2,
                    slab_sections: int | None = None, announce=None) -> DistributedReport:
    """Denoise a ``.npy``, SEG-Y or Zarr volume on a Dask cluster; the output equals :func:`denoise_file`'s.

    Args:
        input_path: The input (``.npy`` or SEG-Y on a filesystem every worker sees, or a ``.zarr`` store).
        output: The output path (same format); a run directory ``.<name>.impeccable-run`` beside it holds
            the attempt's state until the output is committed.
        config: Run settings (``config.cluster`` / ``config.workers`` when ``client`` is None).
        client: A ``distributed.Client`` [default: from ``config.cluster``, closed at the end].
        engine_factory: Picklable callable building the engine on each worker [default:
            :class:`EngineFactory` from the config].
        resume: Finish an interrupted attempt (refused when the input, model or settings changed).
        retries: Retries of a failing task.
        slab_sections: Sections per task [default: 256 MiB of float32 sections,
            :func:`~impeccable.runtime.distributed_plan.default_slab_sections`].
        announce: Called with lines worth showing at the start (the dashboard's address).

    Raises:
        ImpeccableError: Bad input, output, model or engine, or a task that failed past its retries; the
            output path is untouched and the run directory kept for ``--resume``.
    """
    from tqdm import tqdm

    from impeccable.runtime.pipeline import _check_output, _check_views, sections_per_batch

    t0 = time.perf_counter()
    input_path, output = Path(input_path), Path(output)
    _check_formats(input_path, output)
    _check_output(output, config.overwrite, input_path)
    factory = engine_factory or EngineFactory.from_config(config)
    reader = open_reader(input_path, time_axis=config.time_axis, dataset=config.dataset, segy=config.segy_options())
    segy = input_path.suffix.lower() in SEGY_FORMATS
    views = ("inline", "crossline") if config.views == "both" else (config.views,)
    own_client = client is None
    client = None if own_client else client
    run = RunDir(output)
    opened = committed = False
    try:
        _check_views(config, getattr(reader, "views", None))
        if own_client:
            client = start_client(config.cluster or "local", config.workers)
            factory = _share_cores(factory, client)
        dashboard = _dashboard(client)
        if announce is not None:
            served = dashboard or "not served (pip install bokeh)"
            announce(f"dashboard: {served}; scheduler {client.scheduler.address}")
        client.register_plugin(make_plugin(factory), name=PLUGIN_NAME)
        window = _window(client)
        steps = {v: sections_per_batch(reader, v, window, config.batch_size) for v in views}
        chunk = 1
        if input_path.suffix.lower() in (".zarr", ".mdio"):  # .npy, SEG-Y: any inline boundary is one
            from impeccable.runtime.volumes.zarr import section_chunks

            chunk = section_chunks(tuple(reader.shape), reader.chunks)[0]
        plan = make_plan(tuple(reader.shape), views, steps, chunk, slab_sections)
        if segy:
            check_trace_ownership(plan.inline, reader.geometry.index, reader.tracecount)
        identity = _identity(input_path, config, factory, plan)
        resumed_run = run.open(identity, resume, config.overwrite)
        opened = True
        sink = _create_sink(run, reader, input_path, output, config, resumed_run, chunk)
        _create_scratch(run, reader.shape, views, plan, resumed_run)
        job = Job(str(input_path), getattr(reader, "time_axis", config.time_axis),
                  getattr(reader, "dataset", config.dataset),  # resolved: a group's only volume, MDIO's amplitude
                  replace(config, progress=False, preview=None), str(run.path), views, str(sink),
                  tuple(reader.shape), segy=tuple(sorted(config.segy_options().items())) if segy else (),
                  stamp=tuple(sorted(identity["input"].items())), geometry=geometry_digest(reader))
        total = len(plan.inline) * 4 + len(plan.crossline)
        with tqdm(total=total, unit="slab", disable=not config.progress, leave=False) as bar:
            passes = _Passes(client, run, retries, bar)
            bar.update(0)
            parts = passes.pass_("stats", plan.inline, task_stats, (job,))
            stats = merge_stats(parts)
            stats.check_not_constant()
            job = replace(job, stats=stats, dead=_merge_dead(run, reader, plan, parts) if segy else None)
            done_predictions = []
            for view in views:
                slabs = plan.inline if view == "inline" else plan.crossline
                kind = f"predict-{view}"
                fresh = [i for i in range(len(slabs)) if run.done(kind, i) is None]
                results = passes.pass_(kind, slabs, functools.partial(task_predict, job, view), ())
                done_predictions += [results[i] for i in fresh]
            parts = passes.pass_("fit", plan.inline, task_fit, (job,))
            fit = AmplitudeFit.from_sums(np.concatenate([np.asarray(p["sums"], dtype=np.float64).reshape(-1, 6)
                                                         for p in parts]), stats)
            unit_range = (min(p["lo"] for p in parts), max(p["hi"] for p in parts))
            job = replace(job, fit=fit, unit_range=unit_range)
            parts = passes.pass_("write", plan.inline, task_write, (job,))
        qc = QualityControl(mean=fit.mean, sampled=leakage_inlines(reader.shape[0]))
        for p in parts:
            qc.rows.append(np.asarray(p["rows"], dtype=np.float64).reshape(-1, 4))
            qc.similarity.update({int(k): (float(s), int(n)) for k, s, n in p["similarity"]})
        if input_identity(input_path) != identity["input"]:
            raise InputError("input changed during the run; nothing was written", received=str(input_path),
                             expected="an input nobody writes while it is denoised",
                             todo="rerun with --overwrite once the file is complete")
        if config.preview is not None:  # first: a failing preview leaves no output, as in one process
            _draw_preview(reader, output, config, job)
        try:
            _commit(run, sink, output, config.overwrite)
        except BaseException:
            if config.preview is not None:
                Path(config.preview).unlink(missing_ok=True)
            raise
        committed = True
    except OSError as exc:
        raise OutputError("I/O failed in the distributed run", received=f"{exc.strerror or exc}: "
                          f"{exc.filename or ''}", expected="readable input and room beside the output",
                          todo=f"fix it, then rerun with --resume (state in {run.path})") from exc
    except ImpeccableError:
        raise
    except KeyboardInterrupt:  # a signal (core.cli.Interrupted): the cluster closes below, the command says so
        import logging

        # Closing workers that are busy in a call logs warnings ("still alive after 4.0 seconds, killing"):
        # the command's own line says what happened.
        logging.getLogger("distributed").setLevel(logging.ERROR)
        raise
    except Exception as exc:  # a task that failed past its retries, a lost scheduler...
        raise OutputError("the distributed run failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          expected="every slab done", todo=f"fix the cause, then rerun with --resume "
                                                           f"(state in {run.path})") from exc
    finally:
        if opened and not committed and not any(run.flags.glob("predict-*")):
            run.remove()  # nothing costly was done (a constant volume, a failing engine): leave no state
        reader.close()
        if own_client and client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    workers: dict = defaultdict(lambda: {"sections": 0, "seconds": 0.0})
    for p in done_predictions:
        workers[p["worker"]]["sections"] += p["sections"]
        workers[p["worker"]]["seconds"] += p["seconds"]
    for w in workers.values():
        w["sections_per_s"] = w["sections"] / w["seconds"] if w["seconds"] > 0 else 0.0
    return DistributedReport(output, sum(p["sections"] for p in done_predictions), time.perf_counter() - t0,
                             {"inline": len(plan.inline), "crossline": len(plan.crossline)}, passes.resumed,
                             passes.retried, dict(workers), stats, fit.as_dict(stats), qc.report(), dashboard)


def _draw_preview(reader, output: Path, config: DenoiseConfig, job: Job) -> None:
    """The single process's ``--preview``, drawn here from the run's own results.

    The middle inline of the output in the input's units is recomputed on the client from the input and the
    scratch predictions with the write tasks' own function (one inline: a few reads), rather than read back
    from the output, whose ``unit`` / ``uint8`` scale or SEG-Y sample format (IBM float, integers) is not the
    input's units: the picture is the single process's, whatever the scale and format.
    """
    from impeccable.runtime.pipeline import _preview

    mid = reader.shape[0] // 2
    inputs = reader.read(inlines=slice(mid, mid + 1))
    _, in_units = output_block(inputs, _unit(job, mid, mid + 1), job.fit, job.stats, job.config.scale,
                               job.config.strength, job.unit_range, live_rows(reader, mid, mid + 1))
    _preview(reader, output, config, in_units, mid)


def _dashboard(client) -> str | None:
    """The dashboard's address, where bokeh serves one."""
    import importlib.util

    return getattr(client, "dashboard_link", None) if importlib.util.find_spec("bokeh") else None


def _window(client) -> tuple[int, int]:
    """The engines' window, asked of the workers (they must all agree)."""

    def window(dask_worker=None) -> tuple[int, int]:
        return tuple(int(n) for n in dask_worker.plugins[PLUGIN_NAME].engine.window)

    windows = set(client.run(window).values())
    if len(windows) != 1:
        raise OutputError("the workers' engines disagree on the model window", received=str(sorted(windows)),
                          expected="one model on every worker", todo="give every worker the same model path")
    return windows.pop()


def _merge_dead(run: RunDir, reader, plan: Plan, parts: list[dict]) -> str:
    """The statistics tasks' dead traces as one ``(inline, crossline)`` bool mask in the run directory."""
    dead = np.zeros(reader.shape[:2], dtype=bool)
    for (start, stop), part in zip(plan.inline, parts):
        dead[start:stop] = _unpack(part["dead"], (stop - start, reader.shape[1]))
    reader.mark_dead(dead)
    path = run.path / "dead.npy"
    tmp = run.path / f".dead.{os.getpid()}.npy"
    np.save(tmp, dead, allow_pickle=False)
    os.replace(tmp, path)  # whole or absent, as every file of the run directory
    return str(path)


def _create_sink(run: RunDir, reader, input_path: Path, output: Path, config: DenoiseConfig, resumed: bool,
                 chunk: int) -> Path:
    """The temporary output in the run directory (kept by a resumed attempt)."""
    dtype = np.dtype(np.uint8 if config.scale == "uint8" else np.float32)
    if input_path.suffix.lower() in SEGY_FORMATS:
        from impeccable.runtime.volumes.segy import TraceWriter, copy_input

        path = run.path / f"output{input_path.suffix.lower()}"
        if not (resumed and path.is_file()):
            tmp = run.path / f".output.{os.getpid()}.tmp"
            copy_input(reader, tmp, output.name)
            os.replace(tmp, path)  # a copy cut short is never taken for the sink by --resume
        TraceWriter(path, reader, dtype).close()  # values the sample format cannot hold: refused before any work
        return path
    if input_path.suffix.lower() == ".npy":
        path = run.path / "output.npy"
        if not (resumed and path.is_file()):
            np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(reader.stored_shape)).flush()
        return path
    from impeccable.runtime.volumes.zarr import create_like

    path = run.path / f"output{input_path.suffix.lower()}"
    if not (resumed and path.is_dir()):
        create_like(path, reader, dtype, chunks=(chunk, reader.shape[1], reader.shape[2]))
    return path


def _create_scratch(run: RunDir, shape, views, plan: Plan, resumed: bool) -> None:
    """Float32 unit-prediction scratch per view, chunked so that each task of every pass owns whole chunks."""
    import zarr

    inline_len = plan.inline[0][1] - plan.inline[0][0]
    for view in views:
        path = Path(_scratch_path(str(run.path), view))
        if resumed and path.is_dir():
            continue
        chunks = ((inline_len, shape[1], shape[2]) if view == "inline"
                  else (inline_len, plan.crossline[0][1] - plan.crossline[0][0], shape[2]))
        zarr.create_array(store=str(path), shape=tuple(shape), dtype="float32", chunks=chunks, fill_value=0,
                          compressors=None, overwrite=True)


def _commit(run: RunDir, sink: Path, output: Path, overwrite: bool) -> None:
    """Move the finished temporary output to ``output`` and remove the run directory.

    Without ``overwrite`` the move is a no-replace rename (:func:`impeccable.core.atomic.rename_noreplace`):
    an output that appeared during the run is left alone, and the finished result stays in the run directory,
    whose path the error gives.
    """
    from impeccable.core.atomic import rename_noreplace

    if sink.is_file():  # .npy, SEG-Y: the mode any new file gets, as the single process's outputs
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(sink, 0o666 & ~mask)
    if not overwrite:
        try:
            rename_noreplace(sink, output)
        except FileExistsError as exc:
            raise OutputError("output appeared during the run; it was left alone", received=str(output),
                              expected="a new path", todo=f"the finished result is kept as {sink}") from exc
    elif sink.is_file():
        os.replace(sink, output)
    else:
        from impeccable.runtime.volumes.zarr import replace_dir

        replace_dir(sink, output)
    run.remove()
