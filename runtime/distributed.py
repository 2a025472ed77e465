"""Survey scale: the single-process pipeline's passes as ``dask.distributed`` tasks, one per slab (DESIGN §8).

The passes are the one process's own (:mod:`impeccable.runtime.passes`, :mod:`impeccable.runtime.predict`), run
per slab of whole sections and reduced here, so the output equals :func:`impeccable.runtime.pipeline.denoise_file`
bit for bit with the same engine:

1. statistics: :func:`~impeccable.runtime.passes.stats_part` per inline slab -> ``reduce_stats``;
2. predictions: :func:`~impeccable.runtime.predict.predict_volume` per inline slab (and per crossline slab for
   ``--views crossline/both``) into float32 Zarr scratch arrays, one per view, averaged as they are read
   (:func:`~impeccable.runtime.stores.averaged_inlines`); slabs hold whole engine batches, so every engine call
   carries the sections the single process gives it;
3. amplitude fit: :func:`~impeccable.runtime.passes.fit_part` per inline slab -> ``reduce_fit`` (per-inline
   sums, added exactly, so the fit does not depend on the partition);
4. output: :func:`~impeccable.runtime.passes.write_part` per inline slab into the format's sink
   (:class:`~impeccable.runtime.volumes.ClusterSink`; each task owns its chunks) -> ``reduce_qc``.

The engine is built once per worker by the plugin of :func:`make_plugin` from the model's path (never shipped in tasks).
Tasks are submitted with ``retries``; a worker that dies has its tasks recomputed elsewhere by the scheduler;
each slab leaves a done-flag (:class:`~impeccable.runtime.distributed_plan.RunDir`) so ``--resume`` computes only
what is missing. The output is moved to its final path only when every slab is done.

Formats: every format of :data:`impeccable.runtime.volumes.FORMATS` with a sink: ``.npy`` (a preallocated
temporary ``.npy`` that tasks fill through memory maps: a shared filesystem), Zarr / MDIO, and SEG-Y on a
shared filesystem (a copy of the input whose traces each task writes; the planner proves that no two tasks
write one trace, :func:`~impeccable.runtime.distributed_plan.check_trace_ownership`). HDF5 is refused (one
writer). The runner itself names no format.

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
submission), :mod:`~impeccable.runtime.distributed_output` (the run directory's scratch, dead-trace mask and
commit); this module runs the passes in order.
"""


from __future__ import annotations

import functools
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from impeccable.core.atomic import NO_ROOM
from impeccable.core.errors import ImpeccableError, InputChangedError, OutputError
from impeccable.runtime.batching import model_shape, sections_per_batch
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.distributed_cluster import (CONNECT_TIMEOUT, THREADED_ENGINES, Passes, dashboard_link,
                                                    engine_info, share_cores, start_client)
from impeccable.runtime.distributed_output import commit_output, create_scratch, merge_dead
from impeccable.runtime.distributed_plan import Plan, RunDir, check_trace_ownership, make_plan, model_identity
from impeccable.runtime.distributed_worker import (PLUGIN_NAME, EngineFactory, Job, geometry_digest, make_plugin,
                                                   task_fit, task_predict, task_stats, task_write, unit_predictions)
from impeccable.runtime.output import check_format, check_output, check_views, finish_output
from impeccable.runtime.passes import output_section, qc_interval, reduce_fit, reduce_qc, reduce_stats
from impeccable.runtime.predict import Sampling, model_io
from impeccable.runtime.report import ClusterRun, RunReport
from impeccable.runtime.volumes import CLUSTER_FORMATS, cluster_sink, format_of, open_reader
from impeccable.runtime.volumes.files import input_identity

__all__ = ["CLUSTER_FORMATS", "CONNECT_TIMEOUT", "PLUGIN_NAME", "THREADED_ENGINES", "DistributedReport",
           "EngineFactory", "Job", "make_plugin", "run_distributed", "start_client"]

#: The report of a cluster run (one report serves every driver: :class:`~impeccable.runtime.report.RunReport`).
DistributedReport = RunReport


def _identity(input_path: Path, config: DenoiseConfig, factory, plan: Plan, sampling: Sampling) -> dict:
    settings = {"engine": getattr(factory, "name", type(factory).__name__), "tta": config.tta,
                "views": config.views, "batch_size": config.batch_size, "scale": config.scale,
                "strength": config.strength, "removal_floor": config.removal_floor,
                "removal_floor_coherence": config.removal_floor_coherence, "time_axis": config.time_axis,
                "dataset": config.dataset,
                "segy": config.segy_options() if format_of(input_path).header_options else None,
                "engine_options": {k: str(v) for k, v in sorted(config.engine_options.items())},
                "sampling": sampling.as_dict()}
    return {"input": input_identity(input_path), "model": model_identity(config.resolved_model()),
            "settings": settings, "plan": plan.as_dict()}


def run_distributed(input_path: str | Path, output: str | Path, config: DenoiseConfig, client=None,
                    engine_factory=None, resume: bool = False, retries: int = 2,
                    slab_sections: int | None = None, announce=None) -> RunReport:
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

    t0 = time.perf_counter()
    input_path, output = Path(input_path), Path(output)
    sink_format = cluster_sink(input_path)
    check_format(input_path, output)
    check_output(output, config.overwrite, input_path)
    factory = engine_factory or EngineFactory.from_config(config)
    reader = open_reader(input_path, time_axis=config.time_axis, dataset=config.dataset, segy=config.segy_options())
    config = config.for_shape(tuple(reader.shape))
    views = config.view_list
    own_client = client is None
    client = None if own_client else client
    run = RunDir(output)
    opened = committed = stale = False
    try:
        check_views(config, getattr(reader, "views", None))
        if own_client:
            client = start_client(config.cluster or "local", config.workers)
            factory = share_cores(factory, client)
        dashboard = dashboard_link(client)
        if announce is not None:
            served = dashboard or "not served (pip install bokeh)"
            announce(f"dashboard: {served}; scheduler {client.scheduler.address}")
        client.register_plugin(make_plugin(factory), name=PLUGIN_NAME)
        window, engine_name = engine_info(client)
        # The workers' engines are built from the model's path: its card is the run's contract, as in one process
        # (a stand-in factory with no model path: a bare engine's defaults).
        io = model_io(config.resolved_model() if engine_factory is None or config.model is not None else None, window,
                      config.removal_floor, config.removal_floor_coherence)
        sampling = Sampling.of(config.sample_interval, reader, io)
        # The single process's bound (the volume's windows, the engine's measured memory) against each worker's
        # memory: an absurd --batch-size must not exhaust the workers either; a sane one is never bound, so resume
        # identities stay stable.
        from impeccable.runtime.memory import run_batch, worker_budget

        limits = [w.get("memory_limit") for w in client.scheduler_info(n_workers=-1)["workers"].values()]
        batch, batch_note = run_batch(config, model_shape(tuple(reader.shape), sampling.resampling), window,
                                      getattr(factory, "name", None),
                                      dict(getattr(factory, "options", ())).get("precision"), worker_budget(limits))
        if batch != config.batch_size:
            config = replace(config, batch_size=batch)
            if announce is not None and batch_note:
                announce(batch_note)
        steps = {v: sections_per_batch(reader, v, window, config.batch_size, sampling.resampling) for v in views}
        chunk = sink_format.inline_chunk(reader)
        plan = make_plan(tuple(reader.shape), views, steps, chunk, slab_sections)
        if getattr(reader, "geometry", None) is not None:  # one output file whose traces the tasks share
            check_trace_ownership(plan.inline, reader.geometry.index, reader.tracecount)
        identity = _identity(input_path, config, factory, plan, sampling)
        resumed_run = run.open(identity, resume, config.overwrite)
        opened = True
        dtype = np.dtype(np.uint8 if config.scale == "uint8" else np.float32)
        sink = sink_format.create(run.path, reader, output, dtype, resumed_run, chunk)
        create_scratch(run, reader.shape, views, plan, resumed_run)
        job = Job(str(input_path), getattr(reader, "time_axis", config.time_axis),
                  getattr(reader, "dataset", config.dataset),  # resolved: a group's only volume, MDIO's amplitude
                  replace(config, progress=False, preview=None), str(run.path), views, str(sink),
                  tuple(reader.shape),
                  segy=tuple(sorted(config.segy_options().items())) if format_of(input_path).header_options else (),
                  stamp=tuple(sorted(identity["input"].items())), geometry=geometry_digest(reader), io=io,
                  resampling=sampling.resampling)
        total = len(plan.inline) * 4 + len(plan.crossline)
        with tqdm(total=total, unit="slab", disable=not config.progress, leave=False) as bar:
            passes = Passes(client, run, retries, bar)
            bar.update(0)
            parts = passes.pass_("stats", plan.inline, task_stats, (job,))
            stats = reduce_stats(parts)
            job = replace(job, stats=stats,
                          dead=merge_dead(run, reader, plan, parts) if hasattr(reader, "mark_dead") else None)
            done_predictions = []
            for view in views:
                slabs = plan.inline if view == "inline" else plan.crossline
                kind = f"predict-{view}"
                fresh = [i for i in range(len(slabs)) if run.done(kind, i) is None]
                results = passes.pass_(kind, slabs, functools.partial(task_predict, job, view), ())
                done_predictions += [results[i] for i in fresh]
            fit, unit_range = reduce_fit(passes.pass_("fit", plan.inline, task_fit, (job,)), stats,
                                         io.scaling)
            job = replace(job, fit=fit, unit_range=unit_range)
            qc = reduce_qc(passes.pass_("write", plan.inline, task_write, (job,)), qc_interval(reader, sampling))
        finish_output(reader, identity["input"], output, config,
                      lambda section: output_section(reader, functools.partial(unit_predictions, job), fit, stats,
                                                     config.scale, config.strength, unit_range, section,
                                                     io.scaling),
                      # the module's name, looked up at the call: tests stand a commit in for it
                      lambda: globals()["commit_output"](run, sink, output, config.overwrite))
        committed = True
    except OSError as exc:
        if exc.errno in NO_ROOM:  # a worker's write: the error names no file
            raise OutputError("not enough disk space for the distributed run",
                              received=f"{exc.strerror} ({exc.filename or output.parent})",
                              expected="room for the output and its run state beside it",
                              todo=f"free disk space there, then rerun with --resume (state in {run.path})") from exc
        raise OutputError("I/O failed in the distributed run", received=f"{exc.strerror or exc}: "
                          f"{exc.filename or ''}", expected="readable input and room beside the output",
                          todo=f"fix it, then rerun with --resume (state in {run.path})") from exc
    except InputChangedError:
        stale = True  # the state was computed from an input that is no more: --resume could never use it
        raise
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
        if opened and not committed and (stale or not any(run.flags.glob("predict-*"))):
            run.remove()  # nothing costly was done (a constant volume, a failing engine), or nothing reusable
        run.release()
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
    cluster = ClusterRun(dict(workers), {"inline": len(plan.inline), "crossline": len(plan.crossline)},
                         passes.resumed, passes.retried, dashboard)
    return RunReport(output, sum(p["sections"] for p in done_predictions),
                     sum(p.get("images", 0) for p in done_predictions),
                     sum(p.get("engine_s", 0.0) for p in done_predictions), time.perf_counter() - t0, stats.nonfinite,
                     stats, engine_name, 0.0, config.batch_size, batch_note, fit=fit.as_dict(stats, io.scaling), qc=qc,
                     strength=config.strength, cluster=cluster, sampling=sampling.as_dict(),
                     output_guard=io.output_guard.as_dict())
