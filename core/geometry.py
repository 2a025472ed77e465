"""Volume orientation and section padding (DESIGN §2).

Canonical in-memory orientation is ``(inline, crossline, sample)``: time/depth last. A model input image is
one vertical section, rows = traces, columns = samples, zero-padded at the END of both axes to the model's
window (320 x 1280 for the shipped model).
"""

from __future__ import annotations

import numpy as np

from impeccable.core.errors import InputError

#: The shipped model's input window, (traces, samples).
WINDOW = (320, 1280)


def resolve_time_axis(shape: tuple[int, ...], time_axis: int | str = "auto") -> int:
    """Return the index of the time/depth axis of a 3-D volume.

    Args:
        shape: The stored volume's shape, three axes.
        time_axis: ``0``, ``2`` (or ``1``), or ``"auto"`` to pick the unique longest axis (refused when that is the
            middle one: stored volumes have time first or last).

    Raises:
        InputError: The shape is not 3-D, the axis is out of range, or ``auto`` finds no unique longest axis or
            the middle one.
    """
    if len(shape) != 3:
        raise InputError(
            f"volume has {len(shape)} dimension(s)",
            received=f"shape {tuple(shape)}",
            expected="a 3-D volume (inline, crossline, sample) or (sample, inline, crossline)",
            todo="pass a 3-D array",
        )
    if time_axis == "auto":
        longest = max(shape)
        candidates = [i for i, n in enumerate(shape) if n == longest]
        if len(candidates) != 1:
            raise InputError(
                "cannot tell the time axis: the longest axis is not unique",
                received=f"shape {tuple(shape)}",
                expected="one axis longer than the other two",
                todo="pass --time-axis 0 or --time-axis 2",
            )
        if candidates[0] == 1:
            # Stored volumes are (inline, crossline, time) or (time, inline, crossline); a middle axis longest is
            # most often a 2-D line stored (1, traces, samples) with more traces than samples, and taking its
            # traces for time would write back garbage without a word.
            raise InputError(
                "cannot tell the time axis: the longest axis is the middle one",
                received=f"shape {tuple(shape)}",
                expected="time last (inline, crossline, sample) or first (sample, inline, crossline)",
                todo="pass --time-axis 2 (time last) or --time-axis 0 (time first)",
            )
        return candidates[0]
    axis = int(time_axis)
    if axis not in (0, 1, 2):
        raise InputError("time axis out of range", received=time_axis, expected="0, 1, 2 or auto",
                         todo="pass --time-axis 0, 2 or auto")
    return axis


def to_canonical(volume: np.ndarray, time_axis: int) -> np.ndarray:
    """View a stored volume in ``(inline, crossline, sample)`` order, without copying.

    The two horizontal axes keep their stored order (``np.moveaxis``, never ``.T``, which would swap
    inline and crossline for a time-first volume).
    """
    return np.moveaxis(volume, time_axis, -1)


def from_canonical(volume: np.ndarray, time_axis: int) -> np.ndarray:
    """Inverse of :func:`to_canonical`: view an ``(inline, crossline, sample)`` volume in stored order."""
    return np.moveaxis(volume, -1, time_axis)


def pad_sections(sections: np.ndarray, window: tuple[int, int] = WINDOW, pad_value: float = 0.0) -> np.ndarray:
    """Pad a stack of sections at the end of both axes to the model window.

    Args:
        sections: ``(n, traces, samples)`` float32, each no larger than ``window``.
        window: ``(traces, samples)`` of the model input.
        pad_value: What fills the window beyond the data: the card's (0 for the seed's zero padding, the
            data's zero level 0.5 for robust-scaled models).

    Returns:
        ``(n, 1, window[0], window[1])`` float32, the sections in the top-left corner (the seed's
        ``x[:300, :1259] = section``), ``pad_value`` elsewhere.
    """
    n, rows, cols = sections.shape
    if rows > window[0] or cols > window[1]:
        raise InputError("section larger than the model window", received=(rows, cols), expected=f"<= {window}",
                         todo="tile the section (core.tiling) before padding")
    out = np.full((n, 1, window[0], window[1]), pad_value, dtype=np.float32)
    out[:, 0, :rows, :cols] = sections
    return out
