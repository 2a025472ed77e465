"""``impeccable-synth OUT_DIR``: synthetic noisy/clean pairs in the challenge's folder layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from impeccable.core.cli import one_line_errors, parse_shape
from impeccable.core.errors import InputError


@dataclass(frozen=True)
class SynthConfig:
    """What ``impeccable-synth`` makes.

    Attributes:
        out_dir: Output folder: ``OUT_DIR/<id>/seismicCubes_RFC_fullstack_2023.<id>.npy`` (clean) and
            ``OUT_DIR/<id>/seismic_w_noise_vol_<id>.npy`` (noisy).
        volumes: Number of pairs.
        shape_tl: ``(sample, inline, crossline)`` of each volume.
        seed: Layout seed (ids and volumes derive from it).
        time_first: Store ``(sample, inline, crossline)``; else ``(inline, crossline, sample)``.
        noise_level: Noise RMS / clean RMS, a name (``moderate``, ``strong``), or None to draw a target
            score per volume.
        preview: PNG of the first pair, or None.
        progress: Show a progress bar.
        family: Generator family: ``a``, ``b`` or ``mix`` (alternating by volume index).
    """

    out_dir: Path
    volumes: int = 1
    shape_tl: tuple[int, int, int] = (1259, 300, 300)
    seed: int = 0
    time_first: bool = True
    noise_level: float | str | None = None
    preview: Path | None = None
    progress: bool = True
    family: str = "a"


def run(config: SynthConfig, echo=click.echo) -> list[tuple[str, Path, Path, float]]:
    """Write the pairs of ``config``; report each id with its noisy-vs-clean challenge score.

    Returns:
        ``[(id, noisy_path, clean_path, score), ...]``.
    """
    from impeccable.data.synth import pair_score, write_challenge_layout

    scores: dict[str, float] = {}

    def on_pair(vid, clean, noisy):
        scores[vid] = pair_score(clean, noisy)
        echo(f"{vid}  score {scores[vid]:.4f}")
        if config.preview is not None and len(scores) == 1:
            from impeccable.data.preview import save_pair_preview

            save_pair_preview(config.preview, clean, noisy,
                              title=f"synthetic {vid}: noisy vs clean score {scores[vid]:.3f}")

    written = write_challenge_layout(config.out_dir, config.volumes, config.shape_tl, config.seed,
                                     time_first=config.time_first, noise_level=config.noise_level,
                                     progress=config.progress, on_pair=on_pair, family=config.family)
    return [(vid, noisy, clean, scores[vid]) for vid, noisy, clean in written]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--volumes", type=int, default=1, show_default=True, help="Number of noisy/clean pairs.")
@click.option("--shape", "shape_text", default="1259,300,300", show_default=True,
              help="T,IL,XL: samples, inlines, crosslines of each volume.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: the same seed writes the same files.")
@click.option("--time-first/--time-last", default=True, show_default=True,
              help="Store (T, IL, XL) or (IL, XL, T), as the challenge's files come in both.")
@click.option("--noise-level", default=None,
              help="Noise RMS / clean RMS, or light (score ~0.95) / moderate (~0.90) / strong (~0.85; family b "
                   "solves each volume's level for exactly 0.95 / 0.90 / 0.86). Default: a score drawn per volume "
                   "(a: 0.82-0.95; b: 0.80-0.97, and 10 % of volumes noise-free).")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG of an inline of the first pair (noisy, clean, noise).")
@click.option("--family", type=click.Choice(["a", "b", "mix"]), default="a", show_default=True,
              help="Generator: a (the original), b (an independent recipe: other wavelets, structure, noise, "
                   "scales, and some noise-free volumes) or mix (a for even volumes, b for odd).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
@one_line_errors
def main(out_dir: Path, volumes: int, shape_text: str, seed: int, time_first: bool, noise_level: str | None,
         preview: Path | None, family: str, progress: bool) -> None:
    """Write synthetic noisy/clean seismic pairs in the Image Impeccable challenge's layout to OUT_DIR."""
    from tqdm import tqdm

    from impeccable.data.synth import resolve_noise_level
    from impeccable.data.synth_b import resolve_noise_level_b

    try:
        shape_tl = parse_shape(shape_text, 3, "--shape")
    except click.BadParameter as exc:
        raise InputError("bad --shape", received=repr(shape_text),
                         expected="three positive integers T,IL,XL like 1259,300,300") from exc
    resolve_noise_level(noise_level)  # fail before any work on a bad value
    resolve_noise_level_b(noise_level)
    config = SynthConfig(out_dir=out_dir, volumes=volumes, shape_tl=shape_tl, seed=seed, time_first=time_first,
                         noise_level=noise_level, preview=preview, progress=progress, family=family)
    results = run(config, echo=tqdm.write if progress else click.echo)
    click.echo(f"wrote {len(results)} pair(s) to {out_dir}" + (f"; preview {preview}" if preview else ""))
