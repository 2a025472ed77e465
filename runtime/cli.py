"""``impeccable-denoise``: denoise a seismic volume file with the shipped (or any exported) model."""

from __future__ import annotations

from pathlib import Path

import click

from impeccable.core.amplitude import SCALES
from impeccable.core.cli import one_line_errors
from impeccable.runtime.config import VIEWS, DenoiseConfig
from impeccable.runtime.engines import ENGINES


def default_output(input_path: Path) -> Path:
    """``<stem>.denoised<ext>`` next to the input."""
    return input_path.with_name(f"{input_path.stem}.denoised{input_path.suffix}")


def _time_axis(value: str) -> int | str:
    return value if value == "auto" else int(value)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output file, same format as INPUT [default: INPUT's name with .denoised before the extension].")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model directory, .onnx or .plan [default: the shipped model].")
@click.option("--engine", type=str, default=None,
              help=f"One of {', '.join(ENGINES)} [default: the fastest installed engine the model has files for].")
@click.option("--precision", type=str, default=None,
              help="Engine precision where it has a choice: openvino fp32|bf16|int8, torch fp32|bf16, onnxruntime "
                   "fp32|fp16|int8, tensorrt fp16|int8 (int8: the graph of impeccable-export --int8) [default: each "
                   "engine's own, one that passes the parity tests].")
@click.option("--tta/--no-tta", default=True, show_default=True,
              help="Flip test-time augmentation: also denoise the trace-mirrored section and average (2x the work).")
@click.option("--views", type=click.Choice(VIEWS), default="inline", show_default=True,
              help="Section direction(s) fed to the model; 'both' averages inline and crossline predictions (2x).")
@click.option("--batch-size", type=int, default=4, show_default=True,
              help="Sections per engine call (a section tiled into k windows counts k); with TTA a call carries "
                   "twice as many images, the mirrored copies.")
@click.option("--time-axis", type=click.Choice(["auto", "0", "2"]), default="auto", show_default=True,
              help="Stored time axis of .npy/.h5 input; auto = the unique longest axis.")
@click.option("--scale", type=click.Choice(SCALES), default="input", show_default=True,
              help="input: the volume's own units; unit: the model's [0, 1]; uint8: the challenge's 0..255.")
@click.option("--dataset", type=str, default=None, help="HDF5 dataset path [default: the file's only 3-D dataset].")
@click.option("--preview", type=click.Path(path_type=Path), default=None,
              help="Also write a PNG of the middle inline: noisy, denoised and their difference.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
@one_line_errors
def main(input_path: Path, output: Path | None, model: Path | None, engine: str | None, precision: str | None,
         tta: bool, views: str, batch_size: int, time_axis: str, scale: str, dataset: str | None,
         preview: Path | None, overwrite: bool, progress: bool) -> None:
    """Denoise the seismic volume INPUT (.npy, .h5/.hdf5 or SEG-Y) and write it in the same format.

    Volumes are read lazily in (inline, crossline, sample) order, min-max normalized per volume, cut into
    vertical sections padded (or tiled) to the model's 320 x 1280 window, denoised in batches, and written
    back in the input's orientation and units. Memory is bounded by the batch, not the volume.
    """
    from impeccable.runtime.pipeline import denoise_file

    options = {"precision": precision} if precision else {}
    config = DenoiseConfig(model=model, engine=engine, tta=tta, views=views, batch_size=batch_size,
                           time_axis=_time_axis(time_axis), scale=scale, overwrite=overwrite, preview=preview,
                           dataset=dataset, engine_options=options, progress=progress)
    output = output or default_output(input_path)
    report = denoise_file(input_path, output, config)
    if report.nonfinite:
        click.echo(f"replaced {report.nonfinite} NaN/Inf samples by 0 before normalizing", err=True)
    click.echo(f"denoised {report.sections} sections with {report.engine} in {report.total_s:.1f} s "
               f"({report.sections_per_s:.2f} sections/s; engine {report.engine_s:.1f} s, loading "
               f"{report.load_s:.1f} s, reading/tiling/writing {report.pipeline_s:.1f} s) -> {report.output}"
               + (f", preview {preview}" if preview is not None else ""))
