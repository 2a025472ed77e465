"""Denoising quality on held-out synthetic volumes, scored with the challenge's formula.

    python -m impeccable.benchmarks.quality --engines onnxruntime,openvino:bf16 --volumes 2 \
        --json benchmarks/results/quality.json

For each noise level (``light`` ~0.95, ``moderate`` ~0.90, ``strong`` ~0.85 noisy-vs-clean) and each held-out
seed (seeds from 900001 up: the training runs derive theirs from ``--seed`` through a hash and never meet
these), it scores the noisy input, the classical baselines (``impeccable.data.baselines``) and the model through
each engine (``engine:precision``; ``onnxruntime:int8`` and ``openvino:int8`` run the INT8 graph of
``impeccable-export --int8``) and each ``--views`` setting (``both`` = the two-direction ensemble of
``impeccable-denoise --views both``), and reports per-volume scores and means.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from impeccable.benchmarks.throughput import write_report
from impeccable.core.cli import one_line_errors
from impeccable.core.errors import InputError

HELD_OUT_SEED = 900001


def _denoise(noisy_path: Path, out_path: Path, model: Path, spec: str, batch: int,
             views: str = "inline") -> tuple[np.ndarray, float]:
    from impeccable.benchmarks.throughput import _engine_options, parse_engine
    from impeccable.runtime.config import DenoiseConfig
    from impeccable.runtime.pipeline import denoise_file

    name, precision, device = parse_engine(spec)
    config = DenoiseConfig(model=model, engine=name, tta=True, views=views, batch_size=batch, overwrite=True,
                           engine_options=_engine_options(name, precision, device), progress=False)
    start = time.perf_counter()
    denoise_file(noisy_path, out_path, config)
    return np.load(out_path), time.perf_counter() - start


def model_column(spec: str, views: str) -> str:
    """Column name of the model through one engine and view setting (inline, the default, is left unsaid)."""
    return f"model {spec}" if views == "inline" else f"model {spec} {views}"


@click.command()
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Model directory [default: shipped].")
@click.option("--engines", default="onnxruntime,openvino:bf16", show_default=True,
              help="Comma-separated engine[:precision] list.")
# Defaults: the challenge's section width (300 traces) and 8 volumes per level; two volumes of narrower
# sections ranked two candidate models differently from this (README, Default model).
@click.option("--volumes", type=int, default=8, show_default=True, help="Held-out volumes per noise level.")
@click.option("--shape", default="8,300,1259", show_default=True,
              help="IL,XL,T of each volume (XL 300: inline sections as wide as the challenge's).")
@click.option("--levels", default="moderate,strong", show_default=True,
              help="Comma-separated named noise levels: light (input ~0.95), moderate (~0.90), strong (~0.85).")
@click.option("--views", "views_list", default="inline", show_default=True,
              help="Comma-separated section directions, each a model column: inline, crossline, both (averages "
                   "the two passes, 2x the work; use square IL = XL volumes so that crosslines are full sections).")
@click.option("--baselines/--no-baselines", default=True, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None)
@one_line_errors
def main(model: Path | None, engines: str, volumes: int, shape: str, levels: str, views_list: str,
         baselines: bool, batch_size: int, json_path: Path | None, md_path: Path | None) -> None:
    """Score noisy input, classical baselines and the model (per engine) on held-out synthetic volumes."""
    from impeccable.core.cli import parse_shape
    from impeccable.data.baselines import BASELINES
    from impeccable.data.scoring import score_volumes
    from impeccable.data.synth import NOISE_LEVELS, synthesize_pair
    from impeccable.models import DEFAULT_MODEL_DIR
    from impeccable.runtime.config import VIEWS

    model = model or DEFAULT_MODEL_DIR
    vol_shape = parse_shape(shape)
    level_names = [name for name in levels.split(",") if name]
    unknown = [name for name in level_names if name not in NOISE_LEVELS]
    if unknown or not level_names:
        raise InputError("unknown noise level", received=levels, expected=f"names from {', '.join(NOISE_LEVELS)}",
                         todo="e.g. --levels moderate,strong")
    views = [name for name in views_list.split(",") if name]
    if not views or any(name not in VIEWS for name in views):
        raise InputError("unknown views", received=views_list, expected=f"names from {', '.join(VIEWS)}",
                         todo="e.g. --views inline,both")
    specs = [s for s in engines.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in level_names:
            for i in range(volumes):
                seed = HELD_OUT_SEED + i
                clean, noisy = synthesize_pair(seed, shape=vol_shape, noise_level=NOISE_LEVELS[level])
                noisy_path = Path(tmp) / f"noisy-{level}-{seed}.npy"
                np.save(noisy_path, noisy)
                row = {"level": level, "seed": seed, "scores": {"noisy": score_volumes(clean, noisy)}, "seconds": {}}
                if baselines:
                    for name, fn in BASELINES.items():
                        if name == "identity":  # the noisy column already
                            continue
                        start = time.perf_counter()
                        row["scores"][name] = score_volumes(clean, fn(noisy))
                        row["seconds"][name] = time.perf_counter() - start
                for spec in specs:
                    for view in views:
                        denoised, seconds = _denoise(noisy_path, Path(tmp) / "out.npy", model, spec, batch_size,
                                                     view)
                        column = model_column(spec, view)
                        row["scores"][column] = score_volumes(clean, denoised)
                        row["seconds"][column] = seconds
                click.echo(f"{level} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in row["scores"].items()))
                rows.append(row)
    methods = list(rows[0]["scores"])
    lines = ["| level | seed | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for row in rows:
        lines.append(f"| {row['level']} | {row['seed']} | " + " | ".join(f"{row['scores'][m]:.4f}" for m in methods) + " |")
    for level in level_names:
        sel = [r for r in rows if r["level"] == level]
        lines.append(f"| **{level} mean** | | " + " | ".join(f"**{np.mean([r['scores'][m] for r in sel]):.4f}**"
                                                         for m in methods) + " |")
    table = "\n".join(lines)
    click.echo(table)
    report = {"model": str(model), "shape_il_xl_t": list(vol_shape), "engines": specs, "views": views, "rows": rows}
    write_report(report, table, json_path, md_path)


if __name__ == "__main__":
    main()
