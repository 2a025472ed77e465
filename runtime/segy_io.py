"""Post-stack 3-D SEG-Y volumes (segyio): lazy canonical reads, header-preserving atomic writes.

A SEG-Y file stores one trace per (inline, crossline) location, sorted by inline (crosslines vary fastest)
or by crossline. :class:`SegyReader` maps a canonical ``(inline, crossline, sample)`` block onto trace
indices and reads only those traces, with segyio's strided raw reads: a block along the file's sorting is
one contiguous read; a block across it (crosslines of an inline-sorted file) is one strided read per line
of the smaller side, slower on disk but bounded in memory. The time axis is fixed by the format (samples
within a trace), so ``time_axis`` must be ``auto`` or ``2``.

:class:`SegyWriter` copies the input file (textual, extended textual and binary headers, every trace header,
the sample format) to a temporary file beside the output and overwrites only the trace samples, which
segyio converts into the file's own sample format (IBM float, IEEE float, integers). ``commit`` renames it
into place; ``abort`` deletes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import segyio

from impeccable.core.errors import InputError, OutputError
from impeccable.runtime.volumes import TempFileCommit

#: Byte positions (1-based, SEG-Y rev1) of the inline and crossline numbers in the trace header.
ILINE_BYTE = 189
XLINE_BYTE = 193

# segyio's sorting codes.
_INLINE_SORTED = segyio.TraceSortingFormat.INLINE_SORTING
_CROSSLINE_SORTED = segyio.TraceSortingFormat.CROSSLINE_SORTING

# Sample format codes segyio reads (binary header bytes 3225-3226).
_FORMATS = {1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 16}
_FORMAT_OFFSET = 3224


def _endianness(path: Path) -> str:
    """``big`` or ``little``, from the binary header's sample format code (segyio does not detect it)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(_FORMAT_OFFSET)
            code = fh.read(2)
    except OSError as exc:
        raise InputError(f"cannot read {path.name}", received=str(exc).splitlines()[0],
                         expected="a readable SEG-Y file", todo="check the path and its permissions") from exc
    if len(code) < 2:
        raise InputError(f"{path.name} is too short to be SEG-Y", received=f"{path.stat().st_size} bytes",
                         expected="a 3600-byte header followed by traces", todo="check the file")
    if int.from_bytes(code, "big") in _FORMATS:
        return "big"
    if int.from_bytes(code, "little") in _FORMATS:
        return "little"
    # Unknown code: segyio falls back to IBM float and warns; big-endian is the standard's default.
    return "big"


def _check_time_axis(time_axis: int | str) -> None:
    if str(time_axis) not in ("auto", "2"):
        raise InputError("a time axis cannot be chosen for SEG-Y", received=f"time axis {time_axis}",
                         expected="auto (SEG-Y stores samples within traces: time is always last)",
                         todo="leave --time-axis at auto for SEG-Y input")


def _positive(r: range) -> tuple[range, bool]:
    """The same indices with a positive step, and whether they were reversed."""
    return (r[::-1], True) if r.step < 0 else (r, False)


def _describe_headers(path: Path, endian: str, iline: int, xline: int) -> str:
    """What the trace headers hold, for an error about a file that is not a grid."""
    with segyio.open(path, "r", iline=iline, xline=xline, ignore_geometry=True, endian=endian) as f:
        ils = f.attributes(iline)[:]
        xls = f.attributes(xline)[:]
        offsets = f.attributes(segyio.TraceField.offset)[:]
        count = f.tracecount
    n_il, n_xl, n_off = len(np.unique(ils)), len(np.unique(xls)), len(np.unique(offsets))
    return (f"{count} traces with {n_il} distinct inline numbers (byte {iline}), {n_xl} distinct crossline "
            f"numbers (byte {xline}), {n_off} distinct offsets")


class SegyReader:
    """A post-stack 3-D SEG-Y volume read lazily in ``(inline, crossline, sample)`` order.

    Inlines and crosslines are numbered in the order the file first lists them (``ilines``/``xlines``),
    whether it is sorted by inline or by crossline.

    Args:
        path: The file.
        time_axis: ``"auto"`` or ``2`` only: SEG-Y stores time within each trace.
        dataset: Unused (HDF5 only).
        iline: Trace-header byte of the inline number [default: 189, SEG-Y rev1].
        xline: Trace-header byte of the crossline number [default: 193, SEG-Y rev1].

    Attributes:
        path: The file.
        shape: Canonical ``(inline, crossline, sample)`` shape.
        dtype: ``float32``: what reads return (the stored format is ``sample_format``).
        sample_format: segyio's description of the stored samples, e.g. ``4-byte IBM float``.
        sorting: ``inline`` or ``crossline``.
        ilines: Inline numbers, canonical axis 0.
        xlines: Crossline numbers, canonical axis 1.
        samples: Sample times/depths from the headers.
        endian: ``big`` or ``little``.

    Raises:
        InputError: Not readable as SEG-Y, pre-stack (several offsets), or traces that do not form an
            inline x crossline grid.
    """

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None, *,
                 iline: int = ILINE_BYTE, xline: int = XLINE_BYTE):
        _check_time_axis(time_axis)
        self.path = Path(path)
        self.iline_byte, self.xline_byte = int(iline), int(xline)
        self.endian = _endianness(self.path)
        self._file = self._open()
        try:
            self._check_post_stack()
            self.sorting = "inline" if self._file.sorting == _INLINE_SORTED else "crossline"
            self.ilines = np.asarray(self._file.ilines)
            self.xlines = np.asarray(self._file.xlines)
            self.samples = np.asarray(self._file.samples)
            self.sample_format = str(self._file.format)
            self.shape = (len(self.ilines), len(self.xlines), len(self.samples))
            self.dtype = np.dtype(np.float32)
            # The file's slow and fast axes: trace index = slow_index * n_fast + fast_index.
            self._n_fast = self.shape[1] if self.sorting == "inline" else self.shape[0]
            self._check_grid()
        except BaseException:
            self.close()
            raise

    def _open(self) -> segyio.SegyFile:
        opts = dict(iline=self.iline_byte, xline=self.xline_byte, endian=self.endian)
        try:
            # Headers and trace size only: tells "not SEG-Y" apart from "SEG-Y but not a grid".
            segyio.open(self.path, "r", ignore_geometry=True, **opts).close()
        except (OSError, RuntimeError, ValueError) as exc:
            raise InputError(f"cannot read {self.path.name} as SEG-Y", received=str(exc).splitlines()[0],
                             expected="a SEG-Y file with fixed-length traces",
                             todo="check the file (truncated? another format?)") from exc
        try:
            return segyio.open(self.path, "r", **opts)
        except (OSError, RuntimeError, ValueError) as exc:
            # segyio found no sorting, or a trace count that is not ilines x xlines x offsets.
            raise InputError("SEG-Y traces do not form an inline x crossline grid",
                             received=_describe_headers(self.path, self.endian, self.iline_byte, self.xline_byte),
                             expected="a post-stack 3-D volume: one trace per (inline, crossline), sorted by "
                                      "inline or crossline",
                             todo="check the inline/crossline header bytes, or regularize the survey first"
                             ) from exc

    def _check_post_stack(self) -> None:
        n_offsets = len(self._file.offsets)
        if n_offsets > 1:
            shown = self._file.offsets[:5].tolist()
            raise InputError(f"SEG-Y has {n_offsets} offsets per location: a pre-stack gather",
                             received=f"offsets {shown}{'...' if n_offsets > 5 else ''} (trace-header byte 37)",
                             expected="a post-stack 3-D volume, one trace per (inline, crossline)",
                             todo="stack the gathers (or extract one offset) first")
        if self._file.sorting not in (_INLINE_SORTED, _CROSSLINE_SORTED):
            raise InputError("SEG-Y traces do not form an inline x crossline grid",
                             received=f"sorting code {self._file.sorting}", expected="inline or crossline sorting",
                             todo="regularize the survey first")

    def _check_grid(self) -> None:
        """Every trace header must hold the inline/crossline its position implies.

        segyio infers the grid from the first traces and the trace count only; a shuffled or patched
        file would otherwise be read silently in the wrong order. This reads two header words per trace:
        about 7 s per million traces (a 6 GB volume) from the page cache.
        """
        ils = self._file.attributes(self.iline_byte)[:]
        xls = self._file.attributes(self.xline_byte)[:]
        n_il, n_xl = self.shape[:2]
        if self.sorting == "inline":
            want_il, want_xl = np.repeat(self.ilines, n_xl), np.tile(self.xlines, n_il)
        else:
            want_il, want_xl = np.tile(self.ilines, n_xl), np.repeat(self.xlines, n_il)
        bad = np.flatnonzero((ils != want_il) | (xls != want_xl))
        if bad.size:
            t = int(bad[0])
            raise InputError(
                "SEG-Y traces do not form an inline x crossline grid",
                received=f"trace {t} has inline {ils[t]}, crossline {xls[t]} where the {self.sorting}-sorted "
                         f"grid of {n_il} inlines x {n_xl} crosslines puts inline {want_il[t]}, crossline "
                         f"{want_xl[t]} ({bad.size} of {ils.size} traces out of place)",
                expected="one trace per (inline, crossline), in inline or crossline order",
                todo="check the inline/crossline header bytes, or sort/regularize the survey first")

    def trace_index(self, inline: int, crossline: int) -> int:
        """File trace index of canonical position ``(inline, crossline)`` (0-based positions, not numbers)."""
        if self.sorting == "inline":
            return inline * self._n_fast + crossline
        return crossline * self._n_fast + inline

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32 (positions, not inline/crossline numbers)."""
        ri = range(*inlines.indices(self.shape[0]))
        rx = range(*crosslines.indices(self.shape[1]))
        slow, fast = (ri, rx) if self.sorting == "inline" else (rx, ri)
        block = self._read_grid(slow, fast)
        if self.sorting == "crossline":
            block = np.ascontiguousarray(block.transpose(1, 0, 2))
        return block

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


class SegyWriter(TempFileCommit):
    """A SEG-Y output with the input's headers and sample format, written by blocks of inlines.

    Args:
        path: Final output path.
        like: The input's :class:`SegyReader` (gives the file to copy and its geometry).
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
            # A plain copy keeps every header byte and the sample format; only samples change below.
            shutil.copyfile(like.path, self.tmp)
            # The reader already checked the grid, so no need for segyio to infer it again.
            self._file = segyio.open(self.tmp, "r+", iline=like.iline_byte, xline=like.xline_byte,
                                     ignore_geometry=True, endian=like.endian)
        except (OSError, RuntimeError) as exc:
            self.abort()
            raise OutputError(f"cannot create {self.path.name}", received=str(exc).splitlines()[0],
                              expected="a writable directory with room for a copy of the input",
                              todo="free disk space or pass -o elsewhere") from exc
        self.file_dtype = np.dtype(self._file.dtype)
        if self.file_dtype.kind in "iu" and np.dtype(dtype).kind in "iu":
            info = np.iinfo(self.file_dtype)
            src = np.iinfo(np.dtype(dtype))
            if src.min < info.min or src.max > info.max:
                self.abort()
                raise OutputError("the output values do not fit the SEG-Y sample format",
                                  received=f"{np.dtype(dtype)} values into {like.sample_format}",
                                  expected=f"values in [{info.min}, {info.max}]",
                                  todo="use --scale input for this file")
        self._written = np.zeros(self.shape[0], dtype=bool)

    def _to_file_dtype(self, block: np.ndarray) -> np.ndarray:
        if self.file_dtype.kind == "f":
            return np.ascontiguousarray(block, dtype=self.file_dtype)
        info = np.iinfo(self.file_dtype)
        # Round rather than truncate, and clip: a cast alone would wrap out-of-range values around.
        return np.ascontiguousarray(np.clip(np.rint(block), info.min, info.max).astype(self.file_dtype))

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` at the inline positions ``inlines``."""
        rows = range(*inlines.indices(self.shape[0]))
        want = (len(rows), *self.shape[1:])
        if block.shape != want:
            raise OutputError("block does not fit the SEG-Y output", received=block.shape, expected=want,
                              todo="write whole inlines (all crosslines and samples)")
        data = self._to_file_dtype(block)
        trace = self._file.trace
        for k, i in enumerate(rows):
            for x in range(self.shape[1]):
                trace[self.like.trace_index(i, x)] = data[k, x]
            self._written[i] = True


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
            block = np.asarray(volume[i])
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
