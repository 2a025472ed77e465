"""The output of a run: the checks before any work, the preview, and the end (input unchanged, preview, commit).

Every driver checks the output path with :func:`check_output` before it starts and ends with
:func:`finish_output`: the input must be unchanged, the preview is drawn first (a failing preview leaves no
output) and removed again if the commit fails; the commit itself is the driver's (a writer's, a sink's).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from impeccable.core.atomic import AtomicFile
from impeccable.core.errors import InputError, OutputError
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.volumes import DIRECTORY_FORMATS, VolumeReader
from impeccable.runtime.volumes.files import check_unchanged


def check_format(input_path: Path, output: Path) -> None:
    """Refuse an output named for another format than the input's."""
    if input_path.suffix.lower() != output.suffix.lower():
        raise OutputError("output format differs from the input's", received=output.suffix or output.name,
                          expected=input_path.suffix, todo=f"name the output *{input_path.suffix}")


def check_output(output: Path, overwrite: bool, input_path: Path) -> None:
    """Refuse an output path no run can write: the input, a directory, an existing file, an unwritable folder."""
    if output.resolve() == input_path.resolve():
        raise OutputError("output would overwrite the input", received=str(output), expected="another path",
                          todo="pass -o with a new file name")
    if input_path.is_dir() and input_path.resolve() in output.resolve().parents:
        # Its temporaries (and a cluster's run directory) would change the input while it is read.
        raise OutputError("output inside the input store", received=str(output), expected="a path outside "
                          f"{input_path}", todo=f"pass -o {input_path.parent / (input_path.stem + '.denoised' + input_path.suffix)}")
    if output.is_dir() and output.suffix.lower() not in DIRECTORY_FORMATS:  # a .zarr output is a directory
        raise OutputError("output is a directory", received=str(output), expected="a file path",
                          todo=f"pass -o {output / (input_path.stem + '.denoised' + input_path.suffix)}")
    if os.path.lexists(output) and not overwrite:  # a dangling symlink is an existing output too
        raise OutputError("output exists", received=str(output), expected="a new path",
                          todo="pass --overwrite to replace it, or -o another path")
    if not output.parent.is_dir():
        raise OutputError("output directory does not exist", received=str(output.parent),
                          expected="an existing directory", todo="create it or pass -o elsewhere")
    try:  # the one reliable test (permission bits say nothing for root or read-only mounts)
        AtomicFile(output, tag="probe").abort()
    except OutputError as exc:
        raise OutputError("output directory is not writable", received=f"{output.parent} ({exc.received})",
                          expected="a writable directory", todo="pass -o to a directory you can write") from exc


def check_views(config: DenoiseConfig, available: tuple[str, ...] | None) -> None:
    """Refuse a view the input's geometry lacks (2-D lines have inline sections only)."""
    if available is not None and not set(config.view_list) <= set(available):
        raise InputError("the input has no crossline sections: 2-D lines", received=f"--views {config.views}",
                         expected=" / ".join(available), todo="pass --views inline for 2-D lines")


def check_input(reader: VolumeReader, identity: dict) -> None:
    """Raise InputError if the input changed since ``identity`` was taken (and, HDF5, if its dataset did)."""
    check_unchanged(reader.path, identity)
    own = getattr(reader, "check_unchanged", None)
    if own is not None:
        own()


#: A volume fewer crosslines wide than this is previewed along its middle crossline (a 2-D line stored as one
#: crossline, e.g. Penobscot xl 1155 as (601, 1, 1501), has 1-trace inlines).
PREVIEW_MIN_TRACES = 16


def preview_section(shape: tuple[int, int, int]) -> tuple[str, int]:
    """The section ``--preview`` draws: ``("inline", middle)``, or ``("crossline", middle)`` for a narrow volume."""
    if shape[1] < PREVIEW_MIN_TRACES and shape[0] > shape[1]:
        return "crossline", shape[1] // 2
    return "inline", shape[0] // 2


def draw_preview(reader: VolumeReader, output: Path, preview: Path, denoised: np.ndarray,
                 section: tuple[str, int]) -> None:
    """Input, output, removed part, local similarity and spectra of ``section`` (``denoised``: it, input units)."""
    from impeccable.data.preview import save_run_preview

    save_run_preview(preview, reader, section, denoised, title=output.name)


def finish_output(reader: VolumeReader, identity: dict, output: Path, config: DenoiseConfig,
                  preview_of: Callable[[tuple[str, int]], np.ndarray], commit: Callable[[], None]) -> None:
    """Check the input, draw the preview (``preview_of(section)``: that section of the output), then ``commit()``.

    The section is :func:`preview_section`'s. The preview goes first so that a failing preview leaves no
    output; a failing commit removes the preview. The input is checked first of all: one that changed during
    the run leaves nothing.
    """
    check_input(reader, identity)
    if config.preview is None:
        commit()
        return
    section = preview_section(reader.shape)
    draw_preview(reader, output, config.preview, preview_of(section), section)
    try:
        commit()
    except BaseException:
        Path(config.preview).unlink(missing_ok=True)
        raise
