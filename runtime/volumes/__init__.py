"""Volume files: one reader/writer protocol, one implementation per format, chosen by file extension.

Readers present any stored volume in canonical ``(inline, crossline, sample)`` order and read blocks of it
lazily, so volumes larger than memory stream through. Writers write a volume shaped like a reader's source
(same format, orientation, headers), into a temporary file that ``commit()`` renames into place and
``abort()`` deletes: a failed run never leaves a half-written output.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from impeccable.core.atomic import AtomicFile
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


@dataclass(frozen=True)
class FileStamp:
    """A file's size and modification time, to tell whether it changed during a run.

    Attributes:
        size: Bytes.
        mtime_ns: Modification time, nanoseconds.
    """

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStamp:
        """The stamp of ``path`` now."""
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns)

    def check(self, path: str | Path) -> None:
        """Raise InputError if ``path`` is gone or its size or modification time differ from this stamp."""
        try:
            now = FileStamp.of(path)
        except OSError as exc:
            raise InputError("input vanished during the run", received=f"{path} ({exc.strerror or exc})",
                             expected="an input left in place until the run ends",
                             todo="rerun with the file in place") from exc
        if now != self:
            what = f"size {self.size} -> {now.size} bytes" if now.size != self.size else "modification time changed"
            raise InputError("input changed during the run; nothing was written", received=f"{path}: {what}",
                             expected="an input nobody writes while it is denoised",
                             todo="rerun once the file is complete")


class TempFileCommit:
    """Commit/abort for writers that fill a temp file beside the output (:class:`~impeccable.core.atomic.AtomicFile`).

    A writer calls :meth:`_begin` for its temp file (``self.tmp``), sets ``shape``, ``_file`` (open handle with
    ``close()``) and ``_written`` (bool per inline); ``format_name`` names the format in errors.
    ``overwrite`` (set by :func:`open_writer`) lets the commit replace an existing output; without it an output
    that appeared during the run is left alone and the result kept under the name the error gives.
    """

    format_name = "output"
    overwrite = False
    _atomic: AtomicFile | None = None
    _file = None

    def _begin(self, path: Path) -> Path:
        """Create the temp file beside ``path`` (the final output); return it."""
        self.path = Path(path)
        self._atomic = AtomicFile(self.path, tag="")
        self.tmp = self._atomic.tmp
        return self.tmp

    def _preallocate(self, size: int) -> None:
        """Reserve ``size`` bytes for the temp file now (a full disk fails here, in one line)."""
        try:
            self._atomic.preallocate(size)
        except BaseException:
            self.abort()
            raise

    def _close(self) -> None:
        """Flush and close the open file (the writer's handle)."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def commit(self) -> None:
        """Close and move the temp file into place, never over an existing output without ``overwrite``.

        Raises:
            OutputError: Some inlines were never written, the close failed (disk full), or the output
                appeared during the run (then the result is kept aside, under the name the message gives).
        """
        missing = np.flatnonzero(~self._written)
        if missing.size:
            self.abort()
            raise OutputError(f"{self.format_name} output incomplete",
                              received=f"{missing.size} inlines never written",
                              expected=f"all {self.shape[0]} inlines", todo="report this as a bug")
        try:
            self._close()
        except (OSError, RuntimeError) as exc:
            self.abort()
            raise OutputError(f"cannot finish the {self.format_name} output {self.path.name}",
                              received=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                              expected="room and permission to write beside the output",
                              todo="free disk space or write elsewhere") from exc
        self._atomic.overwrite = self.overwrite
        self._atomic.commit()
        self.tmp = None

    def _discard(self) -> None:
        """Let go of the open file without caring for its content (default: close it)."""
        self._close()

    def abort(self) -> None:
        """Close (ignoring errors: the file is being thrown away) and remove the temp file; the output is untouched."""
        try:
            self._discard()
        except Exception:  # noqa: BLE001 - e.g. ENOSPC while flushing a file that is deleted next
            self._file = None
        if self._atomic is not None:
            self._atomic.abort()
        self.tmp = None


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
    ".npy": ("impeccable.runtime.volumes.npy", "NpyReader", "NpyWriter", ""),
    ".h5": ("impeccable.runtime.volumes.hdf5", "Hdf5Reader", "Hdf5Writer", ""),
    ".hdf5": ("impeccable.runtime.volumes.hdf5", "Hdf5Reader", "Hdf5Writer", ""),
    ".sgy": ("impeccable.runtime.volumes.segy", "SegyReader", "SegyWriter", "segy"),
    ".segy": ("impeccable.runtime.volumes.segy", "SegyReader", "SegyWriter", "segy"),
    ".zarr": ("impeccable.runtime.volumes.zarr", "ZarrReader", "ZarrWriter", "distributed"),
    ".mdio": ("impeccable.runtime.volumes.mdio", "MdioReader", "MdioWriter", "distributed"),
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
        segy: SEG-Y header bytes, :class:`~impeccable.runtime.volumes.segy.SegyReader`'s ``iline``, ``xline``,
            ``line_key``, ``cdp`` (ignored for other formats).
    """
    path = Path(path)
    directory = path.suffix.lower() in DIRECTORY_FORMATS  # a .zarr / .mdio store is a directory
    if path.is_dir() and not directory:
        raise InputError("input is a directory", received=str(path), expected="a .npy, .h5 or SEG-Y file",
                         todo="pass the volume file inside it")
    if not (path.is_dir() if directory else path.is_file()):
        raise InputError("input file not found", received=str(path),
                         expected="an existing .npy, .h5, SEG-Y file or .zarr / .mdio store", todo="check the path")
    reader_cls, _ = _format_of(path)
    options = (segy or {}) if FORMATS[path.suffix.lower()][3] == "segy" else {}
    return reader_cls(path, time_axis=time_axis, dataset=dataset, **options)


def open_writer(path: str | Path, like: VolumeReader, dtype: np.dtype | type = np.float32,
                overwrite: bool = False) -> VolumeWriter:
    """Open an output volume of the same format, shape and orientation as ``like``'s source.

    The output's format follows ``path``'s extension, which must be the input's (SEG-Y headers and HDF5
    dataset names come from ``like``). ``overwrite`` lets the commit replace an existing file; without it
    the commit never replaces one, also one that appeared during the run.
    """
    path = Path(path)
    _, writer_cls = _format_of(path)
    writer = writer_cls(path, like=like, dtype=np.dtype(dtype))
    writer.overwrite = overwrite
    return writer
