"""Submission files: the challenge's npz of uint8 sections, written from predicted volumes and read back.

A submission holds six uint8 sections per volume (:func:`impeccable.data.scoring.submission_sections`).
The writer moves every volume's time axis to the end first, explicitly: the starter code slices axes 0 and 1
of whatever it is given, so a time-first ``(1259, 300, 300)`` volume handed over unmoved yields time slices,
and a score that measures the wrong thing without any error.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from impeccable.core.atomic import atomic_write
from impeccable.core.errors import DataError, ImpeccableError
from impeccable.core.geometry import resolve_time_axis, to_canonical
from impeccable.data.challenge import load_volume
from impeccable.data.scoring import submission_sections

VolumeSource = np.ndarray | str | Path

# What np.load raises for pickles and object arrays (allow_pickle=False), truncated files and non-zip bytes.
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile)


def canonical_volume(volume: VolumeSource, time_axis: int | str = "auto") -> np.ndarray:
    """A volume given as an array or a ``.npy`` path, viewed in ``(inline, crossline, sample)`` order.

    Args:
        volume: An array in stored order, or a ``.npy`` path (memory-mapped).
        time_axis: Stored time axis (``0``, ``1``, ``2``) or ``"auto"`` (the unique longest axis).

    Raises:
        DataError: Not 3-D, or the time axis is ambiguous.
    """
    if isinstance(volume, (str, Path)):
        return load_volume(volume, time_axis)
    volume = np.asarray(volume)
    try:
        axis = resolve_time_axis(volume.shape, time_axis)
    except ImpeccableError as exc:
        raise DataError(f"predicted volume: {exc.what}", received=exc.received, expected=exc.expected,
                        todo=exc.todo) from exc
    return to_canonical(volume, axis)


def write_submission(volumes: Mapping[str, VolumeSource] | Iterable[tuple[str, VolumeSource]],
                     out_npz: str | Path, time_axis: int | str = "auto", progress: bool = False) -> Path:
    """Write the challenge's submission npz from predicted volumes in either orientation.

    Each volume is min-max scaled to 0..255 over the whole volume and cast with a truncating uint8 cast
    (the official scale), then its six sections at 25/50/75 % of both horizontal axes are stored. The file
    is written under a temporary name and renamed, so a failure leaves no partial submission.

    Args:
        volumes: ``{volume_id: volume}`` or ``(volume_id, volume)`` pairs; a volume is an array in stored
            order (any real dtype) or a ``.npy`` path.
        out_npz: The file to write (``.npz``).
        time_axis: Stored time axis of every volume (``0``, ``1``, ``2``) or ``"auto"`` (per volume, the
            unique longest axis).
        progress: Show a progress bar.

    Returns:
        ``out_npz``.

    Raises:
        DataError: No volume, a repeated id, or a volume that is not 3-D / has an ambiguous time axis.
    """
    items = list(volumes.items() if isinstance(volumes, Mapping) else volumes)
    if not items:
        raise DataError("no volume to write", received="0 volumes", expected="at least one predicted volume")
    sections: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for volume_id, volume in tqdm(items, desc="submission", unit="volume", disable=not progress):
        volume_id = str(volume_id)
        if volume_id in seen:
            raise DataError("volume id given twice", received=volume_id, expected="unique ids")
        seen.add(volume_id)
        sections.update(submission_sections(volume_id, canonical_volume(volume, time_axis)))
    out_npz = Path(out_npz)
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    # A file object, so numpy does not append ".npz" to the temporary name.
    with atomic_write(out_npz, what="cannot write the submission") as out, out.open() as f:
        np.savez(f, **sections)
    return out_npz


def read_submission(npz: str | Path) -> dict[str, np.ndarray]:
    """Read a submission npz (never unpickling) into ``{key: (traces, samples) uint8 section}``.

    Raises:
        DataError: Missing file, not an npz, pickled entries, no sections, or a section that is not a 2-D
            uint8 array.
    """
    npz = Path(npz)
    if not npz.is_file():
        raise DataError("submission file not found", received=str(npz), expected="an existing .npz file",
                        todo="check the path")
    try:
        data = np.load(npz, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise _unreadable(npz, exc) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DataError(f"{npz.name} is not an npz archive", received=f"one {type(data).__name__}",
                        expected="an .npz of sections", todo="write it with write_submission")
    try:
        with data:
            sections = {key: data[key] for key in data.files}
    except _READ_ERRORS as exc:
        raise _unreadable(npz, exc) from exc
    if not sections:
        raise DataError(f"{npz.name} holds no section", received="an empty npz",
                        expected="<id>_gt.npy-i_<n> / <id>_gt.npy-x_<n> keys", todo="write it with write_submission")
    for key, section in sections.items():
        if section.ndim != 2 or section.dtype != np.uint8:
            raise DataError(f"{npz.name}: section {key} is not a 2-D uint8 image",
                            received=f"{section.dtype} {section.shape}",
                            expected="uint8 (traces, samples), min-max scaled per volume",
                            todo="write it with write_submission")
    return sections


def _unreadable(npz: Path, exc: Exception) -> DataError:
    return DataError(f"cannot read {npz.name} as an npz of arrays", received=str(exc).split(". ")[0],
                     expected="an .npz of uint8 sections (pickled entries are refused)",
                     todo="write it with write_submission")
