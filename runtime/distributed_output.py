"""The distributed run's files in its run directory: the scratch predictions, the merged dead-trace mask, and
the no-replace commit of the finished output (the temporary output itself is the format's sink)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from impeccable.core.errors import OutputError
from impeccable.runtime.distributed_plan import Plan, RunDir
from impeccable.runtime.distributed_worker import scratch_path, unpack_mask
from impeccable.runtime.volumes.files import commit_path


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

    Without ``overwrite`` the move is a no-replace rename (:func:`~impeccable.runtime.volumes.files.commit_path`):
    an output that appeared during the run is left alone, and the finished result stays in the run directory,
    whose path the error gives.
    """
    try:
        commit_path(sink, output, overwrite)
    except FileExistsError as exc:
        raise OutputError("output appeared during the run; it was left alone", received=str(output),
                          expected="a new path", todo=f"the finished result is kept as {sink}") from exc
    run.remove()
