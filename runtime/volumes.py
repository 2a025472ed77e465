"""Volume files: one reader/writer protocol, one implementation per format, chosen by file extension.

Readers present any stored volume in canonical ``(inline, crossline, sample)`` order and read blocks of it
lazily, so volumes larger than memory stream through. Writers write a volume shaped like a reader's source
(same format, orientation, headers), into a temporary file that ``commit()`` renames into place and
``abort()`` deletes: a failed run never leaves a half-written output.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from impeccable.core.errors import EngineError, InputError, OutputError


class VolumeReader(Protocol):
    """A stored volume, read lazily in canonical order.

    Attributes:
        path: The file.
        shape: Canonical ``(inline, crossline, sample)`` shape.
        dtype: The stored sample dtype.
    """

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype

    # Optional (SEG-Y surveys): ``live_mask`` ``(inline, crossline)`` bool or None (every trace live), the
    # traces holding data; ``fill``, how non-live traces are filled for the model (see :func:`fill_absent`);
    # ``views``, the section directions the geometry has. Readers without them are regular and all live.

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32 of the volume (NaN/Inf left as stored)."""

    def close(self) -> None:
        """Release the file."""


def live_mask(reader: VolumeReader) -> np.ndarray | None:
    """``(inline, crossline)`` bool of the traces that hold data (not absent, not dead), None when all do."""
    return getattr(reader, "live_mask", None)


def fill_absent(sections: np.ndarray, live: np.ndarray, how: str = "mirror") -> np.ndarray:
    """Fill the non-live traces of sections for the model, in place; live traces are untouched.

    ``mirror`` (the default) reflects the live traces next to a gap into it, each half of the gap from its
    own side (a trace ``k`` cells into a gap takes the live trace ``k - 1`` cells out of it), falling back
    to the nearest live trace where the reflection lands on another gap or past the end. A network looks
    across many traces, so what sits in a gap shapes the predictions beside it: reflected data continues
    the reflectors' amplitude and texture, where a flat value (zeros, or the volume's minimum as the
    window padding holds) is an edge the model reacts to. ``zero`` puts 0 (the input's units) there.
    Sections with no live trace get 0.

    Args:
        sections: ``(n, traces, samples)`` float32, in the input's units.
        live: ``(n, traces)`` bool.
        how: ``mirror`` or ``zero``.

    Returns:
        ``sections``, filled.
    """
    if how not in ("mirror", "zero"):
        raise InputError("unknown fill for absent traces", received=how, expected="mirror or zero",
                         todo="report this as a bug")
    n_traces = live.shape[1]
    idx = np.broadcast_to(np.arange(n_traces), live.shape)
    gaps = ~live
    if how == "zero" or not live.any():
        sections[gaps] = 0
        return sections
    # Nearest live trace on each side of every position (-1 / n_traces where there is none).
    left = np.maximum.accumulate(np.where(live, idx, -1), axis=1)
    right = np.minimum.accumulate(np.where(live, idx, n_traces)[:, ::-1], axis=1)[:, ::-1]
    has_left, has_right = left >= 0, right < n_traces
    use_left = has_left & (~has_right | (idx - left <= right - idx))
    src = np.where(use_left, 2 * left + 1 - idx, 2 * right - 1 - idx)
    rows = np.broadcast_to(np.arange(live.shape[0])[:, None], live.shape)
    ok = (src >= 0) & (src < n_traces)
    ok[ok] = live[rows[ok], src[ok]]
    src = np.where(ok, src, np.where(use_left, left, right))
    fill = gaps & (has_left | has_right)
    sections[rows[fill], idx[fill]] = sections[rows[fill], src[fill]]
    sections[gaps & ~fill] = 0
    return sections


class TempFileCommit:
    """Commit/abort for writers that fill a temp file beside the output and rename it at the end.

    The writer sets ``path`` (final), ``tmp`` (temp file), ``shape``, ``_file`` (open handle with ``close()``)
    and ``_written`` (bool per inline); ``format_name`` names the format in errors.
    """

    format_name = "output"

    def commit(self) -> None:
        """Close and move the temp file into place.

        Raises:
            OutputError: Some inlines were never written.
        """
        missing = np.flatnonzero(~self._written)
        if missing.size:
            self.abort()
            raise OutputError(f"{self.format_name} output incomplete",
                              received=f"{missing.size} inlines never written",
                              expected=f"all {self.shape[0]} inlines", todo="report this as a bug")
        self._file.close()
        self._file = None
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Remove the temp file; the final path is untouched."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)


class VolumeWriter(Protocol):
    """An output volume shaped like a reader's source, written by blocks of inlines, committed atomically."""

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` (float32, or uint8 for the uint8 scale)."""

    def commit(self) -> None:
        """Flush and rename the temporary file to the final path."""

    def abort(self) -> None:
        """Delete the temporary file; the final path is left untouched."""


# extension -> (module, reader factory, writer factory); modules import lazily so that segyio/h5py are only
# needed for their own formats.
FORMATS: dict[str, tuple[str, str, str, str]] = {
    ".npy": ("impeccable.runtime.npy_io", "NpyReader", "NpyWriter", ""),
    ".h5": ("impeccable.runtime.hdf5_io", "Hdf5Reader", "Hdf5Writer", ""),
    ".hdf5": ("impeccable.runtime.hdf5_io", "Hdf5Reader", "Hdf5Writer", ""),
    ".sgy": ("impeccable.runtime.segy_io", "SegyReader", "SegyWriter", "segy"),
    ".segy": ("impeccable.runtime.segy_io", "SegyReader", "SegyWriter", "segy"),
    ".zarr": ("impeccable.runtime.zarr_io", "ZarrReader", "ZarrWriter", "distributed"),
    ".mdio": ("impeccable.runtime.mdio_io", "MdioReader", "MdioWriter", "distributed"),
}
#: Formats stored as a directory (a Zarr store), not one file.
DIRECTORY_FORMATS = (".zarr", ".mdio")


def _format_of(path: Path) -> tuple[type, type]:
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise InputError("unsupported file type", received=path.name, expected=f"one of {', '.join(FORMATS)}",
                         todo="convert the volume to .npy, .h5 or SEG-Y")
    module_name, reader, writer, extra = FORMATS[ext]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(f"reading {ext} files needs an optional package", received=str(exc),
                          expected=f"impeccable[{extra}]" if extra else module_name,
                          todo=f"pip install 'impeccable[{extra}]'" if extra else "reinstall impeccable") from exc
    return getattr(module, reader), getattr(module, writer)


def open_reader(path: str | Path, time_axis: int | str = "auto", dataset: str | None = None,
                segy: dict | None = None) -> VolumeReader:
    """Open a volume file for lazy canonical reads.

    Args:
        path: ``.npy``, ``.h5``/``.hdf5``, ``.sgy``/``.segy`` or a ``.zarr`` store.
        time_axis: Stored time axis (``0``, ``2`` or ``"auto"``), for formats that do not record it (npy, HDF5).
        dataset: HDF5 dataset or Zarr array path (default: the file's only 3-D dataset).
        segy: SEG-Y header bytes, :class:`~impeccable.runtime.segy_io.SegyReader`'s ``iline``, ``xline``,
            ``line_key``, ``cdp`` (ignored for other formats).
    """
    path = Path(path)
    found = path.is_dir() if path.suffix.lower() in DIRECTORY_FORMATS else path.is_file()
    if not found:
        raise InputError("input file not found", received=str(path),
                         expected="an existing .npy, .h5, SEG-Y file or .zarr store", todo="check the path")
    reader_cls, _ = _format_of(path)
    options = (segy or {}) if FORMATS[path.suffix.lower()][3] == "segy" else {}
    return reader_cls(path, time_axis=time_axis, dataset=dataset, **options)


def open_writer(path: str | Path, like: VolumeReader, dtype: np.dtype | type = np.float32) -> VolumeWriter:
    """Open an output volume of the same format, shape and orientation as ``like``'s source.

    The output's format follows ``path``'s extension, which must be the input's (SEG-Y headers and HDF5
    dataset names come from ``like``).
    """
    path = Path(path)
    _, writer_cls = _format_of(path)
    return writer_cls(path, like=like, dtype=np.dtype(dtype))
