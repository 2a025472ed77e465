"""Denoising quality on held-out synthetic volumes, scored with the challenge's formula.

    python -m impeccable.benchmarks.quality --engines onnxruntime,openvino:bf16 --volumes 2 \
        --json benchmarks/results/quality.json

For each synthetic family (``--families``: ``a``, the generator the shipped models were trained on, and ``b``,
an independent recipe, :mod:`impeccable.data.families`), each noise level (``light`` ~0.95, ``moderate`` ~0.90,
``strong`` ~0.85 noisy-vs-clean, in each family's own calibration) and each held-out seed (seeds from 900001 up:
the training runs derive theirs from ``--seed`` through a hash and never meet these), it scores the noisy input,
the classical baselines (``impeccable.data.baselines``) and the model through each engine (``engine:precision``; ``onnxruntime:int8`` and ``openvino:int8`` run the INT8
graph of ``impeccable-export --int8``) and each ``--views``
setting (``both`` = the two-direction ensemble of ``impeccable-denoise --views both``), and reports per-volume
scores and means. Each model column has a ``clean-in`` twin: the clean volume itself denoised through the same
path and scored against itself (1.0 = the model leaves noise-free data alone; one pass per family and seed,
since a seed's clean volume is the same at every level).
"""

from __future__ import annotations

import itertools
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
             views: str = "inline") -> tuple[np.ndarray, float, dict]:
    """The denoised volume, the seconds it took, and the run's QC figures (amplitude fit and removed part)."""
    from impeccable.benchmarks.throughput import _engine_options, parse_engine
    from impeccable.runtime.config import DenoiseConfig
    from impeccable.runtime.pipeline import denoise_file

    name, precision, device = parse_engine(spec)
    config = DenoiseConfig(model=model, engine=name, tta=True, views=views, batch_size=batch, overwrite=True,
                           engine_options=_engine_options(name, precision, device), progress=False)
    start = time.perf_counter()
    report = denoise_file(noisy_path, out_path, config)
    qc = {"gain": report.fit["gain"], "offset_of_std": report.fit["offset_of_std"],
          "removed_energy": report.qc["removed_energy"], "removed_mean_of_std": report.qc["removed_mean_of_std"],
          "local_similarity": report.qc["local_similarity"], "removed_coherence": report.qc["coherence"]["removed"]}
    return np.load(out_path), time.perf_counter() - start, qc


def model_column(spec: str, views: str) -> str:
    """Column name of the model through one engine and view setting (inline, the default, is left unsaid)."""
    return f"model {spec}" if views == "inline" else f"model {spec} {views}"


def clean_in_column(column: str) -> str:
    """Column name of a model column's clean-in score (the clean volume denoised, scored against itself)."""
    return f"clean-in {column}"


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
@click.option("--families", default="a,b", show_default=True,
              help="Comma-separated synthetic families: a (the training generator), b (an independent recipe).")
@click.option("--views", "views_list", default="inline", show_default=True,
              help="Comma-separated section directions, each a model column: inline, crossline, both (averages "
                   "the two passes, 2x the work; use square IL = XL volumes so that crosslines are full sections).")
@click.option("--baselines/--no-baselines", default=True, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None)
@one_line_errors
def main(model: Path | None, engines: str, volumes: int, shape: str, levels: str, families: str, views_list: str,
         baselines: bool, batch_size: int, json_path: Path | None, md_path: Path | None) -> None:
    """Score noisy input, classical baselines and the model (per engine) on held-out synthetic volumes."""
    from impeccable.core.cli import parse_shape
    from impeccable.data.baselines import BASELINES
    from impeccable.data.scoring import score_volumes
    from impeccable.data.families import synthesize_family_pair
    from impeccable.data.synth import NOISE_LEVELS
    from impeccable.data.synth_b import TARGET_SCORES_B
    from impeccable.models import DEFAULT_MODEL_DIR
    from impeccable.runtime.config import VIEWS

    model = model or DEFAULT_MODEL_DIR
    vol_shape = parse_shape(shape)
    level_names = [name for name in levels.split(",") if name]
    unknown = [name for name in level_names if name not in NOISE_LEVELS or name not in TARGET_SCORES_B]
    if unknown or not level_names:
        raise InputError("unknown noise level", received=levels, expected=f"names from {', '.join(NOISE_LEVELS)}",
                         todo="e.g. --levels moderate,strong")
    family_names = [name for name in families.split(",") if name]
    if not family_names or any(name not in ("a", "b") for name in family_names):
        raise InputError("unknown synthetic family", received=families, expected="names from a, b",
                         todo="e.g. --families a,b")
    views = [name for name in views_list.split(",") if name]
    if not views or any(name not in VIEWS for name in views):
        raise InputError("unknown views", received=views_list, expected=f"names from {', '.join(VIEWS)}",
                         todo="e.g. --views inline,both")
    specs = [s for s in engines.split(",") if s]
    rows = []
    clean_in: dict[tuple[str, int, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family, level, i in itertools.product(family_names, level_names, range(volumes)):
            seed = HELD_OUT_SEED + i
            clean, noisy = synthesize_family_pair(family, 0, seed, vol_shape, level)
            noisy_path = Path(tmp) / f"noisy-{family}-{level}-{seed}.npy"
            np.save(noisy_path, noisy)
            row = {"family": family, "level": level, "seed": seed,
                   "scores": {"noisy": score_volumes(clean, noisy)}, "seconds": {}, "qc": {}}
            if baselines:
                for name, fn in BASELINES.items():
                    if name == "identity":  # the noisy column already
                        continue
                    start = time.perf_counter()
                    row["scores"][name] = score_volumes(clean, fn(noisy))
                    row["seconds"][name] = time.perf_counter() - start
            for spec in specs:
                for view in views:
                    denoised, seconds, qc = _denoise(noisy_path, Path(tmp) / "out.npy", model, spec, batch_size,
                                                     view)
                    column = model_column(spec, view)
                    row["scores"][column] = score_volumes(clean, denoised)
                    row["seconds"][column] = seconds
                    row["qc"][column] = qc
                    key = (family, seed, column)
                    if key not in clean_in:
                        clean_path = Path(tmp) / f"clean-{family}-{seed}.npy"
                        np.save(clean_path, clean)
                        denoised, _, qc = _denoise(clean_path, Path(tmp) / "out.npy", model, spec, batch_size,
                                                   view)
                        clean_in[key] = (score_volumes(clean, denoised), qc)
                    row["scores"][clean_in_column(column)] = clean_in[key][0]
                    row["qc"][clean_in_column(column)] = clean_in[key][1]
            click.echo(f"{family} {level} seed {seed}: "
                       + ", ".join(f"{k} {v:.4f}" for k, v in row["scores"].items()))
            rows.append(row)
    methods = list(rows[0]["scores"])
    lines = ["| family | level | seed | " + " | ".join(methods) + " |", "|---|---|---|" + "---|" * len(methods)]
    for row in rows:
        lines.append(f"| {row['family']} | {row['level']} | {row['seed']} | "
                     + " | ".join(f"{row['scores'][m]:.4f}" for m in methods) + " |")
    for family in family_names:
        for level in level_names:
            sel = [r for r in rows if r["level"] == level and r["family"] == family]
            lines.append(f"| **{family}** | **{level} mean** | | "
                         + " | ".join(f"**{np.mean([r['scores'][m] for r in sel]):.4f}**" for m in methods) + " |")
    lines += ["", *qc_table(rows)]
    table = "\n".join(lines)
    click.echo(table)
    report = {"model": str(model), "shape_il_xl_t": list(vol_shape), "engines": specs, "views": views,
              "families": family_names, "rows": rows}
    write_report(report, table, json_path, md_path)


def qc_table(rows: list[dict]) -> list[str]:
    """Markdown lines of the QC figures of every model column on every volume (noisy and clean-in runs)."""
    names = ("gain", "offset_of_std", "removed_energy", "removed_mean_of_std", "local_similarity", "removed_coherence")
    lines = ["| family | level | seed | run | " + " | ".join(names) + " |", "|---|---|---|---|" + "---|" * len(names)]
    for row in rows:
        for column, qc in row["qc"].items():
            lines.append(f"| {row['family']} | {row['level']} | {row['seed']} | {column} | "
                         + " | ".join(f"{qc[n]:.4f}" for n in names) + " |")
    return lines


if __name__ == "__main__":
    main()
