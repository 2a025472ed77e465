"""The distributed run's files in its run directory: the temporary output, the scratch predictions, the
merged dead-trace mask; the preview and the no-replace commit of the finished output."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from impeccable.core.errors import OutputError
from impeccable.runtime.calibrate import kept_section, live_rows, output_block, preview_section
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.distributed_plan import Plan, RunDir
from impeccable.runtime.distributed_worker import SEGY_FORMATS, Job, scratch_path, unit_predictions, unpack_mask


def merge_dead(run: RunDir, reader, plan: Plan, parts: list[dict]) -> str:
    """The statistics tasks' dead traces as one ``(inline, crossline)`` bool mask in the run directory."""
    dead = np.zeros(reader.shape[:2], dtype=bool)
    for (start, stop), part in zip(plan.inline, parts):
        dead[start:stop] = unpack_mask(part["dead"], (stop - start, reader.shape[1]))
    reader.mark_dead(dead)
    path = run.path / "dead.npy"
    tmp = run.path / f".dead.{os.getpid()}.npy"
    np.save(tmp, dead, allow_pickle=False)
    os.replace(tmp, path)  # whole or absent, as every file of the run directory
    return str(path)


def create_sink(run: RunDir, reader, input_path: Path, output: Path, config: DenoiseConfig, resumed: bool,
                 chunk: int) -> Path:
    """The temporary output in the run directory (kept by a resumed attempt)."""
    dtype = np.dtype(np.uint8 if config.scale == "uint8" else np.float32)
    if input_path.suffix.lower() in SEGY_FORMATS:
        from impeccable.runtime.volumes.segy import TraceWriter, copy_input

        path = run.path / f"output{input_path.suffix.lower()}"
        if not (resumed and path.is_file()):
            tmp = run.path / f".output.{os.getpid()}.tmp"
            copy_input(reader, tmp, output.name)
            os.replace(tmp, path)  # a copy cut short is never taken for the sink by --resume
        TraceWriter(path, reader, dtype).close()  # values the sample format cannot hold: refused before any work
        return path
    if input_path.suffix.lower() == ".npy":
        path = run.path / "output.npy"
        if not (resumed and path.is_file()):
            np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(reader.stored_shape)).flush()
        return path
    from impeccable.runtime.volumes.zarr import create_like

    path = run.path / f"output{input_path.suffix.lower()}"
    if not (resumed and path.is_dir()):
        create_like(path, reader, dtype, chunks=(chunk, reader.shape[1], reader.shape[2]))
    return path


def create_scratch(run: RunDir, shape, views, plan: Plan, resumed: bool) -> None:
    """Float32 unit-prediction scratch per view, chunked so that each task of every pass owns whole chunks."""
    import zarr

    inline_len = plan.inline[0][1] - plan.inline[0][0]
    for view in views:
        path = Path(scratch_path(str(run.path), view))
        if resumed and path.is_dir():
            continue
        chunks = ((inline_len, shape[1], shape[2]) if view == "inline"
                  else (inline_len, plan.crossline[0][1] - plan.crossline[0][0], shape[2]))
        zarr.create_array(store=str(path), shape=tuple(shape), dtype="float32", chunks=chunks, fill_value=0,
                          compressors=None, overwrite=True)


def commit_output(run: RunDir, sink: Path, output: Path, overwrite: bool) -> None:
    """Move the finished temporary output to ``output`` and remove the run directory.

    Without ``overwrite`` the move is a no-replace rename (:func:`impeccable.core.atomic.rename_noreplace`):
    an output that appeared during the run is left alone, and the finished result stays in the run directory,
    whose path the error gives.
    """
    from impeccable.core.atomic import rename_noreplace

    if sink.is_file():  # .npy, SEG-Y: the mode any new file gets, as the single process's outputs
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(sink, 0o666 & ~mask)
    if not overwrite:
        try:
            rename_noreplace(sink, output)
        except FileExistsError as exc:
            raise OutputError("output appeared during the run; it was left alone", received=str(output),
                              expected="a new path", todo=f"the finished result is kept as {sink}") from exc
    elif sink.is_file():
        os.replace(sink, output)
    else:
        from impeccable.runtime.volumes.zarr import replace_dir

        replace_dir(sink, output)
    run.remove()


def draw_preview(reader, output: Path, config: DenoiseConfig, job: Job) -> None:
    """The single process's ``--preview``, drawn here from the run's own results.

    The middle inline of the output in the input's units is recomputed on the client from the input and the
    scratch predictions with the write tasks' own function (one inline: a few reads), rather than read back
    from the output, whose ``unit`` / ``uint8`` scale or SEG-Y sample format (IBM float, integers) is not the
    input's units: the picture is the single process's, whatever the scale and format.
    """
    from impeccable.runtime.pipeline import _preview

    mid = preview_section(reader.shape)
    # An inline: its one inline; a crossline (a volume under PREVIEW_MIN_TRACES crosslines wide): all inlines.
    start, stop = (mid[1], mid[1] + 1) if mid[0] == "inline" else (0, reader.shape[0])
    inputs = reader.read(inlines=slice(start, stop))
    _, in_units = output_block(inputs, unit_predictions(job, start, stop), job.fit, job.stats, job.config.scale,
                               job.config.strength, job.unit_range, live_rows(reader, start, stop))
    _preview(reader, output, config, kept_section(in_units, start, mid), mid)
