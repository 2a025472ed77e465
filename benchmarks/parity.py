"""Parity of denoised volumes against a reference run, as the GPU check reports it (``benchmarks/gpu_check.sh``).

    python -m impeccable.benchmarks.parity REFERENCE.npy NAME=OUTPUT.npy ... --json parity.json --markdown parity.md

Every volume is ``(inline, crossline, sample)`` float32 in unit scale (``impeccable-denoise --scale unit``) or
the same layout in the input's units. Per output: max |difference| and, the challenge's measure, the worst
SSIM over every inline section after the challenge's uint8 rescale, each against the reference. The bounds
are the parity tests' (tests/runtime/test_parity.py): fp32 max abs <= 1e-4; bf16 / fp16 worst SSIM >= 0.999
and max abs <= 2e-2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from impeccable.core.cli import one_line_errors
from impeccable.core.atomic import atomic_write
from impeccable.core.errors import InputError

FP32_MAX_ABS = 1e-4
LOW_MAX_ABS = 2e-2
LOW_MIN_SSIM = 0.999


def compare(reference: np.ndarray, output: np.ndarray) -> dict[str, float | bool]:
    """Max abs difference and worst inline-section challenge SSIM of two ``(inline, crossline, sample)`` volumes."""
    from impeccable.data.scoring import section_ssim, to_uint8_volume

    if reference.shape != output.shape:
        raise InputError("the volumes differ in shape", received=list(output.shape), expected=list(reference.shape),
                         todo="denoise the same input for every engine")
    ref8, out8 = to_uint8_volume(reference), to_uint8_volume(output)
    return {"finite": bool(np.isfinite(output).all()),
            "max_abs": float(np.abs(output.astype(np.float64) - reference).max()),
            "min_ssim": min(section_ssim(r, o) for r, o in zip(ref8, out8))}


def passes(stats: dict, precision: str) -> bool:
    """The parity tests' bound for that precision."""
    if not stats["finite"]:
        return False
    if precision == "fp32":
        return stats["max_abs"] <= FP32_MAX_ABS
    return stats["max_abs"] <= LOW_MAX_ABS and stats["min_ssim"] >= LOW_MIN_SSIM


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("reference", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("outputs", nargs=-1, required=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the rows here.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None, help="Write the table here.")
@one_line_errors
def main(reference: Path, outputs: tuple[str, ...], json_path: Path | None, md_path: Path | None) -> None:
    """Compare each NAME=OUTPUT.npy with REFERENCE.npy; NAME is engine:precision:batch (e.g. tensorrt:fp16:8).

    Exit code 1 when any output misses its precision's bound.
    """
    ref = np.load(reference, allow_pickle=False)
    rows = []
    for item in outputs:
        name, sep, path = item.partition("=")
        if not sep or name.count(":") != 2:
            raise InputError("cannot read an output", received=item, expected="engine:precision:batch=PATH.npy",
                             todo="name each output, e.g. tensorrt:fp16:8=out.npy")
        engine, precision, batch = name.split(":")
        stats = compare(ref, np.load(path, allow_pickle=False))
        rows.append({"engine": engine, "precision": precision, "batch": int(batch), "tta": True, **stats,
                     "passes": passes(stats, precision)})
    lines = [f"reference: {reference.name}", "",
             "| engine | precision | batch | TTA | max abs | worst section SSIM | within bound |", "|---" * 7 + "|"]
    lines += [f"| {r['engine']} | {r['precision']} | {r['batch']} | on | {r['max_abs']:.2e} | {r['min_ssim']:.5f} | "
              f"{'yes' if r['passes'] else 'NO'} |" for r in rows]
    table = "\n".join(lines)
    click.echo(table)
    report = json.dumps({"reference": str(reference), "rows": rows}, indent=2)
    for path, text in ((json_path, report), (md_path, table)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as f:
                f.tmp.write_text(text + "\n")
    if not all(r["passes"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
