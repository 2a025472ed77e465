"""The distributed runner: sections/s on 1 and 2 workers, scheduler overhead per slab, and a survey estimate.

    python -m impeccable.benchmarks.distributed --shape 12,300,1259 --json benchmarks/results/<date>-distributed.json \
        --markdown benchmarks/results/<date>-distributed.md

One run measures, on a synthetic ``.npy`` volume of ``--shape`` ``(inline, crossline, sample)``:

- ``denoise_file`` in one process (the reference), then ``--cluster`` on a local cluster of 1 and of 2 worker
  processes (one engine thread each, so 2 workers use 2 cores where 1 uses 1): sections/s end to end (engine
  load included, cluster start excluded), and the 2-worker / 1-worker ratio;
- the scheduler's cost per task: 200 empty tasks submitted and gathered on the same cluster (ms per task),
  as a share of the mean compute of one prediction slab;
- from those, the wall time of a 300 GB float32 survey on 8 and 64 GPUs at an assumed per-GPU rate
  (``--gpu-rate``, default the toolkit's H100 goal of 600 challenge-sized sections/s, TensorRT FP16: a goal,
  not a measurement of this machine), with the measured scaling efficiency and overhead applied.

The machine is shared and noisy: read the ratio within one run, never across runs.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from impeccable.core.cli import one_line_errors, parse_shape

#: Bytes of one challenge-sized float32 section (300 traces x 1259 samples).
SECTION_BYTES = 300 * 1259 * 4
#: Passes over the input (statistics, predictions, fit, output) and the scratch traffic, in volumes read or
#: written: 4 input reads + scratch write + 2 scratch reads + output write (inline view).
IO_VOLUMES = 8


def _volume(shape: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(shape[2], dtype=np.float32)
    vol = np.sin(t / 7.0)[None, None, :] * rng.uniform(0.5, 1.5, size=shape[:2])[:, :, None]
    return (vol + 0.3 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def _empty_task(i: int) -> int:
    return i


def measure(model: Path, shape: tuple[int, int, int], engine: str, slab_sections: int, batch_size: int,
            tta: bool) -> dict:
    """One run of every measurement (see the module's docstring)."""
    import distributed

    from impeccable.runtime.config import DenoiseConfig
    from impeccable.runtime.distributed import run_distributed
    from impeccable.runtime.pipeline import denoise_file

    config = DenoiseConfig(model=model, engine=engine, batch_size=batch_size, tta=tta, progress=False,
                           engine_options={"threads": 1})
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.npy"
        np.save(source, _volume(shape))
        t0 = time.perf_counter()
        single = denoise_file(source, Path(tmp) / "single.npy", config)
        out["single_process"] = {"sections_per_s": shape[0] / (time.perf_counter() - t0),
                                 "engine_s": single.engine_s, "total_s": single.total_s}
        reference = np.load(Path(tmp) / "single.npy")
        for workers in (1, 2):
            with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                          host="127.0.0.1", dashboard_address=None) as cluster, \
                    distributed.Client(cluster) as client:
                target = Path(tmp) / f"out{workers}.npy"
                report = run_distributed(source, target, config, client=client, slab_sections=slab_sections)
                equal = bool(np.array_equal(np.load(target), reference))
                compute = sum(w["seconds"] for w in report.workers.values())
                slabs = report.slabs["inline"]
                t1 = time.perf_counter()
                client.gather(client.map(_empty_task, range(200), pure=False))
                per_task = (time.perf_counter() - t1) / 200 * workers  # worker-seconds per empty task
                out[f"workers_{workers}"] = {
                    "sections_per_s": report.sections_per_s, "total_s": report.total_s, "slabs": slabs,
                    "tasks": 4 * slabs, "compute_s_per_slab": compute / slabs, "empty_task_ms": per_task * 1e3,
                    "overhead_share": per_task * 4 / (compute / slabs),  # 4 tasks (passes) per slab
                    "identical_to_single_process": equal}
    out["ratio_2_over_1"] = out["workers_2"]["sections_per_s"] / out["workers_1"]["sections_per_s"]
    return out


def estimate(result: dict, gpu_rate: float, survey_gb: float = 300.0, bandwidth_gbs: float = 2.0) -> dict:
    """Wall time of a ``survey_gb`` float32 survey on 8 and 64 GPUs at ``gpu_rate`` sections/s each.

    Two efficiencies bracket it: ``measured`` = the 2-worker scaling of this run (ratio / 2; on a shared
    2-core CPU the workers also compete for the cores, which GPUs do not) and ``scheduler`` = 1 - the
    scheduler's cost per slab at the GPU's rate (the empty-task cost of this run times the 4 tasks of a slab,
    over the slab's compute at ``gpu_rate``), for slabs of 16 and 256 sections. The I/O bound assumes
    ``bandwidth_gbs`` GB/s of storage per GPU for :data:`IO_VOLUMES` passes of the volume; the wall time is
    the larger of compute and I/O (the passes overlap across workers).
    """
    sections = survey_gb * 1e9 / SECTION_BYTES
    task_s = result["workers_2"]["empty_task_ms"] / 1e3
    efficiency = {"measured": min(1.0, result["ratio_2_over_1"] / 2)}
    for slab in (16, 256):
        efficiency[f"scheduler_slab_{slab}"] = 1 / (1 + 4 * task_s / (slab / gpu_rate))
    rows = {}
    for gpus in (8, 64):
        io_h = survey_gb * IO_VOLUMES / (bandwidth_gbs * gpus) / 3600
        rows[gpus] = {"io_h": io_h}
        for name, eff in efficiency.items():
            compute_h = sections / (gpu_rate * gpus * eff) / 3600
            rows[gpus][name] = {"compute_h": compute_h, "wall_h": max(compute_h, io_h)}
    return {"survey_gb": survey_gb, "sections": sections, "gpu_rate": gpu_rate, "efficiency": efficiency,
            "bandwidth_gbs_per_gpu": bandwidth_gbs, "gpus": rows}


def markdown(result: dict, est: dict, meta: dict) -> str:
    w1, w2 = result["workers_1"], result["workers_2"]
    lines = [f"Distributed runner, {meta['date']}, {meta['machine']}, shape {meta['shape']}, engine "
             f"{meta['engine']} (1 thread per worker), slab {meta['slab_sections']} sections, TTA {meta['tta']}.",
             "", "| run | sections/s | wall s | slabs | compute s / slab | empty task ms | overhead share | "
             "identical |", "|---|---|---|---|---|---|---|---|",
             f"| one process | {result['single_process']['sections_per_s']:.2f} | "
             f"{result['single_process']['total_s']:.1f} | | | | | reference |"]
    for name, w in (("1 worker", w1), ("2 workers", w2)):
        lines.append(f"| {name} | {w['sections_per_s']:.2f} | {w['total_s']:.1f} | {w['slabs']} | "
                     f"{w['compute_s_per_slab']:.2f} | {w['empty_task_ms']:.1f} | {w['overhead_share']:.2%} | "
                     f"{w['identical_to_single_process']} |")
    lines += ["", f"2 workers / 1 worker: **{result['ratio_2_over_1']:.2f}x**.", "",
              f"300 GB survey ({est['sections']:.0f} challenge-sized sections of 1.5 MB) at "
              f"{est['gpu_rate']:.0f} sections/s per GPU (assumed: the toolkit's H100 goal, TensorRT FP16, not "
              f"measured here), storage {est['bandwidth_gbs_per_gpu']:.0f} GB/s per GPU for {IO_VOLUMES} passes "
              "of the volume; efficiency measured here (2 workers / 2, a shared CPU) or the scheduler's share "
              "alone at the GPU's rate:", "",
              "| GPUs | I/O h | " + " | ".join(f"{k} (eff {v:.3f}) wall h" for k, v in est["efficiency"].items())
              + " |", "|---|---|" + "---|" * len(est["efficiency"])]
    for gpus, row in est["gpus"].items():
        lines.append(f"| {gpus} | {row['io_h']:.3f} | " + " | ".join(
            f"{row[k]['wall_h']:.3f} (compute {row[k]['compute_h']:.3f})" for k in est["efficiency"]) + " |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model directory [default: the shipped model].")
@click.option("--shape", default="12,300,1259", show_default=True, help="Synthetic volume (inline,crossline,sample).")
@click.option("--engine", default="onnxruntime", show_default=True)
@click.option("--slab-sections", type=int, default=2, show_default=True, help="Sections per task.")
@click.option("--batch-size", type=int, default=2, show_default=True)
@click.option("--tta/--no-tta", default=True, show_default=True)
@click.option("--gpu-rate", type=float, default=600.0, show_default=True,
              help="Assumed sections/s per GPU for the survey estimate (the H100 goal, TensorRT FP16).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None)
@click.option("--from-json", "from_json", type=click.Path(path_type=Path, exists=True), default=None,
              help="Redo the estimate and the table from an earlier run's JSON (no measurement).")
@one_line_errors
def main(model: Path | None, shape: str, engine: str, slab_sections: int, batch_size: int, tta: bool,
         gpu_rate: float, json_path: Path | None, md_path: Path | None, from_json: Path | None) -> None:
    """Measure the distributed runner on this machine and estimate a 300 GB survey on 8 and 64 GPUs."""
    import distributed

    from impeccable.models import DEFAULT_MODEL_DIR

    dims = parse_shape(shape)
    if from_json is not None:
        earlier = json.loads(from_json.read_text())
        result, meta = earlier["results"], earlier["meta"]
        est = estimate(result, gpu_rate)
        _write(markdown(result, est, meta), {"meta": meta, "results": result, "estimate": est}, json_path,
               md_path)
        return
    result = measure(model or DEFAULT_MODEL_DIR, dims, engine, slab_sections, batch_size, tta)
    est = estimate(result, gpu_rate)
    meta = {"date": dt.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
            f"{__import__('os').cpu_count()} cores", "shape": list(dims), "engine": engine, "tta": tta,
            "slab_sections": slab_sections, "batch_size": batch_size, "distributed": distributed.__version__,
            "python": platform.python_version()}
    _write(markdown(result, est, meta), {"meta": meta, "results": result, "estimate": est}, json_path, md_path)


def _write(text: str, data: dict, json_path: Path | None, md_path: Path | None) -> None:
    click.echo(text)
    if json_path is not None:
        json_path.write_text(json.dumps(data, indent=2))
    if md_path is not None:
        md_path.write_text(text)


if __name__ == "__main__":
    main()
