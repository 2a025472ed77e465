"""The worker side of the distributed runner: the engine plugin, the job every task gets, the slab tasks.

Each worker builds its engine once, from the model's path, in the plugin's ``setup`` (:func:`make_plugin`),
and opens its inputs once (one SEG-Y reader per task thread). A task runs one pass of the pipeline on one
slab of whole sections and returns a small JSON-ready result, which :func:`run_task` records as the slab's
done-flag after its data (:class:`~impeccable.runtime.distributed_plan.RunDir`):

- :func:`task_stats`: statistics (and, for SEG-Y, the slab's dead traces);
- :func:`task_predict`: unit predictions of one view into its Zarr scratch array;
- :func:`task_fit`: the amplitude fit's per-inline sums;
- :func:`task_write`: the output, written into the temporary output, and its QC rows.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from impeccable.core.amplitude import VolumeStats
from impeccable.core.calibration import AmplitudeFit
from impeccable.core.errors import InputError, OutputError
from impeccable.core.qc import leakage_inlines, qc_part
from impeccable.runtime.calibrate import block_sums, live_rows, output_block
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.distributed_plan import RunDir
from impeccable.runtime.volumes.npy import MappedVolume
from impeccable.runtime.volumes import open_reader

PLUGIN_NAME = "impeccable-engine"
#: SEG-Y extensions (a shared filesystem: tasks write their traces into one temporary copy of the input).
SEGY_FORMATS = (".sgy", ".segy")


def import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise InputError("--cluster needs dask.distributed", received=str(exc), expected="dask[distributed], zarr",
                         todo="pip install '.[distributed]'") from exc
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
    distributed = import_distributed()

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
            self.engine, self.readers, self.dead = None, {}, {}

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


class SlabBuffer:
    """Collects a slab's unit predictions (``put`` as the pipeline's stores) in canonical order."""

    def __init__(self, shape: tuple[int, int, int]):
        self.array = np.zeros(shape, dtype=np.float32)

    def put(self, view: str, start: int, stop: int, pred: np.ndarray) -> None:
        if view == "inline":
            self.array[start:stop] = pred
        else:
            self.array[:, start:stop] = pred.transpose(1, 0, 2)


def scratch_path(run: str, view: str) -> str:
    return str(Path(run) / f"scratch-{view}.zarr")


def worker_plugin():
    worker = import_distributed().get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or plugin.engine is None:
        raise OutputError("worker has no engine", received=worker.address, expected="the impeccable plugin",
                          todo="register make_plugin(factory) (run_distributed does) before submitting tasks")
    return worker, plugin


def unit_predictions(job: Job, start: int, stop: int) -> np.ndarray:
    """Unit predictions of inlines ``start:stop`` as the pipeline's scratch holds them (views averaged)."""
    from impeccable.runtime.volumes.zarr import open_for_region_writes

    parts = [np.asarray(open_for_region_writes(scratch_path(job.run, v), None)[start:stop]) for v in job.views]
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


def pack_mask(mask: np.ndarray) -> str:
    return base64.b64encode(np.packbits(mask, axis=None).tobytes()).decode("ascii")


def unpack_mask(text: str, shape: tuple[int, int]) -> np.ndarray:
    bits = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    return np.unpackbits(bits, count=shape[0] * shape[1]).astype(bool).reshape(shape)


def task_stats(job: Job, start: int, stop: int) -> dict:
    """Pass 1 on inlines ``start:stop``: min/max/non-finite count with the pipeline's rule (and dead traces)."""
    from impeccable.runtime.pipeline import reader_stats_part

    _, plugin = worker_plugin()
    reader = plugin.reader(job)
    part = reader_stats_part(SubVolume(reader, inlines=(start, stop)))
    dead = getattr(reader, "dead_mask", None)
    if dead is not None:  # complete for these inlines now: every one of their traces was read
        part["dead"] = pack_mask(dead[start:stop])
    return part


def task_predict(job: Job, view: str, start: int, stop: int) -> dict:
    """Pass 2: unit predictions of sections ``start:stop`` of ``view`` into that view's scratch array."""
    from impeccable.runtime.pipeline import predict_volume
    from impeccable.runtime.volumes.zarr import open_for_region_writes

    worker, plugin = worker_plugin()
    t0 = time.perf_counter()
    reader = plugin.reader(job)
    sub = SubVolume(reader, inlines=(start, stop)) if view == "inline" else SubVolume(reader, crosslines=(start, stop))
    buffer = SlabBuffer(sub.shape)
    config = replace(job.config, views=view, progress=False)
    sections, images, engine_s = predict_volume(sub, plugin.engine, buffer, config, job.stats)
    scratch = open_for_region_writes(scratch_path(job.run, view), None)
    if view == "inline":
        scratch[start:stop] = buffer.array
    else:
        scratch[:, start:stop] = buffer.array
    return {"worker": worker.address, "sections": sections, "images": images, "engine_s": engine_s,
            "seconds": time.perf_counter() - t0}


def task_fit(job: Job, start: int, stop: int) -> dict:
    """Pass 3: the amplitude fit's per-inline sums and the unit field's range of inlines ``start:stop``."""
    _, plugin = worker_plugin()
    reader = plugin.reader(job)
    sums, lo, hi = block_sums(reader.read(inlines=slice(start, stop)), unit_predictions(job, start, stop), job.stats,
                              job.config.strength, live_rows(reader, start, stop))
    return {"sums": sums.tolist(), "lo": lo, "hi": hi}


def write_sink(job: Job, start: int, stop: int, block: np.ndarray, reader) -> None:
    reader_time_axis = job.time_axis
    if Path(job.sink).suffix.lower() in SEGY_FORMATS:
        from impeccable.runtime.volumes.segy import TraceWriter

        with TraceWriter(Path(job.sink), reader, block.dtype) as out:
            out.write(slice(start, stop), block)
        sync_file(job.sink)
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
    _, plugin = worker_plugin()
    reader = plugin.reader(job)
    inputs = reader.read(inlines=slice(start, stop))
    live = live_rows(reader, start, stop)
    written, in_units = output_block(inputs, unit_predictions(job, start, stop), job.fit, job.stats, job.config.scale,
                                     job.config.strength, job.unit_range, live)
    write_sink(job, start, stop, written, reader)
    return qc_part(start, inputs, in_units, live, mean=job.fit.mean, sampled=leakage_inlines(job.shape[0]))


def sync_file(path: str) -> None:
    """Flush a file to disk: its done-flag, written next, must never outlive the data it vouches for."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_task(run_path: str, kind: str, index: int, call, *args) -> dict:
    """Run a task body, then leave its done-flag (after its data, so a flag always means "written")."""
    result = call(*args)
    RunDir.at(Path(run_path)).mark(kind, index, result)
    return result
