"""Peak resident memory of each engine and precision as a function of the images per call.

    nice -n 10 python -m impeccable.benchmarks.memory --model models/unetpp-v2s-synth \
        --engines onnxruntime:fp32,openvino:fp32,openvino:bf16 --images 1,4,8 \
        --json benchmarks/results/<date>-memory-cpu.json

Each point is one fresh process (``VmHWM`` of ``/proc/self/status``: the resident high-water mark, so nothing
earlier in this process counts) that imports the engine, creates it and runs ``--repeats`` calls of ``N``
images of ``320 x 1280`` (synthetic, float32). A least-squares line ``peak = base + per_image * N`` per engine
and precision gives the figures the registry keeps (``EngineSpec.memory`` in
:mod:`impeccable.runtime.engines`), which bound ``--batch-size`` (:mod:`impeccable.runtime.memory`).

``onnxruntime:fp32@arena`` measures ONNX Runtime with its CPU memory arena on (ORT's default; the engine turns it
off), to show what the arena costs. ``--pipeline`` also runs the whole denoising pipeline on a volume of 16
challenge-sized sections with TTA at the default ``--batch-size`` and at ``--batch-size 100000`` (bounded by
:func:`impeccable.runtime.memory.bounded_batch`): the check that an absurd batch stays near the default's peak.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import click
import numpy as np

from impeccable.core.cli import one_line_errors

#: The images every point is measured with: the model's window, zero-mean noise (the values do not change what the
#: engines allocate).
WINDOW = (320, 1280)


def vm_hwm() -> int:
    """This process's resident high-water mark in bytes (``VmHWM``; Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _child_engine(spec: str, model: str, images: int, repeats: int) -> dict:
    """One point, in this (fresh) process: peak RSS after import, after creating the engine, after the calls."""
    name, _, precision = spec.partition(":")
    precision, _, variant = precision.partition("@")
    if name == "onnxruntime":
        import onnxruntime as ort

        if variant in ("arena", "noarena"):  # the engine's options with ORT's CPU memory arena pinned on or off
            arena = variant == "arena"
            plain = ort.SessionOptions

            class PinnedArena(plain):
                def __init__(self):
                    super().__init__()
                    plain.enable_cpu_mem_arena.__set__(self, arena)

                def __setattr__(self, key, value):
                    super().__setattr__(key, arena if key == "enable_cpu_mem_arena" else value)

            ort.SessionOptions = PinnedArena
    from impeccable.runtime.engines import create_engine

    imported = vm_hwm()
    engine = create_engine(name, model, batch_size=images, precision=precision)
    created = vm_hwm()
    batch = np.random.default_rng(0).standard_normal((images, 1, *WINDOW)).astype(np.float32) * 0.1 + 0.5
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        engine(batch)
        times.append(time.perf_counter() - t0)
    peak = vm_hwm()
    engine.close()
    return {"engine": name, "precision": engine.precision, "variant": variant, "images": images,
            "imported_bytes": imported, "created_bytes": created, "peak_bytes": peak, "s_per_call": times[-1],
            "s_first_call": times[0]}


def _child_pipeline(spec: str, model: str, batch_size: int, sections: int) -> dict:
    """The whole pipeline (TTA, inline view) over ``sections`` challenge-sized sections, in this fresh process."""
    from impeccable.runtime.config import DenoiseConfig
    from impeccable.runtime.pipeline import denoise_file

    name, _, precision = spec.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.npy"
        rng = np.random.default_rng(0)
        np.save(src, rng.standard_normal((sections, 300, 1259)).astype(np.float32))
        config = DenoiseConfig(model=model, engine=name, batch_size=batch_size, tta=True, views="inline",
                               engine_options={"precision": precision} if precision else {})
        t0 = time.perf_counter()
        report = denoise_file(src, Path(tmp) / "out.npy", config)
        seconds = time.perf_counter() - t0
    return {"engine": name, "precision": precision, "requested": batch_size, "batch": report.batch_size,
            "note": report.batch_note, "peak_bytes": vm_hwm(), "seconds": seconds}


def run_child(*args: str) -> dict:
    """One measurement in a fresh interpreter (its own high-water mark), its result read from its last line."""
    done = subprocess.run([sys.executable, "-m", "impeccable.benchmarks.memory", "--child", *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fit_line(images: list[int], peaks: list[int]) -> tuple[int, int]:
    """``(base, per_image)`` bytes of the line ``base + per_image * images`` that bounds every measured peak.

    The slope is the least-squares one; the intercept is raised until no point lies above the line (peaks grow a
    little faster than linearly at small batches, and the bound must not undercount any measured batch).
    """
    x, y = np.asarray(images, float), np.asarray(peaks, float)
    slope = float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else 0.0
    return int(np.ceil(np.max(y - slope * x))), int(np.ceil(slope))


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for package in ("onnxruntime", "openvino", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def _markdown(result: dict) -> str:
    lines = [f"# Peak resident memory per engine ({result['date']}, {result['cpu']}, model {result['model']})", "",
             "| engine | precision | variant | images per call | peak MB | after create MB | s first call "
             "| s last call |",
             "|---|---|---|---|---|---|---|---|"]
    for p in result["points"]:
        lines.append(f"| {p['engine']} | {p['precision']} | {p['variant'] or '-'} | {p['images']} | "
                     f"{p['peak_bytes'] / 1e6:.0f} | {p['created_bytes'] / 1e6:.0f} | {p['s_first_call']:.2f} | "
                     f"{p['s_per_call']:.2f} |")
    lines += ["", "| engine | precision | variant | base MB | per image MB |", "|---|---|---|---|---|"]
    for f in result["fits"]:
        lines.append(f"| {f['engine']} | {f['precision']} | {f['variant'] or '-'} | {f['base_bytes'] / 1e6:.0f} | "
                     f"{f['per_image_bytes'] / 1e6:.0f} |")
    if result.get("pipeline"):
        lines += ["", "Pipeline, 16 sections of 300 x 1259, TTA, inline view:", "",
                  "| engine | precision | --batch-size | batch used | peak MB | s |", "|---|---|---|---|---|---|"]
        for p in result["pipeline"]:
            lines.append(f"| {p['engine']} | {p['precision'] or '-'} | {p['requested']} | {p['batch']} | "
                         f"{p['peak_bytes'] / 1e6:.0f} | {p['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", default="models/unetpp-v2s-synth", show_default=True)
@click.option("--engines", default="onnxruntime:fp32,onnxruntime:fp32@arena,openvino:fp32,openvino:bf16",
              show_default=True, help="name:precision[@arena], comma-separated.")
@click.option("--images", default="1,4,8", show_default=True, help="Images per engine call, comma-separated.")
@click.option("--repeats", type=int, default=2, show_default=True, help="Calls per point (the first allocates).")
@click.option("--pipeline", "pipeline_engines", default="", help="Also run the pipeline on 16 sections with these "
              "engines (name:precision, comma-separated) at the default --batch-size and at 100000.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--child", is_flag=True, hidden=True)
@click.argument("child_args", nargs=-1, type=click.UNPROCESSED)
@one_line_errors
def main(model: str, engines: str, images: str, repeats: int, pipeline_engines: str, json_path: Path | None,
         child: bool, child_args: tuple[str, ...]) -> None:
    """Measure peak RSS per engine, precision and images per call; fit base + per_image."""
    if child:
        kind, spec, child_model, n, extra = child_args
        out = (_child_engine(spec, child_model, int(n), int(extra)) if kind == "engine"
               else _child_pipeline(spec, child_model, int(n), int(extra)))
        click.echo(json.dumps(out))
        return
    points, fits, pipeline = [], [], []
    for spec in filter(None, engines.split(",")):
        mine = []
        for n in (int(x) for x in images.split(",")):
            point = run_child("engine", spec, model, str(n), str(repeats))
            click.echo(f"{spec} x{n}: peak {point['peak_bytes'] / 1e6:.0f} MB, {point['s_per_call']:.1f} s/call",
                       err=True)
            mine.append(point)
        base, per_image = fit_line([p["images"] for p in mine], [p["peak_bytes"] for p in mine])
        fits.append({"engine": mine[0]["engine"], "precision": mine[0]["precision"], "variant": mine[0]["variant"],
                     "base_bytes": base, "per_image_bytes": per_image})
        points += mine
    from impeccable.runtime.config import DenoiseConfig

    for spec in filter(None, pipeline_engines.split(",")):
        for requested in (DenoiseConfig.batch_size, 100_000):
            point = run_child("pipeline", spec, model, str(requested), "16")
            click.echo(f"pipeline {spec} --batch-size {requested}: batch {point['batch']}, "
                       f"peak {point['peak_bytes'] / 1e6:.0f} MB", err=True)
            pipeline.append(point)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    result = {"date": dt.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(), "model": model,
              "versions": _versions(), "repeats": repeats, "points": points, "fits": fits, "pipeline": pipeline}
    text = _markdown(result)
    click.echo(text)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1) + "\n")
        json_path.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
