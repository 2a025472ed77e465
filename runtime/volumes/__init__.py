"""Volume files: one reader/writer protocol, one module per format, one table of formats (:data:`FORMATS`).

Readers present any stored volume in canonical ``(inline, crossline, sample)`` order and read blocks of it
lazily, so volumes larger than memory stream through. Writers write a volume shaped like a reader's source
(same format, orientation, headers), into a temporary file that ``commit()`` renames into place and
``abort()`` deletes: a failed run never leaves a half-written output. Sinks are what a cluster needs of a
format (:class:`ClusterSink`): a temporary output in the run directory that tasks write by regions.

Adding a format is its module (reader, writer, sink) and one :class:`VolumeFormat` entry in :data:`FORMATS`;
every driver (one process, ``--cluster``) finds it there.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from impeccable.core.atomic import AtomicFile
from impeccable.core.errors import EngineError, InputError, OutputError
from impeccable.runtime.volumes.files import FileStamp  # noqa: F401 (the readers' stamp, re-exported)


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
    #: Milliseconds between samples (metres for depth) as the file records it, None when it does not.
    sample_interval: float | None
    #: The vertical axis is depth.
    depth: bool

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


class ClusterSink(Protocol):
    """What the cluster runner needs of a format: a temporary output in the run directory, written by regions.

    Each task opens the sink itself and writes the whole inlines (chunks) it owns; the client commits the sink
    with :func:`~impeccable.runtime.volumes.files.commit_path` when every slab is done.
    """

    def inline_chunk(self, reader: VolumeReader) -> int:
        """The output's chunk along the inlines (slabs are multiples of it; 1: any inline boundary)."""

    def create(self, run_dir: Path, reader: VolumeReader, output: Path, dtype: np.dtype, resumed: bool,
               chunk: int) -> Path:
        """Create the temporary output in ``run_dir`` (kept when ``resumed`` and present); return its path."""

    def write(self, sink: Path, reader: VolumeReader, start: int, stop: int, block: np.ndarray) -> None:
        """Write output inlines ``start:stop`` (``(inline, crossline, sample)``, the output dtype), durably."""


@dataclass(frozen=True)
class VolumeFormat:
    """One volume format: its module and the names the drivers need, imported on first use.

    Attributes:
        name: What messages call it.
        module: The module holding its classes (imported lazily, so segyio/h5py/zarr are needed only for theirs).
        reader: Reader class (:class:`VolumeReader`).
        writer: Writer class (:class:`VolumeWriter`).
        extra: The ``impeccable[...]`` extra that installs its packages ("" if always there).
        directory: Stored as a directory (a Zarr store), not one file.
        sink: Class writing it on a cluster (:class:`ClusterSink`), "" when it cannot be.
        no_sink: Why not, when ``sink`` is "".
        header_options: Its reader takes the SEG-Y header-byte options.
        thread_safe: One open reader may serve several threads (else one per task thread).
    """

    name: str
    module: str
    reader: str
    writer: str
    extra: str = ""
    directory: bool = False
    sink: str = ""
    no_sink: str = ""
    header_options: bool = False
    thread_safe: bool = True

    def load(self, name: str):
        """The class ``name`` of this format's module."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise EngineError(f"reading {self.name} files needs an optional package", received=str(exc),
                              expected=f"impeccable[{self.extra}]" if self.extra else self.module,
                              todo=f"pip install 'impeccable[{self.extra}]'" if self.extra
                              else "reinstall impeccable") from exc
        return getattr(module, name)


_NPY = VolumeFormat("npy", "impeccable.runtime.volumes.npy", "NpyReader", "NpyWriter", sink="NpySink")
_HDF5 = VolumeFormat("HDF5", "impeccable.runtime.volumes.hdf5", "Hdf5Reader", "Hdf5Writer",
                     no_sink="HDF5 cannot be written by many workers at once (one writer)")
_SEGY = VolumeFormat("SEG-Y", "impeccable.runtime.volumes.segy", "SegyReader", "SegyWriter", extra="segy",
                     sink="SegySink", header_options=True,
                     # segyio promises no thread safety for one handle (it has one file position), and the
                     # reader's dead-trace mask grows as it reads.
                     thread_safe=False)
_ZARR = VolumeFormat("Zarr", "impeccable.runtime.volumes.zarr", "ZarrReader", "ZarrWriter", extra="distributed",
                     directory=True, sink="ZarrSink")
_MDIO = VolumeFormat("MDIO", "impeccable.runtime.volumes.mdio", "MdioReader", "MdioWriter", extra="distributed",
                     directory=True, sink="ZarrSink")

#: File extension -> its format.
FORMATS: dict[str, VolumeFormat] = {".npy": _NPY, ".h5": _HDF5, ".hdf5": _HDF5, ".sgy": _SEGY, ".segy": _SEGY,
                                    ".zarr": _ZARR, ".mdio": _MDIO}
#: Formats stored as a directory (a Zarr store), not one file.
DIRECTORY_FORMATS = tuple(ext for ext, f in FORMATS.items() if f.directory)
#: Formats a cluster writes (each task its own inlines).
CLUSTER_FORMATS = tuple(ext for ext, f in FORMATS.items() if f.sink)


def format_of(path: str | Path) -> VolumeFormat:
    """The format of ``path``, by its extension.

    Raises:
        InputError: An extension no format has.
    """
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise InputError("unsupported file type", received=Path(path).name, expected=f"one of {', '.join(FORMATS)}",
                         todo="convert the volume to .npy, .h5 or SEG-Y")
    return FORMATS[ext]


def cluster_sink(path: str | Path) -> ClusterSink:
    """The cluster sink of ``path``'s format.

    Raises:
        InputError: A format a cluster cannot write (the message says why).
    """
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None or not fmt.sink:
        raise InputError(fmt.no_sink if fmt and fmt.no_sink else "this format is not supported with --cluster yet",
                         received=Path(path).name, expected=" or ".join(CLUSTER_FORMATS) + " with --cluster",
                         todo="run without --cluster, or convert to Zarr")
    return fmt.load(fmt.sink)()


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
    fmt = format_of(path)
    options = (segy or {}) if fmt.header_options else {}
    return fmt.load(fmt.reader)(path, time_axis=time_axis, dataset=dataset, **options)


def open_writer(path: str | Path, like: VolumeReader, dtype: np.dtype | type = np.float32,
                overwrite: bool = False) -> VolumeWriter:
    """Open an output volume of the same format, shape and orientation as ``like``'s source.

    The output's format follows ``path``'s extension, which must be the input's (SEG-Y headers and HDF5
    dataset names come from ``like``). ``overwrite`` lets the commit replace an existing file; without it
    the commit never replaces one, also one that appeared during the run.
    """
    path = Path(path)
    fmt = format_of(path)
    writer = fmt.load(fmt.writer)(path, like=like, dtype=np.dtype(dtype))
    writer.overwrite = overwrite
    return writer
