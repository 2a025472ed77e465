"""Per-volume amplitude scaling (DESIGN §3).

The model sees ``(v - min) / (max - min)`` over the whole noisy volume, in float32, with NaN/Inf replaced
by 0 first; its sigmoid output lies in ``[0, 1]``. Outputs go back to the volume's units (``input``), stay
raw (``unit``), or take the challenge's uint8 scale (``uint8``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impeccable.core.errors import InputError

SCALES = ("input", "unit", "uint8")


@dataclass(frozen=True)
class VolumeStats:
    """Range of a volume's finite values, and how many non-finite values it held.

    Attributes:
        vmin: Minimum after NaN/Inf were replaced by 0.
        vmax: Maximum after NaN/Inf were replaced by 0.
        nonfinite: Count of NaN/Inf samples (they are read as 0).
    """

    vmin: float
    vmax: float
    nonfinite: int = 0

    def check_not_constant(self) -> None:
        """Raise InputError when the volume is constant (max == min): min-max scaling is undefined."""
        if not self.vmax > self.vmin:
            why = f" after replacing {self.nonfinite} NaN/Inf by 0" if self.nonfinite else ""
            raise InputError(
                f"volume is constant{why}",
                received=f"every sample = {self.vmin:g}",
                expected="a volume with at least two distinct values",
                todo="check that the file holds seismic amplitudes",
            )


def volume_stats(volume: np.ndarray, chunk: int = 16) -> VolumeStats:
    """Min, max and non-finite count of a volume, reading ``chunk`` slices of axis 0 at a time.

    Memory stays bounded by one chunk, so a memory-mapped volume larger than RAM can be scanned.

    Args:
        volume: Any 3-D array (any axis order, any real dtype).
        chunk: Slices of axis 0 per read.
    """
    vmin, vmax, nonfinite = np.inf, -np.inf, 0
    for start in range(0, volume.shape[0], chunk):
        block = np.asarray(volume[start:start + chunk])
        if block.dtype.kind == "f":
            finite = np.isfinite(block)
            bad = int(block.size - np.count_nonzero(finite))
            if bad:
                nonfinite += bad
                block = np.where(finite, block, 0)
        if block.size:
            vmin = min(vmin, float(block.min()))
            vmax = max(vmax, float(block.max()))
    return VolumeStats(vmin=vmin, vmax=vmax, nonfinite=nonfinite)


def normalize(block: np.ndarray, stats: VolumeStats) -> np.ndarray:
    """Min-max scale a block of a volume to ``[0, 1]`` float32 with the volume's statistics.

    NaN/Inf become 0 before scaling (as :func:`volume_stats` counted them).
    """
    out = np.asarray(block, dtype=np.float32)
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    scale = np.float32(1.0 / (stats.vmax - stats.vmin))
    return (out - np.float32(stats.vmin)) * scale


def denormalize(unit: np.ndarray, stats: VolumeStats) -> np.ndarray:
    """Map a ``[0, 1]`` prediction back to the volume's own amplitude units (float32)."""
    return unit.astype(np.float32) * np.float32(stats.vmax - stats.vmin) + np.float32(stats.vmin)


def to_uint8(unit: np.ndarray, pmin: float, pmax: float) -> np.ndarray:
    """The official scorer's scale: ``(p - pmin) / (pmax - pmin) * 255`` then truncating ``astype(uint8)``.

    ``pmin`` and ``pmax`` are the whole prediction volume's extremes (a two-pass job for a streamed volume).
    """
    if pmax <= pmin:
        return np.zeros(unit.shape, dtype=np.uint8)
    scaled = (unit.astype(np.float64) - pmin) / (pmax - pmin) * 255.0
    return scaled.astype(np.uint8)
