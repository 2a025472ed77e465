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

Modules, along the run: :mod:`~impeccable.runtime.distributed_plan` (slabs, the ownership checks, the run
directory's state), :mod:`~impeccable.runtime.distributed_worker` (the engine plugin, the job, the slab tasks of
every pass), :mod:`~impeccable.runtime.distributed_cluster` (the client, the workers' engines, the passes'
submission), :mod:`~impeccable.runtime.distributed_output` (the run directory's output files, the preview, the
commit); this module runs the passes in order.
"""


from __future__ import annotations

import functools
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from impeccable.core.amplitude import VolumeStats, merge_stats
from impeccable.core.calibration import AmplitudeFit
from impeccable.core.errors import ImpeccableError, InputError, OutputError
from impeccable.core.qc import merge_qc, sample_interval_ms
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.distributed_cluster import (CONNECT_TIMEOUT, THREADED_ENGINES, Passes, dashboard_link,
                                                    engine_window, share_cores, start_client)
from impeccable.runtime.distributed_output import (commit_output, create_scratch, create_sink, draw_preview,
                                                   merge_dead)
from impeccable.runtime.distributed_plan import (Plan, RunDir, check_trace_ownership, input_identity, make_plan,
                                                 model_identity)
from impeccable.runtime.distributed_worker import (PLUGIN_NAME, SEGY_FORMATS, EngineFactory, Job, geometry_digest,
                                                   make_plugin, task_fit, task_predict, task_stats, task_write)
from impeccable.runtime.volumes import open_reader

__all__ = ["CLUSTER_FORMATS", "CONNECT_TIMEOUT", "PLUGIN_NAME", "THREADED_ENGINES", "DistributedReport",
           "EngineFactory", "Job", "make_plugin", "run_distributed", "start_client"]

#: Formats the distributed runner writes (each task writes its own inlines).
CLUSTER_FORMATS = (".npy", ".zarr", ".mdio", *SEGY_FORMATS)


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

    from impeccable.runtime.memory import run_batch, worker_budget
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
            factory = share_cores(factory, client)
        dashboard = dashboard_link(client)
        if announce is not None:
            served = dashboard or "not served (pip install bokeh)"
            announce(f"dashboard: {served}; scheduler {client.scheduler.address}")
        client.register_plugin(make_plugin(factory), name=PLUGIN_NAME)
        window = engine_window(client)
        # The single process's bound (the volume's windows, the engine's measured memory) against each worker's
        # memory: an absurd --batch-size must not exhaust the workers either; a sane one is never bound, so resume
        # identities stay stable.
        limits = [w.get("memory_limit") for w in client.scheduler_info(n_workers=-1)["workers"].values()]
        batch, batch_note = run_batch(config, tuple(reader.shape), window, factory.name,
                                      dict(factory.options).get("precision"), worker_budget(limits))
        if batch != config.batch_size:
            config = replace(config, batch_size=batch)
            if announce is not None and batch_note:
                announce(batch_note)
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
        sink = create_sink(run, reader, input_path, output, config, resumed_run, chunk)
        create_scratch(run, reader.shape, views, plan, resumed_run)
        job = Job(str(input_path), getattr(reader, "time_axis", config.time_axis),
                  getattr(reader, "dataset", config.dataset),  # resolved: a group's only volume, MDIO's amplitude
                  replace(config, progress=False, preview=None), str(run.path), views, str(sink),
                  tuple(reader.shape), segy=tuple(sorted(config.segy_options().items())) if segy else (),
                  stamp=tuple(sorted(identity["input"].items())), geometry=geometry_digest(reader))
        total = len(plan.inline) * 4 + len(plan.crossline)
        with tqdm(total=total, unit="slab", disable=not config.progress, leave=False) as bar:
            passes = Passes(client, run, retries, bar)
            bar.update(0)
            parts = passes.pass_("stats", plan.inline, task_stats, (job,))
            stats = merge_stats(parts)
            stats.check_not_constant()
            job = replace(job, stats=stats, dead=merge_dead(run, reader, plan, parts) if segy else None)
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
        qc = merge_qc(parts, sample_interval_ms(reader))
        if input_identity(input_path) != identity["input"]:
            raise InputError("input changed during the run; nothing was written", received=str(input_path),
                             expected="an input nobody writes while it is denoised",
                             todo="rerun with --overwrite once the file is complete")
        if config.preview is not None:  # first: a failing preview leaves no output, as in one process
            draw_preview(reader, output, config, job)
        try:
            commit_output(run, sink, output, config.overwrite)
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
                             passes.retried, dict(workers), stats, fit.as_dict(stats), qc, dashboard)
