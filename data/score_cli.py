"""``impeccable-score PREDICTION TRUTH``: the challenge score of a submission against the ground truth.

Both files are submission npz files (:mod:`impeccable.data.submission`), or both are ``.npy`` volumes in
either orientation (one predicted volume against its clean volume; they are cut into sections here).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from impeccable.core.cli import OneLineCommand, one_line_errors
from impeccable.core.errors import DataError
from impeccable.data.scoring import score_sections, section_ssim, submission_sections
from impeccable.data.submission import canonical_volume, read_submission


def load_sections(path: Path, time_axis: str) -> dict[str, np.ndarray]:
    """The uint8 sections of a submission npz, or of a ``.npy`` volume (keyed with the id ``volume``)."""
    if path.suffix.lower() == ".npy":
        return submission_sections("volume", canonical_volume(path, time_axis))
    return read_submission(path)


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("prediction", type=click.Path(path_type=Path))
@click.argument("truth", type=click.Path(path_type=Path))
@click.option("--per-section", is_flag=True, help="Also print each section's SSIM (dropped ones marked).")
@click.option("--time-axis", default="auto", show_default=True, type=click.Choice(["auto", "0", "1", "2"]),
              help="Stored time axis of .npy volumes.")
@one_line_errors
def main(prediction: Path, truth: Path, per_section: bool, time_axis: str) -> None:
    """Print the challenge score of PREDICTION against TRUTH (both .npz submissions, or both .npy volumes).

    The score: skimage SSIM (data_range=255) of each uint8 section, the lowest and highest dropped, the mean
    of the rest.
    """
    kinds = {p.suffix.lower() == ".npy" for p in (prediction, truth)}
    if len(kinds) != 1:
        raise DataError("PREDICTION and TRUTH are of different kinds", received=f"{prediction.name}, {truth.name}",
                        expected="two .npz submissions or two .npy volumes",
                        todo="turn the volume into a submission with write_submission")
    truth_sections = load_sections(truth, time_axis)
    prediction_sections = load_sections(prediction, time_axis)
    score = score_sections(truth_sections, prediction_sections)  # checks keys and shapes
    if per_section:
        scores = {key: section_ssim(truth_sections[key], prediction_sections[key]) for key in truth_sections}
        ordered = sorted(scores, key=scores.get)
        dropped = {ordered[0], ordered[-1]} if len(ordered) >= 3 else set()
        width = max(len(k) for k in scores)
        for key, value in scores.items():
            click.echo(f"{key:<{width}}  {value:.6f}{'  (dropped)' if key in dropped else ''}")
    extra = len(set(prediction_sections) - set(truth_sections))
    if extra:
        click.echo(f"note: {extra} prediction section(s) without a truth key were ignored", err=True)
    n = len(truth_sections)
    click.echo(f"score {score:.6f}  ({n} sections{', lowest and highest dropped' if n >= 3 else ''})")


if __name__ == "__main__":
    main()
