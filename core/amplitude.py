"""Per-volume amplitude scaling (DESIGN §3).

The model sees ``(v - min) / (max - min)`` over the whole noisy volume's finite samples, in float32; its
sigmoid output lies in ``[0, 1]``. Outputs go back to the volume's units (``input``), stay raw (``unit``), or
take the challenge's uint8 scale (``uint8``).

Non-finite samples (NaN, +-Inf: a bad trace, a decoding error, a division by zero upstream) are left out of
the statistics and filled with the **mean of the volume's finite samples** before normalization. The mean
always lies inside ``[min, max]``, and in seismic it is the background level (zero for zero-mean data, the
offset for data on one), so the model sees "no reflection" there and its prediction at those samples is
interpolated from their neighbours, as it does for noise. 0 would be outside the range of a volume on an
offset and, counted in the statistics, rescale every sample (one bad sample would ruin the volume); the
median would need a second pass over a volume larger than memory. The output at those samples holds that
denoised (finite) value: a NaN written back would break the uint8 scale, the scores and most downstream
tools; the run reports how many samples were filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from impeccable.core.errors import InputError

SCALES = ("input", "unit", "uint8")


@dataclass(frozen=True)
class VolumeStats:
    """Range of a volume's finite values, how many non-finite values it held, and what fills them.

    Attributes:
        vmin: Minimum of the finite samples.
        vmax: Maximum of the finite samples.
        nonfinite: Count of NaN/Inf samples.
        fill: The value NaN/Inf samples take before normalization: the finite samples' mean (see the module
            notes); None for statistics made before it existed, then 0 clipped into ``[vmin, vmax]``.
    """

    vmin: float
    vmax: float
    nonfinite: int = 0
    fill: float | None = None

    @property
    def fill_value(self) -> float:
        """The fill for NaN/Inf samples, always inside ``[vmin, vmax]``."""
        value = 0.0 if self.fill is None else self.fill
        return float(min(max(value, self.vmin), self.vmax)) if self.vmax >= self.vmin else 0.0

    def check_not_constant(self) -> None:
        """Raise InputError when the volume is constant (max == min): min-max scaling is undefined."""
        if not self.vmax >= self.vmin:
            raise InputError("volume has no finite sample", received=f"{self.nonfinite} NaN/Inf samples",
                             expected="a volume of finite amplitudes",
                             todo="check that the file holds seismic amplitudes")
        if not self.vmax > self.vmin:
            why = f" (besides {self.nonfinite} NaN/Inf)" if self.nonfinite else ""
            raise InputError(
                f"volume is constant{why}",
                received=f"every sample = {self.vmin:g}",
                expected="a volume with at least two distinct values",
                todo="check that the file holds seismic amplitudes",
            )


def stats_part(volume: np.ndarray, chunk: int = 16) -> dict:
    """The statistics of one part of a volume, to be merged with :func:`merge_stats` (JSON-ready).

    The finite samples' sum is kept per slice of axis 0 (float64), so that the merged mean is the exact sum
    of the same per-slice sums (:func:`math.fsum`) however the volume was cut into parts: one process and the
    distributed runner fill NaN/Inf with the same value, bit for bit.

    Args:
        volume: Any 3-D (or 2-D: traces, samples) array, any real dtype.
        chunk: Slices of axis 0 per read.

    Returns:
        ``{"vmin", "vmax", "nonfinite", "count", "sums"}``.
    """
    vmin, vmax, nonfinite, count, sums = np.inf, -np.inf, 0, 0, []
    for start in range(0, volume.shape[0], chunk):
        block = np.asarray(volume[start:start + chunk])
        for piece in block:
            if piece.dtype.kind == "f":
                finite = np.isfinite(piece)
                bad = int(piece.size - np.count_nonzero(finite))
                if bad:
                    nonfinite += bad
                    piece = piece[finite]
            if piece.size:
                vmin = min(vmin, float(piece.min()))
                vmax = max(vmax, float(piece.max()))
                sums.append(float(piece.sum(dtype=np.float64)))
                count += piece.size
    return {"vmin": vmin, "vmax": vmax, "nonfinite": nonfinite, "count": count, "sums": sums}


def merge_stats(parts: list[dict]) -> VolumeStats:
    """One :class:`VolumeStats` from the :func:`stats_part` of every part of a volume (any order)."""
    count = sum(p["count"] for p in parts)
    total = math.fsum(x for p in parts for x in p["sums"])
    return VolumeStats(vmin=min((p["vmin"] for p in parts), default=np.inf),
                       vmax=max((p["vmax"] for p in parts), default=-np.inf),
                       nonfinite=sum(p["nonfinite"] for p in parts), fill=total / count if count else None)


def volume_stats(volume: np.ndarray, chunk: int = 16) -> VolumeStats:
    """Min, max and mean of a volume's finite samples and its non-finite count, ``chunk`` slices of axis 0 at a time.

    Memory stays bounded by one chunk, so a memory-mapped volume larger than RAM can be scanned. NaN/Inf are
    left out of min, max and mean; the mean becomes :attr:`VolumeStats.fill`.

    Args:
        volume: Any 3-D array (any axis order, any real dtype).
        chunk: Slices of axis 0 per read.
    """
    return merge_stats([stats_part(volume, chunk)])


def normalize(block: np.ndarray, stats: VolumeStats) -> np.ndarray:
    """Min-max scale a block of a volume to ``[0, 1]`` float32 with the volume's statistics.

    NaN/Inf become :attr:`VolumeStats.fill_value` (the finite mean) before scaling, so they land inside
    ``[0, 1]`` like every other sample.
    """
    out = np.asarray(block, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        out = np.where(finite, out, np.float32(stats.fill_value))
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
