"""Throughput of every installed engine, side by side in one run.

    python -m impeccable.benchmarks.throughput --engines torch,onnxruntime,openvino:fp32,openvino:bf16 \
        --sections 16 --batch-size 4 --json benchmarks/results/<date>-<device>.json

``onnxruntime:int8`` and ``openvino:int8`` run ``model.int8.onnx`` (``impeccable-export --int8``); their GFLOP/s
count the float graph's arithmetic (the same convolutions) against the measured INT8 GEMM peak (GOP/s).

Each engine (``name`` or ``name:precision``) runs in its own process (clean peak RSS, no shared thread pools)
on the same model and the same synthetic volume of ``--sections`` inline sections of the challenge's size
(300 traces x 1259 samples, padded to 320 x 1280). Per engine and batch it reports sections/s and batch
latency percentiles of the bare engine, the end-to-end wall time of the whole denoising pipeline (reading,
scaling, TTA, writing) next to the time spent inside the engine, achieved GFLOP/s (counted from the ONNX
graph) and its fraction of this machine's measured matmul peak in the engine's precision, and peak RSS.

The machine is shared and noisy: compare engines by the ratios within one run, never across runs.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import click
import numpy as np

from impeccable.core.cli import one_line_errors
from impeccable.core.errors import EngineError
from impeccable.runtime.engines import ENGINES

SECTION = (300, 1259)  # (traces, samples) of a challenge section
#: Engine -> the precision it runs when the spec names none (the registry's default).
PRECISION_OF = {name: spec.default_precision for name, spec in ENGINES.items()}


def peak_key(precision: str, device: str) -> str:
    """The :func:`~impeccable.benchmarks.peak.matmul_peak_gflops` entry an engine is measured against.

    By device and precision: a GPU engine against the GPU's peak in its precision (``fp16_cuda``), a CPU engine
    against the CPU's (``fp32``, ``bf16``); never one device's work over the other's peak.
    """
    precision = "fp32" if precision == "f32" else precision
    return f"{precision}_cuda" if device.startswith("cuda") else precision


def peak_fraction(gflops: float, precision: str, device: str, peaks: dict) -> float | None:
    """``gflops`` over this machine's measured peak for that device and precision (None: no such peak measured)."""
    peak = peaks.get(peak_key(precision, device))
    return gflops / peak if peak else None


@dataclass
class Result:
    """One engine at one batch size (the JSON's ``results`` rows)."""

    engine: str
    precision: str
    batch: int
    tta: bool
    sections_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    gflops: float
    peak_fraction: float | None
    end_to_end_s: float | None
    engine_s: float | None
    rss_mb: float
    device: str = "cpu"
    error: str | None = None
    load_s: float | None = None  # engine creation (model load, compilation) inside end_to_end_s


def parse_engine(spec: str) -> tuple[str, str, str | None]:
    """``"engine[:precision][@device]"`` -> ``(engine, precision, device)``.

    ``"openvino:bf16"`` -> ``("openvino", "bf16", None)``, ``"torch:bf16@cuda"`` -> ``("torch", "bf16", "cuda")``;
    a bare name takes its default precision and device.
    """
    spec, _, device = spec.partition("@")
    name, _, precision = spec.partition(":")
    if name not in ENGINES:
        raise EngineError("unknown engine in --engines", received=repr(spec), expected=f"one of {', '.join(ENGINES)}",
                          todo="pass --engines name[:precision][@device],...")
    return name, precision or PRECISION_OF[name], device or None


def _engine_options(name: str, precision: str, device: str | None = None) -> dict:
    """The constructor options of engine ``name`` for this precision and device (the ones its entry takes)."""
    spec = ENGINES[name]
    options: dict = {"precision": precision} if "precision" in spec.options else {}
    if device and "device" in spec.options:
        options["device"] = device
    return options


def _bench_engine(spec: str, model: str, volume_path: str, batch: int, tta: bool, repeats: int, flop: float,
                  peaks: dict, queue: mp.Queue) -> None:
    """Child process: time the bare engine, then the whole pipeline, and put a Result on ``queue``."""
    name, precision, device = parse_engine(spec)
    options = _engine_options(name, precision, device)
    try:
        from impeccable.runtime.engines import create_engine

        images = batch * (2 if tta else 1)  # flip TTA doubles the images per batch of sections
        rng = np.random.default_rng(0)
        with create_engine(name, model, batch_size=images, **options) as engine:
            rows, cols = engine.window
            x = np.zeros((images, 1, rows, cols), dtype=np.float32)
            traces, samples = min(rows, SECTION[0]), min(cols, SECTION[1])
            x[:, 0, :traces, :samples] = rng.random((images, traces, samples), dtype=np.float32)
            engine(x)  # warm-up: kernel selection, allocations
            latencies = []
            for _ in range(repeats):
                start = time.perf_counter()
                engine(x)
                latencies.append(time.perf_counter() - start)
            device = str(getattr(engine, "device", "cpu"))
            precision = str(getattr(engine, "precision", precision))
        lat = np.array(latencies)
        sections_per_s = batch / float(np.median(lat))
        gflops = flop * images / float(np.median(lat)) / 1e9
        e2e_s, engine_s, load_s = _end_to_end(name, options, model, volume_path, batch, tta)
        queue.put(Result(spec, precision, batch, tta, sections_per_s, *(float(np.percentile(lat, q)) * 1e3
                                                                          for q in (50, 90, 99)),
                         gflops, peak_fraction(gflops, precision, device, peaks), e2e_s, engine_s, _rss_mb(), device, None, load_s))
    except Exception as exc:  # one engine failing must not hide the others' figures
        queue.put(Result(spec, precision, batch, tta, 0, 0, 0, 0, 0, None, None, None, _rss_mb(),
                         error=f"{type(exc).__name__}: {exc}".splitlines()[0]))


def _end_to_end(name: str, options: dict, model: str, volume_path: str, batch: int, tta: bool):
    """Wall time of the whole pipeline on the volume, the part spent inside engine calls, and the engine's load."""
    from impeccable.runtime.config import DenoiseConfig
    from impeccable.runtime.pipeline import denoise_file

    with tempfile.TemporaryDirectory() as tmp:
        config = DenoiseConfig(model=Path(model), engine=name, tta=tta, batch_size=batch, overwrite=True,
                               engine_options=options, progress=False)
        start = time.perf_counter()
        report = denoise_file(Path(volume_path), Path(tmp) / "out.npy", config)
        return time.perf_counter() - start, report.engine_s, report.load_s


def _rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM; ru_maxrss would include the spawning parent's)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024.0
    except (OSError, IndexError, ValueError):  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("impeccable", "numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "tensorrt"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _device() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores"


def make_volume(path: Path, sections: int, seed: int = 7, section: tuple[int, int] = SECTION) -> Path:
    """A synthetic noisy volume ``(sections, *section)`` (inline, crossline, sample) float32 saved as .npy."""
    from impeccable.data.synth import synthesize_pair

    _, noisy = synthesize_pair(seed, shape=(max(sections, 8), *section))  # the generator needs 8+ inlines
    np.save(path, np.ascontiguousarray(noisy[:sections]))
    return path


def markdown_table(report: dict) -> str:
    """The results as a markdown table, speed-ups against the first engine's end-to-end time at the same batch.

    ``pipeline share`` is the part of the end-to-end time outside engine calls (reading, scaling, padding, TTA
    flips, blending, writing, and the engine's load, also shown on its own).
    """
    rows = [r for r in report["results"] if not r.get("error")]
    base = {r["batch"]: r["end_to_end_s"] for r in rows if r["engine"] == report["results"][0]["engine"]}
    lines = ["| engine | precision | batch | TTA | sections/s | p50 ms | p90 ms | p99 ms | GFLOP/s | % of peak "
             "| end-to-end s | engine s | load s | pipeline share | speed-up e2e | RSS MB |",
             "|---" * 16 + "|"]
    for r in rows:
        e2e, eng, load = r["end_to_end_s"], r["engine_s"], r.get("load_s")
        ref = base.get(r["batch"])
        cells = [r["engine"], r["precision"], r["batch"], "on" if r["tta"] else "off", f"{r['sections_per_s']:.2f}",
                 f"{r['p50_ms']:.0f}", f"{r['p90_ms']:.0f}", f"{r['p99_ms']:.0f}", f"{r['gflops']:.1f}",
                 f"{r['peak_fraction']:.0%}" if r["peak_fraction"] is not None else "-",
                 f"{e2e:.1f}" if e2e else "-", f"{eng:.1f}" if eng else "-",
                 f"{load:.1f}" if load is not None else "-",
                 f"{(e2e - eng) / e2e:.0%}" if e2e and eng else "-",
                 f"{ref / e2e:.2f}x" if ref and e2e else "-", f"{r['rss_mb']:.0f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    for r in report["results"]:
        if r.get("error"):
            lines.append(f"\n{r['engine']} (batch {r['batch']}) failed: {r['error']}")
    return "\n".join(lines)


def write_report(report: dict, table: str, json_path: Path | None, md_path: Path | None) -> None:
    """Write the JSON report and the markdown table where asked (parent folders created)."""
    for path, text in ((json_path, json.dumps(report, indent=2)), (md_path, table)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")


def default_engines(model: Path | None = None) -> list[str]:
    """Every engine spec that can run here (the int8 ones where ``model`` has ``model.int8.onnx``)."""
    import importlib.util
    import shutil

    gpu = shutil.which("nvidia-smi") is not None
    specs = []
    if importlib.util.find_spec("torch"):
        specs.append("torch:fp32@cpu")
        if gpu:
            specs.append("torch:bf16@cuda")  # the seed's inference: bf16 autocast + channels_last
    if importlib.util.find_spec("onnxruntime"):
        specs.append("onnxruntime:fp32@cpu")
        if gpu:
            specs.append("onnxruntime:fp32@cuda")
    if importlib.util.find_spec("openvino"):
        specs += ["openvino:fp32", "openvino:bf16"]
    if model is not None and (model / "model.int8.onnx").is_file():
        specs += [s for s in ("onnxruntime:int8", "openvino:int8") if importlib.util.find_spec(s.split(":")[0])]
    if gpu and importlib.util.find_spec("tensorrt"):
        specs.append("tensorrt")
    return specs


@click.command()
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model directory with model.onnx [default: the shipped model].")
@click.option("--engines", default=None, help="Comma-separated engine[:precision][@device] list, e.g. "
              "torch,onnxruntime,openvino:fp32,openvino:bf16 [default: every installed engine].")
@click.option("--sections", type=int, default=16, show_default=True, help="Inline sections (300x1259) in the volume.")
@click.option("--batch-size", "batch_sizes", default="4", show_default=True,
              help="Sections per engine call; a comma-separated list sweeps them.")
@click.option("--tta/--no-tta", default=True, show_default=True, help="Flip TTA (two images per section).")
@click.option("--repeats", type=int, default=10, show_default=True, help="Timed engine calls per engine and batch.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the JSON report here.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None, help="Write the table here.")
@click.option("--quick", is_flag=True, help="Tiny smoke run: 2 window-sized sections, batch 1, 2 repeats (what the tests run).")
@one_line_errors
def main(model: Path | None, engines: str | None, sections: int, batch_sizes: str, tta: bool, repeats: int,
         json_path: Path | None, md_path: Path | None, quick: bool) -> None:
    """Measure the engines side by side on one model and one synthetic volume."""
    from impeccable.benchmarks.flops import count_flops
    from impeccable.benchmarks.peak import matmul_peak_gflops
    from impeccable.models import DEFAULT_MODEL_DIR

    model = model or DEFAULT_MODEL_DIR
    onnx_path = model / "model.onnx" if model.is_dir() else model
    if not onnx_path.is_file():
        raise EngineError("no ONNX model to benchmark", received=str(model), expected="a directory with model.onnx",
                          todo=f"run impeccable-export {model}")
    specs = engines.split(",") if engines else default_engines(model if model.is_dir() else None)
    batches = [int(b) for b in batch_sizes.split(",")]
    section = SECTION
    if quick:  # a smoke run: sections no larger than the model window (no tiling), one small batch
        sections, batches, repeats = 2, [1], 2
        if model.is_dir():
            from impeccable.core.card import read_card, window_of

            section = tuple(min(a, b) for a, b in zip(SECTION, window_of(read_card(model))))
    flop = count_flops(onnx_path)
    click.echo(f"model {model}: {flop / 1e9:.1f} GFLOP per image (counted from the ONNX graph)")
    peaks = matmul_peak_gflops(1024 if quick else 2048, 2 if quick else 5)
    click.echo("measured peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    results = []
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        volume = make_volume(Path(tmp) / "volume.npy", sections, section=section)
        for spec in specs:
            for batch in batches:
                queue = ctx.Queue()
                proc = ctx.Process(target=_bench_engine, args=(spec, str(model), str(volume), batch, tta, repeats,
                                                               flop, peaks, queue))
                proc.start()
                result = queue.get()
                proc.join()
                results.append(asdict(result))
                status = result.error or f"{result.sections_per_s:.2f} sections/s, e2e {result.end_to_end_s:.1f} s"
                click.echo(f"{spec} batch {batch}: {status}")
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": _device(),
              "versions": _versions(), "model": str(model), "gflop_per_image": flop / 1e9,
              "sections": sections, "section_shape": list(section), "peak_gflops": peaks, "results": results}
    table = markdown_table(report)
    click.echo(table)
    write_report(report, table, json_path, md_path)


if __name__ == "__main__":
    main()
