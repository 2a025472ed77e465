"""``impeccable-denoise``: denoise a seismic volume file with the shipped (or any exported) model."""

from __future__ import annotations

from pathlib import Path

import click

from impeccable.core.amplitude import SCALES
from impeccable.core.cli import OneLineCommand, one_line_errors
from impeccable.runtime.config import VIEWS, DenoiseConfig
from impeccable.runtime.engines import ENGINES, precision_help


def check_input(path: Path) -> None:
    """Refuse a missing input, a directory that is not a .zarr / .mdio store, or an unknown file type (one line).

    Raises:
        InputError: Before anything else is checked (the output's name derives from the input's).
    """
    from impeccable.core.errors import InputError
    from impeccable.runtime.volumes import DIRECTORY_FORMATS, FORMATS

    kinds = ", ".join(FORMATS)
    ext = path.suffix.lower()
    if path.is_dir() and ext not in DIRECTORY_FORMATS:
        raise InputError("INPUT is a directory", received=str(path), expected=f"a volume file or store ({kinds})",
                         todo="pass the volume file inside it")
    if not path.exists():
        raise InputError("INPUT not found", received=str(path), expected=f"an existing volume ({kinds})",
                         todo="check the path")
    if ext not in FORMATS:
        raise InputError("unsupported INPUT type", received=path.name, expected=f"one of {kinds}",
                         todo="convert the volume to .npy, .h5 or SEG-Y")


def views_cost(path: Path, config: DenoiseConfig) -> str:
    """The line ``--views both`` prints first: how many sections each view takes, and the cost over one view."""
    from impeccable.runtime.volumes import open_reader

    reader = open_reader(path, time_axis=config.time_axis, dataset=config.dataset, segy=config.segy_options())
    try:
        n_il, n_xl, _ = reader.shape
    finally:
        reader.close()
    return (f"views both: {n_il} inline + {n_xl} crossline sections = {n_il + n_xl} sections, "
            f"{(n_il + n_xl) / n_il:.1f}x the work of --views inline")


def default_output(input_path: Path) -> Path:
    """``<stem>.denoised<ext>`` next to the input."""
    return input_path.with_name(f"{input_path.stem}.denoised{input_path.suffix}")


def _time_axis(value: str) -> int | str:
    return value if value == "auto" else int(value)


def _number_or_word(value: str | None) -> float | str | None:
    """``--removal-floor``: a number as a float, a word as given (DenoiseConfig refuses what it cannot use)."""
    try:
        return None if value is None else float(value)
    except ValueError:
        return value


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output file, same format as INPUT [default: INPUT's name with .denoised before the extension].")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model directory, .onnx or .plan [default: the shipped model].")
@click.option("--engine", type=str, default=None,
              help=f"One of {', '.join(ENGINES)} [default: the fastest installed engine the model has files for].")
@click.option("--precision", type=str, default=None,
              help=f"Engine precision where it has a choice: {precision_help()} [default: each engine's own, "
                   "one that passes the parity tests].")
@click.option("--tta/--no-tta", default=True, show_default=True,
              help="Flip test-time augmentation: also denoise the trace-mirrored section and average (2x the work).")
@click.option("--views", type=click.Choice(VIEWS), default="auto", show_default=True,
              help="Section direction(s) fed to the model. auto: inline sections, or crossline ones when the inline "
                   "sections would be narrower than 32 traces and the crossline ones wider (one crossline of a "
                   "3-D survey). both: also every crossline section, the two predictions averaged: n_inline + "
                   "n_crossline sections instead of n_inline (on a 64 x 300 x T volume 364 sections instead of "
                   "64, 5.7x); the run states it before starting.")
@click.option("--batch-size", type=int, default=4, show_default=True,
              help="Sections per engine call (a section tiled into k windows counts k); with TTA a call carries "
                   "twice as many images, the mirrored copies. Bounded by the volume's sections and by a memory "
                   "budget (a quarter of the available memory), which the run states when it binds.")
@click.option("--time-axis", type=click.Choice(["auto", "0", "2"]), default="auto", show_default=True,
              help="Stored time axis of .npy/.h5 input: 0 (time first), 2 (time last) or auto (the unique "
                   "longest axis, first or last; refused when two are as long or it is the middle one).")
@click.option("--sample-interval", type=float, default=None, metavar="MS",
              help="Milliseconds between samples (metres for depth), for .npy input or to override the file's "
                   "header or attributes; sections are resampled to the model's interval and back when they "
                   "differ [default: what the file records, else the model's interval, said in the summary].")
@click.option("--scale", type=click.Choice(SCALES), default="input", show_default=True,
              help="input: the volume's own units; unit: the model's [0, 1]; uint8: the challenge's 0..255.")
@click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Output = input - STRENGTH x the estimated noise: 1 the full denoising, 0 the input unchanged.")
@click.option("--removal-floor", type=str, default=None, metavar="DB|off",
              help="Field-ready models: where what the model removes is weaker than DB (-60 to 0) of the signal around "
                   "it, the input is kept (a processed stack comes back unchanged; noise that stands out is still "
                   "removed). Higher (e.g. -7): more conservative; off: the model's whole removal "
                   "[default: the model card's].")
@click.option("--removal-floor-coherence", type=click.FloatRange(0.0, 30.0), default=None, metavar="DB",
              help="Field-ready models: raise the removal floor by up to DB (0 to 30) where what the model removes "
                   "lines up from trace to trace, as reflector energy does and random or erratic noise does not "
                   "(the shipped card: 10, kept to removal that runs parallel to the output's events); 0 turns it "
                   "off [default: the model card's].")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Also write the run summary and the QC figures behind the QC line as JSON: amplitude fit, "
                   "spectra of input, output and removed part, energy per band and below the signal band, "
                   "lateral coherence and depth profile of the removed part, local similarity.")
@click.option("--dataset", type=str, default=None, help="HDF5 dataset path [default: the file's only 3-D dataset].")
@click.option("--preview", type=click.Path(path_type=Path), default=None,
              help="Also write a PNG of the middle inline (the middle crossline of a volume under 16 crosslines "
                   "wide): input, output and removed part (input - output) on one colour clip, the local "
                   "similarity of removed part and output (0..1), and the three amplitude spectra (dB); "
                   "axes in trace numbers and ms where the input has them.")
@click.option("--iline-byte", type=int, default=189, show_default=True,
              help="SEG-Y trace-header byte of the inline number (common: 189, 9, 5, 17).")
@click.option("--xline-byte", type=int, default=193, show_default=True,
              help="SEG-Y trace-header byte of the crossline number (common: 193, 21, 17, 13).")
@click.option("--line-key", type=int, default=None,
              help="SEG-Y 2-D lines: trace-header byte of the line number that tells lines apart [default: 3-D "
                   "when inline/crossline give every trace its own cell, else 2-D lines by the inline byte].")
@click.option("--cdp-byte", type=int, default=21, show_default=True,
              help="SEG-Y 2-D lines: trace-header byte that orders the traces along a line (CDP).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing output file (without it, one that appears during the run is kept too).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
@click.option("--cluster", type=str, default=None,
              help="Run on Dask: 'local' (a cluster on this machine, 127.0.0.1 only) or tcp://HOST:PORT (a running "
                   "`dask scheduler`). .npy and SEG-Y (on a filesystem every worker shares), .zarr and .mdio "
                   "[default: one process].")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Workers of --cluster local [default: one per GPU, else half the cores].")
@click.option("--resume", is_flag=True,
              help="--cluster: finish an interrupted run of this output, computing only the slabs not yet done "
                   "(refused when the input, model or settings changed).")
@click.option("--slab-sections", type=click.IntRange(1), default=None,
              help="--cluster: sections per task, rounded up to whole engine batches and output chunks "
                   "[default: 256 MiB of float32 sections, ~170 challenge-sized ones].")
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="--cluster: retries of a failing task.")
@one_line_errors
def main(input_path: Path, output: Path | None, model: Path | None, engine: str | None, precision: str | None,
         tta: bool, views: str, batch_size: int, time_axis: str, scale: str, strength: float,
         removal_floor: str | None, removal_floor_coherence: float | None, report_path: Path | None,
         dataset: str | None, preview: Path | None,
         iline_byte: int, xline_byte: int, line_key: int | None, cdp_byte: int, overwrite: bool, progress: bool,
         cluster: str | None, workers: int | None, resume: bool, slab_sections: int | None, retries: int,
         sample_interval: float | None) -> None:
    """Denoise the seismic volume INPUT (.npy, .h5/.hdf5 or SEG-Y) and write it in the same format.

    Volumes are read lazily in (inline, crossline, sample) order, scaled per volume as the model's card says,
    cut into vertical sections padded (or tiled) to the model's window (320 x 1280), denoised in batches, and
    written back in the input's orientation and units. Memory is bounded by the batch, not the volume.

    Amplitudes are preserved: the output is the prediction mapped by the per-volume least-squares gain and
    offset that fit it to the input, so the removed part has zero mean and no systematic gain. Every run
    prints a QC line: the share of the input's energy removed and at which frequencies, whether the output
    holds energy the input lacks (below 8 Hz or the signal band, or in any octave band: a warning), whether
    the removed part is coherent across traces (signal) or not (noise), and its local similarity to the
    output; warnings follow on stderr.
    """
    from impeccable.runtime.pipeline import denoise_file

    options = {"precision": precision} if precision else {}
    config = DenoiseConfig(model=model, engine=engine, tta=tta, views=views, batch_size=batch_size,
                           time_axis=_time_axis(time_axis), scale=scale, strength=strength,
                           removal_floor=_number_or_word(removal_floor),
                           removal_floor_coherence=removal_floor_coherence, overwrite=overwrite,
                           preview=preview, dataset=dataset, engine_options=options, progress=progress,
                           iline_byte=iline_byte, xline_byte=xline_byte, line_key=line_key, cdp_byte=cdp_byte,
                           cluster=cluster, workers=workers, sample_interval=sample_interval)
    check_input(input_path)  # the most useful error first: input, then engine, then the output path
    if engine is not None:
        from impeccable.runtime.engines import check_installed

        check_installed(engine)
    output = output or default_output(input_path)
    if views == "both":
        click.echo(views_cost(input_path, config), err=True)
    if cluster is not None:
        _run_cluster(input_path, output, config, resume, slab_sections, retries, report_path)
        return
    if resume or workers is not None:
        from impeccable.core.errors import InputError

        raise InputError("--resume and --workers need --cluster", received="no --cluster",
                         expected="--cluster local or tcp://HOST:PORT", todo="add --cluster local")
    _print(denoise_file(input_path, output, config), report_path, config.preview)


def _print(report, report_path: Path | None, preview: Path | None, announced: tuple[str, ...] = ()) -> None:
    """A run's notes and warnings (stderr), its summary (stdout) and ``--report`` JSON: the same from every driver."""
    from impeccable.runtime.report import notes, summary_lines, warnings

    for note in notes(report):
        if note not in announced:
            click.echo(note, err=True)
    for line in summary_lines(report, preview):
        click.echo(line)
    for warning in warnings(report):
        click.echo(f"Warning: {warning}", err=True)
    if report_path is not None:
        write_json(report_path, report.as_dict())


def _run_cluster(input_path: Path, output: Path, config: DenoiseConfig, resume: bool, slab_sections: int | None,
                 retries: int, report_path: Path | None) -> None:
    """``--cluster``: the distributed runner, its dashboard address and its summary.

    SIGINT, SIGTERM and SIGHUP end it as they end a single-process run (:func:`~impeccable.core.cli.one_line_errors`
    turns them into ``Interrupted`` in this thread): the runner cancels its tasks and closes the cluster it
    started on the way out, keeps the run directory (done-flags, temporary output) when slabs were predicted,
    and the command prints one line and exits ``128 + signal``.
    """
    import signal
    import sys

    from impeccable.runtime.distributed import run_distributed

    announced: list[str] = []

    def announce(line: str) -> None:
        announced.append(line)
        click.echo(line, err=True)

    try:
        report = run_distributed(input_path, output, config, resume=resume, retries=retries,
                                 slab_sections=slab_sections, announce=announce)
    except KeyboardInterrupt as exc:
        from impeccable.runtime.distributed_plan import RunDir

        signum = getattr(exc, "signum", signal.SIGINT)
        state = RunDir(output).path
        kept = (f"the slabs done are kept in {state}; rerun the same command with --resume" if state.exists()
                else "nothing was kept; rerun the same command")
        click.echo(f"Error: interrupted by {signal.Signals(signum).name} | cluster closed, temporary files "
                   f"removed | {kept}", err=True)
        sys.exit(128 + signum)
    _print(report, report_path, config.preview, tuple(announced))


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically (:func:`impeccable.core.atomic.atomic_write`)."""
    import json

    from impeccable.core.atomic import atomic_write

    with atomic_write(path, what="cannot write the report") as handle, handle.open() as out:
        out.write(json.dumps(data, indent=2).encode())
