"""Post-stack SEG-Y surveys (segyio): lazy canonical reads, header-preserving atomic writes.

A SEG-Y file stores one trace per location. The trace headers place each in a canonical
``(inline, crossline)`` grid (:mod:`impeccable.runtime.volumes.segy_geometry`): a regular 3-D cube, an irregular
3-D survey (cells no trace fills are *absent*), or 2-D lines (each line one inline). :class:`SegyReader`
maps a canonical ``(inline, crossline, sample)`` block onto trace indices and reads only those traces: for
a regular grid with segyio's strided raw reads (a block along the file's sorting is one contiguous read; a
block across it one strided read per line of the smaller side), for an irregular one as runs of
consecutive trace indices. Memory is bounded by the block either way. The time axis is fixed by the
format (samples within a trace), so ``time_axis`` must be ``auto`` or ``2``.

:class:`SegyWriter` copies the input file (textual, extended textual and binary headers, every trace header,
the sample format) to a temporary file beside the output and overwrites only the trace samples, which
segyio converts into the file's own sample format (IBM float, IEEE float, integers): absent cells are never
written, dead traces get zeros. ``commit`` renames it into place; ``abort`` deletes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import segyio

from impeccable.core.errors import InputError, OutputError
from impeccable.runtime.volumes.segy_geometry import (CDP_BYTE, ILINE_BYTE, XLINE_BYTE, Headers, check_decodable,
                                               infer_geometry, sample_format)
from impeccable.runtime.volumes import TempFileCommit

# segyio's sorting codes.
_INLINE_SORTED = segyio.TraceSortingFormat.INLINE_SORTING
_CROSSLINE_SORTED = segyio.TraceSortingFormat.CROSSLINE_SORTING

def _check_time_axis(time_axis: int | str) -> None:
    if str(time_axis) not in ("auto", "2"):
        raise InputError("a time axis cannot be chosen for SEG-Y", received=f"time axis {time_axis}",
                         expected="auto (SEG-Y stores samples within traces: time is always last)",
                         todo="leave --time-axis at auto for SEG-Y input")


def _positive(r: range) -> tuple[range, bool]:
    """The same indices with a positive step, and whether they were reversed."""
    return (r[::-1], True) if r.step < 0 else (r, False)


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` runs of consecutive values of a sorted index array."""
    if not indices.size:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [indices.size]])
    return [(int(indices[a]), int(indices[b - 1]) + 1) for a, b in zip(starts, stops)]


class SegyReader:
    """A post-stack SEG-Y survey read lazily in ``(inline, crossline, sample)`` order.

    The grid comes from the trace headers (:mod:`impeccable.runtime.volumes.segy_geometry`): a regular or irregular
    3-D survey, or 2-D lines (one line = one inline). Absent cells read as zeros; ``live_mask`` tells the
    pipeline which traces hold data, so that it fills the others for the model and leaves them out of the
    statistics, and the writer never writes absent cells and writes zeros into dead traces.

    Args:
        path: The file.
        time_axis: ``"auto"`` or ``2`` only: SEG-Y stores time within each trace.
        dataset: Unused (HDF5 only).
        iline: Trace-header byte of the inline number [default: 189, SEG-Y rev1].
        xline: Trace-header byte of the crossline number [default: 193, SEG-Y rev1].
        line_key: Read the file as 2-D lines told apart by this header byte [default: 3-D when the inline
            and crossline bytes give every trace its own cell, else 2-D lines keyed by the inline byte].
        cdp: Trace-header byte that orders the traces along a 2-D line [default: 21, CDP].

    Attributes:
        path: The file.
        shape: Canonical ``(inline, crossline, sample)`` shape.
        dtype: ``float32``: what reads return (the stored format is ``sample_format``).
        sample_format: segyio's description of the stored samples, e.g. ``4-byte IBM float``.
        format_code: The binary header's sample format code.
        geometry: Where each trace sits (:class:`~impeccable.runtime.volumes.segy_geometry.Geometry`).
        sorting: ``inline`` or ``crossline`` (regular grids stored in that order), else ``irregular``.
        ilines: Inline (or 2-D line) numbers, canonical axis 0.
        xlines: Crossline numbers (or positions along 2-D lines), canonical axis 1.
        samples: Sample times/depths from the headers.
        sample_interval: The binary header's sample interval in ms (the first trace header's where the binary
            header has 0), None when both are 0.
        depth: False: SEG-Y has no reliable flag for a depth volume (``--sample-interval`` overrides the interval).
        tracecount: Traces in the file.
        endian: ``big`` or ``little``.
        views: Section directions the geometry has: ``("inline",)`` for 2-D lines.
        fill: How the pipeline fills non-live traces for the model: ``mirror`` (see
            :func:`~impeccable.runtime.volumes.fill_absent`).

    Raises:
        InputError: Not readable as SEG-Y, an undecodable sample format, pre-stack (several offsets), or
            headers that give neither a grid nor 2-D lines.
    """

    fill = "mirror"
    depth = False

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None, *,
                 iline: int = ILINE_BYTE, xline: int = XLINE_BYTE, line_key: int | None = None,
                 cdp: int = CDP_BYTE):
        _check_time_axis(time_axis)
        self.path = Path(path)
        self.iline_byte, self.xline_byte = int(iline), int(xline)
        self.line_key, self.cdp_byte = (None if line_key is None else int(line_key)), int(cdp)
        self.format_code, self.endian = sample_format(self.path)
        check_decodable(self.path, self.format_code)
        self._file = self._open()
        try:
            self.geometry = infer_geometry(self._headers(), self.iline_byte, self.xline_byte, self.cdp_byte,
                                           self.line_key)
            self.sorting = self.geometry.sorting or "irregular"
            self.ilines, self.xlines = self.geometry.ilines, self.geometry.xlines
            self.samples = np.asarray(self._file.samples)
            self.sample_interval = self._interval()
            self.tracecount = int(self._file.tracecount)
            self.sample_format = str(self._file.format)
            self.shape = (len(self.ilines), len(self.xlines), len(self.samples))
            self.dtype = np.dtype(np.float32)
            self.views = ("inline",) if self.geometry.kind == "2-D" else ("inline", "crossline")
            self._present = self.geometry.present
            # Dead: identification code 2 (known now) or all-zero samples (found as blocks are read).
            self._dead = self.geometry.dead.copy()
            # The file's slow and fast axes of a regular grid: trace index = slow_index * n_fast + fast_index.
            self._n_fast = self.shape[1] if self.sorting == "inline" else self.shape[0]
        except BaseException:
            self.close()
            raise

    def _open(self) -> segyio.SegyFile:
        try:
            # The grid is inferred from the headers here, not by segyio (which takes regular grids only).
            return segyio.open(self.path, "r", iline=self.iline_byte, xline=self.xline_byte, ignore_geometry=True,
                               endian=self.endian)
        except (OSError, RuntimeError, ValueError) as exc:
            raise InputError(f"cannot read {self.path.name} as SEG-Y", received=str(exc).splitlines()[0],
                             expected="a SEG-Y file with fixed-length traces",
                             todo="check the file (truncated? another format?)") from exc

    def _interval(self) -> float | None:
        """The binary header's sample interval in ms; the first trace header's where the binary one is 0."""
        micro = int(self._file.bin[segyio.BinField.Interval])
        if micro <= 0 and self._file.tracecount:
            micro = int(self._file.header[0][segyio.TraceField.TRACE_SAMPLE_INTERVAL])
        return micro / 1000.0 if micro > 0 else None

    def _headers(self) -> Headers:
        """The header words the geometry needs (read as it needs them), no samples."""
        def words(byte: int) -> np.ndarray:
            try:
                return np.asarray(self._file.attributes(byte)[:], dtype=np.int64)
            except (KeyError, IndexError, ValueError, RuntimeError) as exc:
                raise InputError("not a SEG-Y trace-header byte", received=byte,
                                 expected="the first byte of a header word, e.g. 189, 193, 9, 21, 5, 17",
                                 todo="check --iline-byte / --xline-byte / --line-key / --cdp-byte") from exc

        return Headers(words, self.iline_byte, self.xline_byte, self.cdp_byte, self.line_key)

    @property
    def live_mask(self) -> np.ndarray | None:
        """``(inline, crossline)`` bool of the traces that hold data, ``None`` when every cell does.

        Absent cells and dead traces (identification code 2) are known when the file opens; all-zero traces
        are found as reads see them, so the mask is complete once every trace was read (the pipeline's
        statistics pass reads them all before anything is denoised or written).
        """
        live = self._present & ~self._dead
        return None if live.all() else live

    @property
    def present_mask(self) -> np.ndarray:
        """``(inline, crossline)`` bool of the cells a trace of the file fills (the only ones written)."""
        return self._present

    @property
    def dead_mask(self) -> np.ndarray:
        """``(inline, crossline)`` bool of present traces that are dead (code 2, or all-zero when read)."""
        return self._dead

    def mark_dead(self, dead: np.ndarray) -> None:
        """Add the all-zero traces another reader of the same file found (``(inline, crossline)`` bool).

        A cluster's statistics pass reads each slab on some worker; merged, their dead traces complete the
        mask of every worker's reader without each reading every trace again.
        """
        dead = np.asarray(dead, dtype=bool)
        if dead.shape != self._dead.shape:
            raise InputError("dead-trace mask does not fit the survey", received=dead.shape,
                             expected=self._dead.shape, todo="report this as a bug")
        self._dead |= dead & self._present

    def trace_index(self, inline: int, crossline: int) -> int:
        """File trace index of canonical position ``(inline, crossline)`` (0-based positions), -1 if absent."""
        return int(self.geometry.index[inline, crossline])

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32 (positions, not numbers); absent cells are 0."""
        ri = range(*inlines.indices(self.shape[0]))
        rx = range(*crosslines.indices(self.shape[1]))
        if self.geometry.sorting is None:
            block = self._read_cells(ri, rx)
        else:
            slow, fast = (ri, rx) if self.sorting == "inline" else (rx, ri)
            block = self._read_grid(slow, fast)
            if self.sorting == "crossline":
                block = np.ascontiguousarray(block.transpose(1, 0, 2))
        if block.size:
            # Why here: finding all-zero traces costs one pass over data already in memory, not another read.
            zero = ~block.any(axis=2)
            if zero.any():
                cells = np.ix_(np.asarray(ri), np.asarray(rx))
                self._dead[cells] |= zero & self._present[cells]
        return block

    def _read_cells(self, ri: range, rx: range) -> np.ndarray:
        """Cells of an irregular grid: the block's present traces, read in file order as runs of traces."""
        out = np.zeros((len(ri), len(rx), self.shape[2]), dtype=np.float32)
        if not out.size:
            return out
        index = self.geometry.index[np.ix_(np.asarray(ri), np.asarray(rx))]
        where = np.flatnonzero(index.ravel() >= 0)
        traces = index.ravel()[where]
        order = np.argsort(traces)
        flat = out.reshape(-1, self.shape[2])
        raw = self._file.trace.raw
        done = 0
        for start, stop in _runs(traces[order]):
            n = stop - start
            flat[where[order[done:done + n]]] = raw[start:stop].reshape(n, -1)
            done += n
        return out
    def _read_grid(self, slow: range, fast: range) -> np.ndarray:
        """Traces ``(len(slow), len(fast), sample)`` float32 of the file's slow x fast grid."""
        (slow, flip_slow), (fast, flip_fast) = _positive(slow), _positive(fast)
        n_samples, nf = self.shape[2], self._n_fast
        raw = self._file.trace.raw
        if not len(slow) or not len(fast):
            return np.empty((len(slow), len(fast), n_samples), dtype=np.float32)
        if slow.step == 1 and fast.step == 1 and len(fast) == nf:
            # Whole lines along the sorting: one contiguous run of traces.
            out = raw[slow.start * nf:(slow[-1] + 1) * nf].reshape(len(slow), nf, n_samples)
            out = out.astype(np.float32, copy=False)
        else:
            out = np.empty((len(slow), len(fast), n_samples), dtype=np.float32)
            if len(slow) <= len(fast):
                # One read per slow line: a run of (strided) traces within it.
                for k, s in enumerate(slow):
                    out[k] = raw[s * nf + fast.start:s * nf + fast[-1] + 1:fast.step]
            else:
                # One strided read per fast position: the same trace of every slow line.
                for j, x in enumerate(fast):
                    out[:, j] = raw[slow.start * nf + x:slow[-1] * nf + x + 1:slow.step * nf]
        if flip_slow:
            out = out[::-1]
        if flip_fast:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def close(self) -> None:
        """Release the file."""
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SegyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def copy_input(like: SegyReader, dest: Path, name: str | None = None) -> None:
    """Copy the input to ``dest``: every header byte and the sample format kept; only samples change later.

    Raises:
        OutputError: The copy fails (no room, no permission); ``name`` names the output in it.
    """
    try:
        shutil.copyfile(like.path, dest)
    except OSError as exc:
        raise OutputError(f"cannot create {name or Path(dest).name}", received=str(exc).splitlines()[0],
                          expected="a writable directory with room for a copy of the input",
                          todo="free disk space or pass -o elsewhere") from exc


class TraceWriter:
    """Writes blocks of inlines into the traces of a copy of the input (:func:`copy_input`), nothing else.

    Each canonical cell is written at its own trace index (absent cells are skipped) and dead traces get
    zeros, so blocks of different inlines touch disjoint traces: the single-process writer and the tasks of
    the distributed runner (each opening the shared copy itself) write the same bytes.

    Args:
        path: The copy.
        like: The input's :class:`SegyReader` (its geometry and its dead traces, complete once every trace
            was read or the mask was set with :meth:`SegyReader.mark_dead`).
        dtype: The block dtype the caller writes (float32, or uint8 for the uint8 scale); the file keeps the
            input's sample format either way, and integer formats get rounded, clipped values.

    Raises:
        OutputError: The file cannot be opened, or the values cannot fit its sample format.
    """

    def __init__(self, path: Path, like: SegyReader, dtype: np.dtype = np.dtype(np.float32)):
        self.like, self.shape = like, like.shape
        try:
            # The reader already checked the grid, so no need for segyio to infer it again.
            self._file = segyio.open(str(path), "r+", iline=like.iline_byte, xline=like.xline_byte,
                                     ignore_geometry=True, endian=like.endian)
        except (OSError, RuntimeError) as exc:
            raise OutputError(f"cannot open {Path(path).name} for writing", received=str(exc).splitlines()[0],
                              expected="a copy of the input on a filesystem this process sees",
                              todo="free disk space or pass -o elsewhere") from exc
        self.file_dtype = np.dtype(self._file.dtype)
        if self.file_dtype.kind in "iu" and np.dtype(dtype).kind in "iu":
            info = np.iinfo(self.file_dtype)
            src = np.iinfo(np.dtype(dtype))
            if src.min < info.min or src.max > info.max:
                self.close()
                raise OutputError("the output values do not fit the SEG-Y sample format",
                                  received=f"{np.dtype(dtype)} values into {like.sample_format}",
                                  expected=f"values in [{info.min}, {info.max}]",
                                  todo="use --scale input for this file")

    def _to_file_dtype(self, block: np.ndarray) -> np.ndarray:
        if self.file_dtype.kind == "f":
            return np.ascontiguousarray(block, dtype=self.file_dtype)
        info = np.iinfo(self.file_dtype)
        # Round rather than truncate, and clip: a cast alone would wrap out-of-range values around.
        return np.ascontiguousarray(np.clip(np.rint(block), info.min, info.max).astype(self.file_dtype))

    def write(self, inlines: slice, block: np.ndarray) -> range:
        """Write ``block`` ``(n_inline, crossline, sample)`` at the inline positions ``inlines``; return them."""
        rows = range(*inlines.indices(self.shape[0]))
        want = (len(rows), *self.shape[1:])
        if block.shape != want:
            raise OutputError("block does not fit the SEG-Y output", received=block.shape, expected=want,
                              todo="write whole inlines (all crosslines and samples)")
        data = self._to_file_dtype(block)
        trace = self._file.trace
        index, dead = self.like.geometry.index, self.like.dead_mask
        zeros = np.zeros(self.shape[2], dtype=data.dtype)
        for k, i in enumerate(rows):
            for x in range(self.shape[1]):
                t = index[i, x]
                if t >= 0:  # absent cells have no trace in the file: never written
                    trace[int(t)] = zeros if dead[i, x] else data[k, x]
        return rows

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SegyWriter(TempFileCommit):
    """A SEG-Y output with the input's headers and sample format, written by blocks of inlines.

    Args:
        path: Final output path.
        like: The input's :class:`SegyReader` (gives the file to copy and its geometry). Only the traces of
            the file are written, each at its own index (absent cells are skipped), and dead traces get zeros.
        dtype: The block dtype the caller writes (float32, or uint8 for the uint8 scale); the file keeps
            the input's sample format either way, and integer formats get rounded, clipped values.

    Raises:
        OutputError: ``like`` is not a SEG-Y reader, the copy fails, or the values cannot fit the format.
    """

    format_name = "SEG-Y"

    def __init__(self, path: Path, like: SegyReader, dtype: np.dtype = np.dtype(np.float32)):
        if not isinstance(like, SegyReader):
            raise OutputError("a SEG-Y output needs a SEG-Y input", received=type(like).__name__,
                              expected="SegyReader (headers are copied from the input)",
                              todo="write .npy or .h5 output for this input")
        self.like = like
        self.shape = like.shape
        self._file = None
        self._begin(path)  # the shared temp file and no-clobber commit (impeccable.core.atomic)
        try:
            copy_input(like, self.tmp, self.path.name)
            self._file = TraceWriter(self.tmp, like, dtype)  # TempFileCommit closes it
        except BaseException:
            self.abort()
            raise
        self.file_dtype = self._file.file_dtype
        self._written = np.zeros(self.shape[0], dtype=bool)

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` at the inline positions ``inlines``."""
        self._written[np.asarray(self._file.write(inlines, block), dtype=np.int64)] = True


def create_segy(path: Path | str, volume: np.ndarray, *, sorting: str = "inline", sample_format: int = 5,
                dt_us: int = 4000, first_inline: int = 1, first_crossline: int = 1, endian: str = "big",
                iline: int = ILINE_BYTE, xline: int = XLINE_BYTE) -> Path:
    """Write a canonical volume as a post-stack 3-D SEG-Y file (for tests, examples and conversions).

    Trace headers carry inline/crossline numbers, a trace sequence number, CDP number and CDP x/y
    coordinates on a 25 m grid; the binary header the sample interval and sorting. Reads ``volume`` one
    inline at a time, so a memory-mapped or HDF5 volume larger than memory works.

    Args:
        path: Output file.
        volume: ``(inline, crossline, sample)`` array-like (ndarray, memmap, h5py dataset).
        sorting: ``inline`` (crosslines vary fastest) or ``crossline``.
        sample_format: SEG-Y format code: 1 IBM float, 5 IEEE float, 2 int32, 3 int16, 8 int8.
        dt_us: Sample interval in microseconds.
        first_inline: Number of the first inline (then +1 per inline).
        first_crossline: Number of the first crossline.
        endian: ``big`` (the standard) or ``little``.
        iline: Trace-header byte for the inline number.
        xline: Trace-header byte for the crossline number.
    """
    n_il, n_xl, n_s = volume.shape
    spec = segyio.spec()
    spec.iline, spec.xline = iline, xline
    spec.format = sample_format
    spec.sorting = _INLINE_SORTED if sorting == "inline" else _CROSSLINE_SORTED
    spec.ilines = list(range(first_inline, first_inline + n_il))
    spec.xlines = list(range(first_crossline, first_crossline + n_xl))
    spec.samples = list(range(n_s))
    spec.offsets = [0]
    spec.endian = endian
    field = segyio.TraceField
    with segyio.create(str(path), spec) as f:
        dtype = np.dtype(f.dtype)
        for i in range(n_il):
            # A copy: segyio converts a float32 trace to IBM float in the buffer it is given (format 1), which
            # would change the caller's volume in place.
            block = np.array(volume[i], copy=True)
            if dtype.kind != "f":
                block = np.rint(block)
            block = np.ascontiguousarray(block, dtype=dtype)
            for x in range(n_xl):
                t = i * n_xl + x if sorting == "inline" else x * n_il + i
                f.header[t] = {
                    field.TRACE_SEQUENCE_LINE: t + 1, field.TRACE_SEQUENCE_FILE: t + 1, field.CDP: t + 1,
                    iline: first_inline + i, xline: first_crossline + x,
                    field.CDP_X: 25 * x, field.CDP_Y: 25 * i, field.SourceGroupScalar: 1,
                    field.TRACE_SAMPLE_COUNT: n_s, field.TRACE_SAMPLE_INTERVAL: dt_us,
                }
                f.trace[t] = block[x]
        f.bin.update(tsort=spec.sorting, hdt=dt_us, dto=dt_us, hns=n_s, nso=n_s)
    return Path(path)


class SegySink:
    """The cluster's SEG-Y output: a copy of the input in the run directory whose traces each task writes.

    Every header byte is kept, as the single-process writer does; each write task opens the copy itself and
    writes the traces of its own inlines' cells (the planner proves that no two tasks write one trace).
    """

    def inline_chunk(self, reader) -> int:
        return 1

    def create(self, run_dir: Path, reader: SegyReader, output: Path, dtype: np.dtype, resumed: bool,
               chunk: int) -> Path:
        import os

        path = Path(run_dir) / f"output{Path(output).suffix.lower()}"
        if not (resumed and path.is_file()):
            tmp = Path(run_dir) / f".output.{os.getpid()}.tmp"
            copy_input(reader, tmp, Path(output).name)
            os.replace(tmp, path)  # a copy cut short is never taken for the sink by --resume
        TraceWriter(path, reader, dtype).close()  # values the sample format cannot hold: refused before any work
        return path

    def write(self, sink: Path, reader: SegyReader, start: int, stop: int, block: np.ndarray) -> None:
        from impeccable.runtime.volumes.files import sync_file

        with TraceWriter(Path(sink), reader, block.dtype) as out:
            out.write(slice(start, stop), block)
        sync_file(sink)
