"""``impeccable-synth OUT_DIR``: synthetic noisy/clean pairs in the challenge's folder layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from impeccable.core.cli import OneLineCommand, one_line_errors, parse_shape
from impeccable.core.errors import InputError
from impeccable.data.config import SynthConfig

#: SynthConfig's defaults, which the flags show and use.
_DEFAULT = {f.name: f.default for f in dataclasses.fields(SynthConfig) if f.default is not dataclasses.MISSING}


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--volumes", type=int, default=_DEFAULT["volumes"], show_default=True,
              help="Number of noisy/clean pairs.")
@click.option("--shape", "shape_text", default=",".join(map(str, _DEFAULT["shape_tl"])), show_default=True,
              help="T,IL,XL: samples, inlines, crosslines of each volume.")
@click.option("--seed", type=int, default=_DEFAULT["seed"], show_default=True,
              help="Seed: the same seed writes the same files.")
@click.option("--time-first/--time-last", default=_DEFAULT["time_first"], show_default=True,
              help="Store (T, IL, XL) or (IL, XL, T), as the challenge's files come in both.")
@click.option("--noise-level", default=None,
              help="Noise RMS / clean RMS, or light (score ~0.95) / moderate (~0.90) / strong (~0.85; family b "
                   "solves each volume's level for exactly 0.95 / 0.90 / 0.86). Default: a score drawn per volume "
                   "(a: 0.82-0.95; b: 0.80-0.97, and 10 % of volumes noise-free).")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG of an inline of the first pair (noisy, clean, noise).")
@click.option("--family", type=click.Choice(["a", "b", "mix"]), default=_DEFAULT["family"], show_default=True,
              help="Generator: a (the original), b (an independent recipe: other wavelets, structure, noise, "
                   "scales, and some noise-free volumes) or mix (a for even volumes, b for odd).")
@click.option("--progress/--no-progress", default=_DEFAULT["progress"], show_default=True, help="Progress bar.")
@one_line_errors
def main(out_dir: Path, volumes: int, shape_text: str, seed: int, time_first: bool, noise_level: str | None,
         preview: Path | None, family: str, progress: bool) -> None:
    """Write synthetic noisy/clean seismic pairs in the Image Impeccable challenge's layout to OUT_DIR."""
    from tqdm import tqdm

    from impeccable.data.challenge_layout import synthesize_layout

    try:
        shape_tl = parse_shape(shape_text, 3, "--shape")
    except click.BadParameter as exc:
        raise InputError("bad --shape", received=repr(shape_text),
                         expected="three positive integers T,IL,XL like 1259,300,300") from exc
    config = SynthConfig(out_dir=out_dir, volumes=volumes, shape_tl=shape_tl, seed=seed, time_first=time_first,
                         noise_level=noise_level, preview=preview, progress=progress, family=family)
    results = synthesize_layout(config, echo=tqdm.write if progress else click.echo)
    click.echo(f"wrote {len(results)} pair(s) to {out_dir}" + (f"; preview {preview}" if preview else ""))
