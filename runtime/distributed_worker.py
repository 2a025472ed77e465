"""The worker side of the distributed runner: the engine plugin, the job every task gets, the slab tasks.

Each worker builds its engine once, from the model's path, in the plugin's ``setup`` (:func:`make_plugin`),
and opens its inputs once (one SEG-Y reader per task thread). A task runs one pass of the pipeline on one
slab of whole sections and returns a small JSON-ready result, which :func:`run_task` records as the slab's
done-flag after its data (:class:`~impeccable.runtime.distributed_plan.RunDir`):

- :func:`task_stats`: statistics (and, for SEG-Y, the slab's dead traces);
- :func:`task_predict`: unit predictions of one view into its Zarr scratch array;
- :func:`task_fit`: the amplitude fit's per-inline sums;
- :func:`task_write`: the output, written into the temporary output, and its QC sums.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from impeccable.core.amplitude import MINMAX, Scaling, VolumeStats
from impeccable.core.calibration import AmplitudeFit
from impeccable.core.errors import InputError, OutputError
from impeccable.core.model_io import ModelIO
from impeccable.core.resample import Resampling
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.distributed_plan import RunDir
from impeccable.runtime.engine_cache import EngineFactory  # noqa: F401 (what the plugin builds from)
from impeccable.runtime.passes import fit_part, stats_part, write_part
from impeccable.runtime.predict import predict_volume
from impeccable.runtime.stores import array_store, averaged_inlines
from impeccable.runtime.volumes import cluster_sink, format_of, open_reader
from impeccable.runtime.volumes.slabs import SubVolume

PLUGIN_NAME = "impeccable-engine"


def import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise InputError("--cluster needs dask.distributed", received=str(exc), expected="dask[distributed], zarr",
                         todo="pip install '.[distributed]'") from exc
    return distributed


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
            # A format whose reader is not thread-safe (SEG-Y: segyio's one file position, a dead-trace mask
            # that grows as it reads) gets one reader per task thread of a worker.
            # The input's stamp is in the key: a rewritten file is opened afresh.
            thread = None if format_of(job.input).thread_safe else threading.get_ident()
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
    SEG-Y grid (:func:`geometry_digest`); ``dead``: the run's merged dead-trace mask (a ``.npy`` path); ``io``
    and ``resampling``: the model's input contract and the data's resampling to its interval (the client's).
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
    io: ModelIO | None = None
    resampling: Resampling | None = None

    @property
    def scaling(self) -> Scaling:
        return self.io.scaling if self.io is not None else MINMAX


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
    """Unit predictions of inlines ``start:stop``, the views averaged as one process's store does."""
    from impeccable.runtime.volumes.zarr import open_for_region_writes

    return averaged_inlines([open_for_region_writes(scratch_path(job.run, v), None) for v in job.views], start, stop)


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
    """Pass 1 on inlines ``start:stop``: the statistics part (and, where the reader finds them, dead traces)."""
    _, plugin = worker_plugin()
    reader = plugin.reader(job)
    part = stats_part(SubVolume(reader, inlines=(start, stop)))
    dead = getattr(reader, "dead_mask", None)
    if dead is not None:  # complete for these inlines now: every one of their traces was read
        part["dead"] = pack_mask(dead[start:stop])
    return part


def task_predict(job: Job, view: str, start: int, stop: int) -> dict:
    """Pass 2: unit predictions of sections ``start:stop`` of ``view`` into that view's scratch array."""
    from impeccable.runtime.volumes.zarr import open_for_region_writes

    worker, plugin = worker_plugin()
    t0 = time.perf_counter()
    reader = plugin.reader(job)
    sub = SubVolume(reader, inlines=(start, stop)) if view == "inline" else SubVolume(reader, crosslines=(start, stop))
    store = array_store(sub.shape, (view,))
    config = replace(job.config, views=view, progress=False)
    sections, images, engine_s = predict_volume(sub, plugin.engine, store, config, job.stats, job.io, job.resampling)
    scratch = open_for_region_writes(scratch_path(job.run, view), None)
    if view == "inline":
        scratch[start:stop] = store.target.array
    else:
        scratch[:, start:stop] = store.target.array
    return {"worker": worker.address, "sections": sections, "images": images, "engine_s": engine_s,
            "seconds": time.perf_counter() - t0}


def task_fit(job: Job, start: int, stop: int) -> dict:
    """Pass 3: the amplitude fit's part of inlines ``start:stop``."""
    _, plugin = worker_plugin()
    return fit_part(plugin.reader(job), lambda a, b: unit_predictions(job, a, b), job.stats, job.config.strength,
                    start, stop, job.scaling)


def task_write(job: Job, start: int, stop: int) -> dict:
    """Pass 4: inlines ``start:stop`` of the output written into the temporary output; their QC part."""
    _, plugin = worker_plugin()
    reader = plugin.reader(job)
    sink = cluster_sink(job.sink)
    return write_part(reader, lambda a, b: unit_predictions(job, a, b),
                      lambda a, b, block: sink.write(Path(job.sink), reader, a, b, block), job.fit, job.stats,
                      job.config.scale, job.config.strength, job.unit_range, start, stop, job.scaling)


def run_task(run_path: str, kind: str, index: int, call, *args) -> dict:
    """Run a task body, then leave its done-flag (after its data, so a flag always means "written")."""
    result = call(*args)
    RunDir.at(Path(run_path)).mark(kind, index, result)
    return result
