"""SEG-Y survey geometry from the trace headers: regular and irregular 3-D grids, 2-D lines, dead traces.

The reader places every trace of a file in a canonical ``(inline, crossline)`` grid:

- **3-D**: inline and crossline numbers from two header bytes (189 / 193 by default). The grid is the union
  of the inline numbers by the union of the crossline numbers; cells no trace fills are *absent* (an
  irregular outline, or holes). A grid with every cell filled once, in inline or crossline order, is
  *regular* and read with strided runs of traces.
- **2-D**: one or several lines, told apart by a line-key byte (the inline byte by default); the traces of
  a line, ordered by their CDP number (byte 21 by default), are one inline of the grid. Lines shorter than
  the longest end in absent cells.

Traces with identification code 2 (dead) stay in the grid but are not live. Nothing here reads samples:
only header words (two to seven 4-byte words per trace) and the binary header.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impeccable.core.errors import InputError

#: Default trace-header bytes (1-based, SEG-Y rev1): inline, crossline, CDP (position along a 2-D line).
ILINE_BYTE, XLINE_BYTE, CDP_BYTE = 189, 193, 21
#: Where files in the wild keep inline / crossline numbers when not in bytes 189 / 193.
COMMON_BYTES = "9/21 (field record / CDP), 5/17, 17/13, 189/193 (SEG-Y rev1)"
#: The least share of an irregular 3-D grid's cells that must hold a trace (random headers fill far less).
MIN_FILL = 0.2
#: Trace identification code of a dead trace (bytes 29-30).
DEAD_CODE = 2

#: Sample format codes (binary header bytes 3225-3226) SEG-Y rev 2 defines, and what each holds.
FORMAT_NAMES = {1: "4-byte IBM float", 2: "4-byte signed integer", 3: "2-byte signed integer",
                4: "4-byte fixed point with gain", 5: "4-byte IEEE float", 6: "8-byte IEEE float",
                7: "3-byte signed integer", 8: "1-byte signed integer", 9: "8-byte signed integer",
                10: "4-byte unsigned integer", 11: "2-byte unsigned integer", 12: "8-byte unsigned integer",
                15: "3-byte unsigned integer", 16: "1-byte unsigned integer"}
#: The codes segyio decodes; the others are refused before segyio opens the file (it would read them as IBM).
DECODED_FORMATS = frozenset({1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 16})
_FORMAT_OFFSET = 3224
_BYTE_ORDER_OFFSET = 3296  # rev 2: the integer 0x01020304 as the file's byte order writes it


def sample_format(path: Path) -> tuple[int, str]:
    """The sample format code and byte order (``big`` / ``little``) from the binary header.

    The rev 2 byte-order word decides when it is set; otherwise the format code, which is small, tells
    which byte order reads it as a code SEG-Y defines.

    Raises:
        InputError: An unreadable or too short file, or a format code no byte order makes sense of.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(_FORMAT_OFFSET)
            code = fh.read(2)
            fh.seek(_BYTE_ORDER_OFFSET)
            order = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read {path.name}", received=str(exc).splitlines()[0],
                         expected="a readable SEG-Y file", todo="check the path and its permissions") from exc
    if len(code) < 2:
        raise InputError(f"{path.name} is too short to be SEG-Y", received=f"{path.stat().st_size} bytes",
                         expected="a 3600-byte header followed by traces", todo="check the file")
    if order == b"\x01\x02\x03\x04":
        return int.from_bytes(code, "big"), "big"
    if order == b"\x04\x03\x02\x01":
        return int.from_bytes(code, "little"), "little"
    big, little = int.from_bytes(code, "big"), int.from_bytes(code, "little")
    if big in FORMAT_NAMES:
        return big, "big"
    if little in FORMAT_NAMES:
        return little, "little"
    raise InputError(f"{path.name} has an unknown SEG-Y sample format code",
                     received=f"bytes 3225-3226 = {big} (big-endian) / {little} (little-endian)",
                     expected=f"one of the codes SEG-Y rev 2 defines: {sorted(FORMAT_NAMES)}",
                     todo="check that the file is SEG-Y (not SU or another format)")


def check_decodable(path: Path, code: int) -> None:
    """Refuse a sample format the reader cannot decode (segyio would silently read it as IBM float)."""
    if code not in DECODED_FORMATS:
        raise InputError(f"SEG-Y sample format {code} ({FORMAT_NAMES.get(code, 'unknown')}) cannot be decoded",
                         received=f"{path.name}, format code {code}",
                         expected=f"one of the formats {sorted(DECODED_FORMATS)} (IBM/IEEE float, integers)",
                         todo="convert the file to IEEE float (format 5), e.g. with segyio or Madagascar")


#: Trace-header bytes of the offset, the trace identification code and the CDP x / y coordinates.
OFFSET_BYTE, TRACE_ID_BYTE, CDP_X_BYTE, CDP_Y_BYTE = 37, 29, 181, 185


class Headers:
    """The header words the geometry needs, one int64 value per trace in file order.

    Args:
        words: Reads one header word of every trace, given its byte.
        iline: Inline byte.
        xline: Crossline byte.
        cdp: CDP byte (2-D lines).
        line_key: Line-key byte (2-D lines), or None.

    The inline, crossline, offset and identification words are read at once; the 2-D ones (CDP, line key,
    coordinates) only when 2-D lines are tried: each word costs about 1.5 s per million traces.
    """

    def __init__(self, words: Callable[[int], np.ndarray], iline: int = ILINE_BYTE, xline: int = XLINE_BYTE,
                 cdp: int = CDP_BYTE, line_key: int | None = None):
        self._words, self._cdp, self._line_key = words, cdp, line_key
        self.iline, self.xline = words(iline), words(xline)
        self.offset, self.trace_id = words(OFFSET_BYTE), words(TRACE_ID_BYTE)

    @functools.cached_property
    def cdp(self) -> np.ndarray:
        return self._words(self._cdp)

    @functools.cached_property
    def line_key(self) -> np.ndarray | None:
        return None if self._line_key is None else self._words(self._line_key)

    @functools.cached_property
    def cdp_x(self) -> np.ndarray:
        return self._words(CDP_X_BYTE)

    @functools.cached_property
    def cdp_y(self) -> np.ndarray:
        return self._words(CDP_Y_BYTE)


@dataclass(frozen=True)
class Geometry:
    """Where each trace of a file sits in the canonical grid.

    Attributes:
        kind: ``3-D`` (regular), ``3-D irregular`` or ``2-D``.
        ilines: Numbers along canonical axis 0: inline numbers, or the line keys of 2-D lines.
        xlines: Numbers along canonical axis 1: crossline numbers, or positions 0..n-1 along 2-D lines.
        index: ``(inline, crossline)`` int64 file trace index of each cell, -1 where no trace is.
        dead: ``(inline, crossline)`` bool, traces whose identification code says dead.
        sorting: ``inline`` or ``crossline`` for a regular grid stored in that order, else ``None``.
    """

    kind: str
    ilines: np.ndarray
    xlines: np.ndarray
    index: np.ndarray
    dead: np.ndarray
    sorting: str | None

    @property
    def present(self) -> np.ndarray:
        """``(inline, crossline)`` bool: cells a trace fills."""
        return self.index >= 0


def _ordered_unique(values: np.ndarray) -> np.ndarray:
    """Distinct numbers sorted the way the file mostly runs through them (ascending unless mostly descending)."""
    step = np.diff(values)
    ascending = np.count_nonzero(step > 0) >= np.count_nonzero(step < 0)
    unique = np.unique(values)
    return unique if ascending else unique[::-1]


def _positions(values: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Position of each value in ``numbers`` (sorted either way)."""
    if len(numbers) > 1 and numbers[0] > numbers[-1]:
        return len(numbers) - 1 - np.searchsorted(numbers[::-1], values)
    return np.searchsorted(numbers, values)


def _describe(h: Headers, iline: int, xline: int, cdp: int) -> str:
    n = lambda a: len(np.unique(a))  # noqa: E731
    return (f"{h.iline.size} traces with {n(h.iline)} distinct inline numbers (byte {iline}), {n(h.xline)} distinct "
            f"crossline numbers (byte {xline}), {n(h.cdp)} distinct CDP numbers (byte {cdp}), "
            f"{n(h.offset)} distinct offsets")


def _not_a_grid(h: Headers, iline: int, xline: int, cdp: int, why: str) -> InputError:
    return InputError("SEG-Y traces do not form an inline x crossline grid",
                      received=f"{_describe(h, iline, xline, cdp)}: {why}",
                      expected="post-stack traces, one per (inline, crossline) of a 3-D survey, or 2-D lines "
                               "of one trace per CDP",
                      todo=f"name the header bytes: --iline-byte N --xline-byte M (tried {iline}/{xline}; common: "
                           f"{COMMON_BYTES}), or --line-key BYTE (--cdp-byte, default {CDP_BYTE}) for 2-D lines")


def _check_post_stack(h: Headers, cells: np.ndarray, iline: int, xline: int, cdp: int) -> None:
    """Refuse two traces in one cell: a pre-stack gather when offsets differ, a bad header choice otherwise."""
    order = np.argsort(cells, kind="stable")
    same = np.flatnonzero(np.diff(cells[order]) == 0)
    if not same.size:
        return
    offsets = np.unique(h.offset)
    if offsets.size > 1:
        shown = offsets[:5].tolist()
        raise InputError(f"SEG-Y has {offsets.size} offsets per location: a pre-stack gather",
                         received=f"offsets {shown}{'...' if offsets.size > 5 else ''} (trace-header byte 37)",
                         expected="post-stack traces, one per (inline, crossline) or per CDP of a 2-D line",
                         todo="stack the gathers (or extract one offset) first")
    a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
    _, counts = np.unique(cells, return_counts=True)
    raise _not_a_grid(h, iline, xline, cdp, f"traces {a} and {b} share one location "
                                            f"({int(counts[counts > 1].sum())} traces in shared locations)")


def _grid(kind: str, ilines: np.ndarray, xlines: np.ndarray, il_pos: np.ndarray, xl_pos: np.ndarray,
          h: Headers) -> Geometry:
    shape = (len(ilines), len(xlines))
    index = np.full(shape, -1, dtype=np.int64)
    index[il_pos, xl_pos] = np.arange(il_pos.size)
    dead = np.zeros(shape, dtype=bool)
    dead[il_pos, xl_pos] = h.trace_id == DEAD_CODE
    sorting = None
    if il_pos.size == index.size:
        if np.array_equal(index.ravel(), np.arange(index.size)):
            sorting = "inline"
        elif np.array_equal(index.T.ravel(), np.arange(index.size)):
            sorting = "crossline"
    if kind == "3-D" and sorting is None:
        kind = "3-D irregular"
    return Geometry(kind, ilines, xlines, index, dead, sorting)


def _grid_3d(h: Headers, iline: int, xline: int, cdp: int) -> Geometry:
    ilines, xlines = _ordered_unique(h.iline), _ordered_unique(h.xline)
    il_pos, xl_pos = _positions(h.iline, ilines), _positions(h.xline, xlines)
    _check_post_stack(h, il_pos * len(xlines) + xl_pos, iline, xline, cdp)
    fill = h.iline.size / (len(ilines) * len(xlines))
    if fill < MIN_FILL:
        raise _not_a_grid(h, iline, xline, cdp, f"they fill {fill:.0%} of that grid's cells")
    return _grid("3-D", ilines, xlines, il_pos, xl_pos, h)


def _looks_like_lines(h: Headers, lines: np.ndarray, order: np.ndarray) -> str | None:
    """Why traces ordered as lines are not 2-D lines (a 3-D survey read with the wrong bytes), or None.

    Along a 2-D line the distance between two traces grows with their CDP numbers' difference at about
    one CDP interval per number; a 3-D survey taken for one line jumps back at the end of every inline,
    several intervals away for a step of one number.
    """
    xy = np.stack([h.cdp_x, h.cdp_y], axis=1).astype(np.float64)[order]
    if not np.ptp(xy, axis=0).any():
        return None  # no coordinates to tell
    same_line = lines[order][1:] == lines[order][:-1]
    numbers = np.abs(np.diff(h.cdp[order]))[same_line]
    steps = np.hypot(*np.diff(xy, axis=0).T)[same_line] / np.maximum(numbers, 1)
    if steps.size < 3:
        return None
    typical = np.median(steps)
    jumps = int(np.count_nonzero(steps > 2 * max(typical, 1e-9)))
    if jumps > steps.size // 100:
        return (f"consecutive CDPs of a line jump {jumps} times by over 2 CDP intervals (x/y bytes 181/185): "
                "a 3-D survey, not 2-D lines")
    return None


def _lines_2d(h: Headers, iline: int, xline: int, cdp: int) -> Geometry:
    """2-D lines told apart by the line key (the inline byte without one), each ordered by CDP number."""
    lines = h.line_key if h.line_key is not None else h.iline
    first = np.unique(lines, return_index=True)
    numbers = first[0][np.argsort(first[1])]  # lines in the order the file starts them
    line_pos = np.searchsorted(first[0], lines)
    rank_of = np.argsort(np.argsort(first[1]))
    line_pos = rank_of[line_pos]
    _check_post_stack(h, line_pos.astype(np.int64) * (int(np.ptp(h.cdp)) + 1) + (h.cdp - h.cdp.min()),
                      iline, xline, cdp)
    # Within a line: by CDP number, in the direction the line runs in the file (stable: ties keep file order).
    same = line_pos[1:] == line_pos[:-1]
    votes = np.bincount(line_pos[1:][same], weights=np.sign(np.diff(h.cdp))[same], minlength=len(numbers))
    direction = np.where(votes < 0, -1, 1)
    order = np.lexsort((h.cdp * direction[line_pos], line_pos))
    why = _looks_like_lines(h, line_pos, order)
    if why:
        raise _not_a_grid(h, iline, xline, cdp, why)
    counts = np.bincount(line_pos, minlength=len(numbers))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    along = np.empty(order.size, dtype=np.int64)
    along[order] = np.arange(order.size) - starts[line_pos[order]]
    return _grid("2-D", numbers, np.arange(counts.max()), line_pos, along, h)


def infer_geometry(h: Headers, iline: int = ILINE_BYTE, xline: int = XLINE_BYTE, cdp: int = CDP_BYTE,
                   line_key: int | None = None) -> Geometry:
    """Place the traces of a file in a canonical grid (see the module docstring).

    With ``line_key`` the file is 2-D lines told apart by that byte. Otherwise it is a 3-D grid when the
    inline / crossline bytes give every trace its own cell, else 2-D lines keyed by the inline byte when
    the CDP byte gives each trace of a line its own number.

    Raises:
        InputError: Pre-stack gathers, or headers that give neither (one line naming the bytes tried).
    """
    if line_key is not None:
        return _lines_2d(h, iline, xline, cdp)
    cells = h.iline * (int(np.ptp(h.xline)) + 1) + (h.xline - h.xline.min())
    shared = np.unique(cells).size < cells.size
    if shared and np.unique(h.xline).size == 1 and np.unique(h.offset).size == 1:
        # Crossline byte unset (a 2-D line, or a 3-D file keeping its numbers elsewhere): try 2-D lines.
        return _lines_2d(h, iline, xline, cdp)
    return _grid_3d(h, iline, xline, cdp)
