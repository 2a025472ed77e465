"""``.npy`` volumes: memory-mapped reads, never unpickled; atomic memory-mapped writes.

Memory maps keep every page they touch in the process's resident set until unmapped, so a whole-volume pass
would show the whole file in the peak RSS. Worse, a block across the file's slow axis (a crossline block of a
time-last file, an inline block of a time-first one) touches every part of it, and kernels that map the page
cache in large folios (up to 2 MiB) then map nearly the whole file for one block. :class:`MappedVolume` hence
copies blocks in chunks of the file's slowest axis and drops each chunk's pages from this process with
``madvise(MADV_DONTNEED)``: the data stays in (or is written back from) the kernel's page cache, and the RSS
stays bounded by one chunk.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path

import numpy as np

from impeccable.core.errors import InputError, OutputError
from impeccable.core.geometry import from_canonical, resolve_time_axis, to_canonical

#: Bytes of a mapped file touched between two page releases.
CHUNK_BYTES = 32 << 20


def release_pages(array: np.ndarray | None) -> None:
    """Drop a memory map's resident pages from this process (data kept in the page cache; dirty pages too).

    Args:
        array: A ``np.memmap`` (or a view of one); anything else is left alone.
    """
    while array is not None and not isinstance(array, np.memmap):
        array = array.base if isinstance(array.base, np.ndarray) else None
    handle = getattr(array, "_mmap", None)
    if handle is None or not hasattr(handle, "madvise"):  # zero-size maps, non-Linux builds
        return
    try:
        handle.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # purely an RSS optimisation: never fail a run over it
        pass


def _runs(index: slice, n: int, per_run: int):
    """Split the positions ``index`` selects on an axis of length ``n`` into runs of ``per_run``.

    Yields ``(offset, length, slice)``: the run's place in the selection and a slice selecting it.
    """
    positions = range(*index.indices(n))
    for offset in range(0, len(positions), per_run):
        run = positions[offset:offset + per_run]
        yield offset, len(run), slice(run.start, run.stop if run.stop >= 0 else None, run.step)


class MappedVolume:
    """A memory-mapped array viewed in canonical ``(inline, crossline, sample)`` order, copied in bounded chunks.

    Args:
        array: The mapped array in its stored order (a ``np.memmap``).
        time_axis: Its time axis (2 for an array already in canonical order).
    """

    def __init__(self, array: np.ndarray, time_axis: int):
        self.array = array
        self.canonical = to_canonical(array, time_axis)
        # Canonical axis of the stored (slowest) axis 0: a run along it is one contiguous stretch of the file.
        self.outer = 2 if time_axis == 0 else 0
        self.per_run = max(1, CHUNK_BYTES // max(1, array[:1].nbytes))
        self.shape = tuple(self.canonical.shape)

    def _split(self, index: tuple[slice, slice, slice]):
        for offset, length, run in _runs(index[self.outer], self.shape[self.outer], self.per_run):
            part = list(index)
            part[self.outer] = run
            place = [slice(None)] * 3
            place[self.outer] = slice(offset, offset + length)
            yield tuple(part), tuple(place)

    def read(self, index: tuple[slice, slice, slice], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A C-contiguous copy of ``canonical[index]`` (three slices)."""
        shape = tuple(len(range(*s.indices(n))) for s, n in zip(index, self.shape))
        out = np.empty(shape, dtype=dtype)
        for part, place in self._split(index):
            out[place] = self.canonical[part]
            release_pages(self.array)
        return out

    def write(self, index: tuple[slice, slice, slice], block: np.ndarray) -> None:
        """``canonical[index] = block`` (three slices; ``block`` shaped like the selection)."""
        for part, place in self._split(index):
            self.canonical[part] = block[place]
            release_pages(self.array)


class NpyReader:
    """A ``.npy`` volume, memory-mapped and viewed in ``(inline, crossline, sample)`` order.

    Args:
        path: The file.
        time_axis: Stored time axis, ``0``, ``2`` or ``"auto"`` (the unique longest axis).
        dataset: Unused (HDF5 only).

    Raises:
        InputError: Pickled/object data (refused, never unpickled), a truncated file, non-numeric samples, not
            3-D, or an ambiguous time axis.
    """

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None):
        self.path = Path(path)
        try:
            # allow_pickle=False: an object array is refused here, never unpickled.
            stored = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            text = str(exc)
            pickled = "pickle" in text or "Python objects" in text
            what = "pickled/object arrays are refused" if pickled else "truncated or unreadable .npy"
            raise InputError(f"cannot read {self.path.name}: {what}", received=text.splitlines()[0],
                             expected="a numeric .npy array saved with np.save",
                             todo="re-save the volume as a plain float or integer array" if pickled
                             else "re-copy or re-save the file") from exc
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read {self.path.name}: truncated or not a .npy file",
                             received=str(exc).splitlines()[0] or type(exc).__name__, expected="a complete .npy file",
                             todo="re-copy or re-save the file") from exc
        if not isinstance(stored, np.ndarray) or stored.dtype.kind not in "fiu":
            raise InputError(f"{self.path.name} does not hold real numbers", received=getattr(stored, "dtype", "?"),
                             expected="float or integer samples", todo="convert the volume to float32")
        self.time_axis = resolve_time_axis(stored.shape, time_axis)
        self.mapped = MappedVolume(stored, self.time_axis)
        self.stored_shape = tuple(stored.shape)
        self.shape = self.mapped.shape
        self.dtype = stored.dtype

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32 (a copy; NaN/Inf left as stored)."""
        return self.mapped.read((inlines, crosslines, slice(None)))

    def close(self) -> None:
        """Unmap the file."""
        self.mapped = None

    def __enter__(self) -> NpyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NpyWriter:
    """A ``.npy`` output in the input's stored orientation, written to a temp file and renamed on commit.

    Args:
        path: Final output path.
        like: The reader of the input (gives the stored shape and time axis; time last when it has none).
        dtype: Output dtype (float32, or uint8 for the uint8 scale).

    Raises:
        OutputError: The temporary file cannot be created (unwritable directory, disk full).
    """

    def __init__(self, path: Path, like: NpyReader, dtype: np.dtype = np.dtype(np.float32)):
        self.path = Path(path)
        self.time_axis = getattr(like, "time_axis", 2)
        stored_shape = getattr(like, "stored_shape", None)
        if stored_shape is None:
            stored_shape = from_canonical(np.empty(like.shape, np.uint8), self.time_axis).shape
        self.tmp: Path | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            os.close(fd)
            self.tmp = Path(tmp)
            self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=tuple(stored_shape))
        except OSError as exc:
            self.abort()
            raise OutputError("cannot create the output file", received=f"{self.path} ({exc.strerror or exc})",
                              expected="a writable directory with room for the volume",
                              todo="free disk space or pass -o elsewhere") from exc
        self.mapped = MappedVolume(self.array, self.time_axis)

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` at ``inlines``."""
        self.mapped.write((inlines, slice(None), slice(None)), block)

    def commit(self) -> None:
        """Flush and move the temp file into place."""
        self.array.flush()
        self.array = self.mapped = None
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)
        self.tmp = None

    def abort(self) -> None:
        """Remove the temp file; the final path is untouched."""
        self.array = self.mapped = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None
