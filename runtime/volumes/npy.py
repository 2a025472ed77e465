"""``.npy`` volumes: memory-mapped reads, never unpickled; atomic memory-mapped writes.

Memory maps keep every page they touch in the process's resident set until unmapped, so a whole-volume pass
would show the whole file in the peak RSS. Worse, a block across the file's slow axis (a crossline block of a
time-last file, an inline block of a time-first one) touches every part of it, and kernels that map the page
cache in large folios (up to 2 MiB) then map nearly the whole file for one block. :class:`MappedVolume` hence
copies blocks in chunks of the file's slowest axis and drops each chunk's pages from this process with
``madvise(MADV_DONTNEED)``: the data stays in (or is written back from) the kernel's page cache, and the RSS
stays bounded by one chunk.

Inputs are read with ``os.preadv`` (:class:`PreadVolume`), not a memory map: a file truncated while it is read
(a copy still under way, another program rewriting it) would raise SIGBUS in a map and kill the process
without a word; a short read instead is an :class:`~impeccable.core.errors.InputError` in one line. Outputs
and scratch files are maps of files preallocated to their full size, which cannot fault that way.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from impeccable.core.atomic import reserve_space, write_error
from impeccable.core.errors import InputError, OutputError
from impeccable.core.npy import open_npy
from impeccable.core.geometry import from_canonical, resolve_time_axis, to_canonical
from impeccable.runtime.volumes import FileStamp, TempFileCommit

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


def _ranges(index: tuple[slice, slice, slice], shape: tuple[int, ...]) -> list[range]:
    return [range(*s.indices(n)) for s, n in zip(index, shape)]


def _local(r: range, lo: int) -> slice:
    """The slice selecting the positions of ``r`` in a buffer that starts at position ``lo`` (a view, no copy)."""
    start = r.start - lo
    stop = start + len(r) * r.step
    return slice(start, stop if stop >= 0 else None, r.step)


class PreadVolume:
    """A ``.npy`` file's array read by ``os.preadv`` in canonical ``(inline, crossline, sample)`` blocks.

    A read never touches more than one row of the file's slowest axis at a time beyond the block itself,
    and a file shorter than at open (truncated during the run) raises instead of faulting.

    Args:
        path: The file.
        offset: Byte offset of the data (after the header).
        dtype: Stored dtype (any byte order).
        stored_shape: The array's shape.
        fortran: Stored in Fortran order.
        time_axis: The stored time axis.
    """

    def __init__(self, path: Path, offset: int, dtype: np.dtype, stored_shape: tuple[int, int, int],
                 fortran: bool, time_axis: int):
        self.path, self.offset, self.dtype = Path(path), int(offset), np.dtype(dtype)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        # The bytes as a C-order array: Fortran order is the C order of the reversed shape.
        self.c_shape = tuple(reversed(stored_shape)) if fortran else tuple(stored_shape)
        stored_of_c = [2 - c for c in range(3)] if fortran else [0, 1, 2]
        canonical_of_stored = {a: k for k, a in enumerate([a for a in range(3) if a != time_axis] + [time_axis])}
        #: canonical axis of each C axis
        self.canon_of_c = [canonical_of_stored[stored_of_c[c]] for c in range(3)]
        shape = [0, 0, 0]
        for c, k in enumerate(self.canon_of_c):
            shape[k] = self.c_shape[c]
        self.shape = tuple(shape)
        self.nbytes = int(np.prod(self.c_shape)) * self.dtype.itemsize

    def _fill(self, buf: np.ndarray, at: int) -> None:
        """Read ``buf.nbytes`` bytes at data offset ``at`` into ``buf`` (C-contiguous)."""
        view = memoryview(buf).cast("B")
        got = 0
        while got < len(view):
            if hasattr(os, "preadv"):  # straight into the block, no copy
                n = os.preadv(self.fd, [view[got:]], self.offset + at + got)
            else:
                data = os.pread(self.fd, len(view) - got, self.offset + at + got)
                n = len(data)
                view[got:got + n] = data
            if n == 0:
                now = os.fstat(self.fd).st_size
                raise InputError(f"{self.path.name} became shorter while it was read",
                                 received=f"{now} bytes", expected=f"{self.offset + self.nbytes} bytes as at open",
                                 todo="rerun once the file is complete (a copy still under way?)")
            got += n

    def read(self, index: tuple[slice, slice, slice], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A C-contiguous ``(n_inline, n_crossline, sample)`` copy of ``canonical[index]`` (three slices)."""
        c_index = tuple(index[k] for k in self.canon_of_c)
        r0, r1, r2 = _ranges(c_index, self.c_shape)
        block = np.empty((len(r0), len(r1), len(r2)), dtype=self.dtype)
        if block.size:
            self._read_c(r0, r1, r2, block)
        order = [self.canon_of_c.index(k) for k in range(3)]
        return np.ascontiguousarray(block.transpose(order), dtype=dtype)

    def _read_c(self, r0: range, r1: range, r2: range, out: np.ndarray) -> None:
        n1, n2 = self.c_shape[1], self.c_shape[2]
        item = self.dtype.itemsize
        lo1, hi1 = min(r1), max(r1) + 1
        lo2, hi2 = min(r2), max(r2) + 1
        # Two ways: one read per (i0, i1) of the run along axis 2, or one per i0 of whole axis-2 rows over
        # the axis-1 span (then sliced). Pick the cheaper (a syscall ~ 2 us, a byte ~ 0.2 ns).
        piecewise = len(r0) * len(r1) * (2e-6 + (hi2 - lo2) * item * 2e-10)
        rows = len(r0) * (2e-6 + (hi1 - lo1) * n2 * item * 2e-10)
        if piecewise < rows and not (lo2 == 0 and hi2 == n2):
            piece = np.empty(hi2 - lo2, dtype=self.dtype)
            for a, i0 in enumerate(r0):
                for b, i1 in enumerate(r1):
                    self._fill(piece, ((i0 * n1 + i1) * n2 + lo2) * item)
                    out[a, b] = piece[_local(r2, lo2)]
            return
        whole = lo2 == 0 and hi2 == n2 and r1.step == 1 and r2.step == 1
        span = None if whole else np.empty((hi1 - lo1, n2), dtype=self.dtype)
        for a, i0 in enumerate(r0):
            at = (i0 * n1 + lo1) * n2 * item
            if whole:
                self._fill(out[a], at)
                continue
            self._fill(span, at)
            out[a] = span[_local(r1, lo1), _local(r2, 0)]  # the span holds whole rows of axis 2

    def close(self) -> None:
        """Close the file."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


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

    #: ``.npy`` records no sample interval (``--sample-interval`` gives it), nor a vertical domain.
    sample_interval: float | None = None
    depth = False

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None):
        self.path = Path(path)
        stored = open_npy(self.path)
        self.time_axis = resolve_time_axis(stored.shape, time_axis)
        self.stored_shape = tuple(stored.shape)
        self.dtype = stored.dtype
        self.stamp = FileStamp.of(self.path)
        # The map only told the layout: reads go through pread (see the module notes on SIGBUS).
        offset = stored.offset if isinstance(stored, np.memmap) else 0
        fortran = bool(stored.flags.f_contiguous and not stored.flags.c_contiguous)
        del stored
        self.volume = PreadVolume(self.path, offset, self.dtype, self.stored_shape, fortran, self.time_axis)
        self.shape = self.volume.shape

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32 (a copy; NaN/Inf left as stored).

        Raises:
            InputError: The file became shorter than at open (truncated during the run).
        """
        return self.volume.read((inlines, crosslines, slice(None)))

    def check_unchanged(self) -> None:
        """Raise InputError if the file's size or modification time differ from those at open."""
        self.stamp.check(self.path)

    def close(self) -> None:
        """Close the file."""
        if getattr(self, "volume", None) is not None:
            self.volume.close()
            self.volume = None

    def __enter__(self) -> NpyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NpyWriter(TempFileCommit):
    """A ``.npy`` output in the input's stored orientation, written to a temp file and renamed on commit.

    The temp file is preallocated to its full size, so a full disk fails at once in one line (a sparse
    memory-mapped file would raise SIGBUS on the first page the disk has no room for).

    Args:
        path: Final output path.
        like: The reader of the input (gives the stored shape and time axis; time last when it has none).
        dtype: Output dtype (float32, or uint8 for the uint8 scale).

    Raises:
        OutputError: The temporary file cannot be created (unwritable directory, disk full).
    """

    format_name = "npy"

    def __init__(self, path: Path, like: NpyReader, dtype: np.dtype = np.dtype(np.float32)):
        self.time_axis = getattr(like, "time_axis", 2)
        stored_shape = getattr(like, "stored_shape", None)
        if stored_shape is None:
            stored_shape = from_canonical(np.empty(like.shape, np.uint8), self.time_axis).shape
        self.shape = tuple(like.shape)
        self.array = self.mapped = None
        self._begin(path)
        try:
            self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=tuple(stored_shape))
        except OSError as exc:
            self.abort()
            raise write_error(exc, self.path, "cannot create the output file") from exc
        self._preallocate(os.path.getsize(self.tmp))
        self.mapped = MappedVolume(self.array, self.time_axis)
        self._written = np.zeros(self.shape[0], dtype=bool)

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` at ``inlines``."""
        self.mapped.write((inlines, slice(None), slice(None)), block)
        self._written[inlines] = True

    def _close(self) -> None:
        array, self.array, self.mapped = self.array, None, None
        if array is not None:
            array.flush()

    def _discard(self) -> None:
        # No flush: writing back pages of a file about to be deleted would only delay a Ctrl-C.
        self.array = self.mapped = None


class NpySink:
    """The cluster's ``.npy`` output: one preallocated file in the run directory that tasks fill through maps."""

    def inline_chunk(self, reader) -> int:
        return 1  # any inline boundary is a chunk boundary

    def create(self, run_dir: Path, reader, output: Path, dtype: np.dtype, resumed: bool, chunk: int) -> Path:
        path = Path(run_dir) / "output.npy"
        if not (resumed and path.is_file()):
            np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(reader.stored_shape)).flush()
            try:  # reserved now: a full disk would otherwise kill the workers (SIGBUS) with no word
                reserve_space(path, path.stat().st_size, output)
            except OutputError:
                path.unlink(missing_ok=True)
                raise
        return path

    def write(self, sink: Path, reader, start: int, stop: int, block: np.ndarray) -> None:
        array = np.load(sink, mmap_mode="r+", allow_pickle=False)
        MappedVolume(array, reader.time_axis).write((slice(start, stop), slice(None), slice(None)), block)
        array.flush()
