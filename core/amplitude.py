"""Per-volume amplitude scaling (DESIGN §3).

Two scalings, named in the model card (:class:`Scaling`):

- ``minmax`` (the seed's, models up to v5): the model sees ``(v - min) / (max - min)`` over the whole noisy
  volume's finite samples, float32, and its sigmoid output lies in ``[0, 1]``. One spike squeezes the whole
  volume into a narrow band, and the zero level of the data lands wherever min and max put it.
- ``robust`` (field-ready models): ``0.5 + 0.25 * (v - center) / spread``, clipped to ``[-1.5, 2.5]``, where
  ``center`` is the median of the per-slice medians and ``spread`` the median over slices of each slice's 99th
  percentile of ``|v - slice median|``. The data's zero level is 0.5 whatever the data's units, 99 % of a
  typical slice lies within ``0.5 +- 0.25``, and a spike cannot move either figure (it only gets clipped at
  8x the spread, which an erratic sample deserves). Per-slice figures merged by a median are the same however
  the volume is cut into whole slices, so one process and the cluster scale alike, bit for bit.

Outputs go back to the volume's units (``input``), stay raw (``unit``), or take the challenge's uint8 scale
(``uint8``).

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
        center: Median of the per-slice medians of the finite samples (the robust scaling's zero level);
            None when not measured.
        spread: Median over slices of each slice's 99th percentile of ``|v - slice median|`` (slices without
            a live sample left out); None when not measured.
    """

    vmin: float
    vmax: float
    nonfinite: int = 0
    fill: float | None = None
    center: float | None = None
    spread: float | None = None

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
        ``{"vmin", "vmax", "nonfinite", "count", "sums", "medians", "spreads"}``: the last two per slice
        (:func:`slice_figures`), merged by a median.
    """
    vmin, vmax, nonfinite, count, sums, medians, spreads = np.inf, -np.inf, 0, 0, [], [], []
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
                median, spread = slice_figures(piece)
                medians.append(median)
                if spread > 0:
                    spreads.append(spread)
    return {"vmin": vmin, "vmax": vmax, "nonfinite": nonfinite, "count": count, "sums": sums,
            "medians": medians, "spreads": spreads}


def slice_figures(values: np.ndarray) -> tuple[float, float]:
    """``(median, 99th percentile of |v - median|)`` of one slice's finite samples (any shape, any real dtype).

    A slice of at most 200 000 samples is measured whole; a larger one on an evenly strided subset of that
    size (a deterministic function of the slice, so every process measures the same figures).
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size > 200_000:
        flat = flat[:: -(-flat.size // 200_000)]
    median = float(np.median(flat))
    return median, float(np.percentile(np.abs(flat - median), 99.0))


def merge_stats(parts: list[dict]) -> VolumeStats:
    """One :class:`VolumeStats` from the :func:`stats_part` of every part of a volume (any order)."""
    count = sum(p["count"] for p in parts)
    total = math.fsum(x for p in parts for x in p["sums"])
    medians = [x for p in parts for x in p.get("medians", ())]
    spreads = [x for p in parts for x in p.get("spreads", ())]
    return VolumeStats(vmin=min((p["vmin"] for p in parts), default=np.inf),
                       vmax=max((p["vmax"] for p in parts), default=-np.inf),
                       nonfinite=sum(p["nonfinite"] for p in parts), fill=total / count if count else None,
                       center=float(np.median(medians)) if medians else None,
                       spread=float(np.median(spreads)) if spreads else None)


def volume_stats(volume: np.ndarray, chunk: int = 16) -> VolumeStats:
    """Min, max and mean of a volume's finite samples and its non-finite count, ``chunk`` slices of axis 0 at a time.

    Memory stays bounded by one chunk, so a memory-mapped volume larger than RAM can be scanned. NaN/Inf are
    left out of min, max and mean; the mean becomes :attr:`VolumeStats.fill`.

    Args:
        volume: Any 3-D array (any axis order, any real dtype).
        chunk: Slices of axis 0 per read.
    """
    return merge_stats([stats_part(volume, chunk)])


@dataclass(frozen=True)
class Scaling:
    """How a model's input is scaled from a volume's units, and its prediction mapped back (the card's
    ``normalization.kind``).

    Attributes:
        kind: ``minmax`` (the seed's, models up to v5) or ``robust`` (see the module notes).
    """

    kind: str = "minmax"

    #: Robust scaling: the slice spread maps to this distance from 0.5 ...
    ROBUST_GAIN = 0.25
    #: ... and inputs are clipped to this range (8x the spread on either side).
    ROBUST_CLIP = (-1.5, 2.5)

    def __post_init__(self) -> None:
        if self.kind not in ("minmax", "robust"):
            raise InputError("unknown normalization in the model card", received=self.kind,
                             expected="minmax or robust", todo="re-export the model with this version")

    @property
    def pad_value(self) -> float:
        """The normalized value the window is padded with: the data's zero level for ``robust``, 0 (the seed's
        padding, which these models were trained with) for ``minmax``."""
        return self.base

    @property
    def base(self) -> float:
        """The model's unit value of the data's zero level (the affine's ``base``): 0.5 robust, 0 minmax."""
        return 0.5 if self.kind == "robust" else 0.0

    def affine(self, stats: VolumeStats) -> tuple[float, float]:
        """``(offset, gain)`` with ``unit = (v - offset) * gain + base`` (base 0.5 for robust, 0 for minmax)."""
        if self.kind == "minmax":
            return stats.vmin, 1.0 / (stats.vmax - stats.vmin)
        center = stats.center if stats.center is not None else (stats.fill if stats.fill is not None else 0.0)
        spread = stats.spread
        if not spread or not spread > 0:  # a volume of one spike in zeros: its full range
            spread = max(abs(stats.vmax - center), abs(stats.vmin - center)) or 1.0
        return center, self.ROBUST_GAIN / spread

    def normalize(self, block: np.ndarray, stats: VolumeStats) -> np.ndarray:
        """A block of a volume (any shape, any real dtype) in the model's units, float32.

        NaN/Inf become :attr:`VolumeStats.fill_value` (the finite mean) before scaling, so they land inside the
        data's own range like every other sample.
        """
        out = np.asarray(block, dtype=np.float32)
        finite = np.isfinite(out)
        if not finite.all():
            out = np.where(finite, out, np.float32(stats.fill_value))
        offset, gain = self.affine(stats)
        out = (out - np.float32(offset)) * np.float32(gain)
        if self.kind == "robust":
            out += np.float32(0.5)
            np.clip(out, *self.ROBUST_CLIP, out=out)
        return out

    def denormalize(self, unit: np.ndarray, stats: VolumeStats) -> np.ndarray:
        """A prediction in the model's units mapped back to the volume's own units (float32)."""
        offset, gain = self.affine(stats)
        return (unit.astype(np.float32) - np.float32(self.base)) * np.float32(1.0 / gain) + np.float32(offset)

    @classmethod
    def of(cls, card: dict) -> Scaling:
        """The scaling a model card names (cards without one: ``minmax``)."""
        kind = (card.get("normalization") or {}).get("kind", "minmax_per_volume")
        return cls("robust" if kind.startswith("robust") else "minmax")


MINMAX = Scaling("minmax")
ROBUST = Scaling("robust")


def normalize(block: np.ndarray, stats: VolumeStats, scaling: Scaling = MINMAX) -> np.ndarray:
    """Scale a block of a volume to the model's units (float32) with the volume's statistics.

    ``minmax`` (the default): ``[0, 1]``; NaN/Inf become :attr:`VolumeStats.fill_value` (the finite mean)
    before scaling, so they land inside ``[0, 1]`` like every other sample.
    """
    return scaling.normalize(block, stats)


def denormalize(unit: np.ndarray, stats: VolumeStats, scaling: Scaling = MINMAX) -> np.ndarray:
    """Map a prediction back to the volume's own amplitude units (float32)."""
    return scaling.denormalize(unit, stats)


def to_uint8(unit: np.ndarray, pmin: float, pmax: float) -> np.ndarray:
    """The official scorer's scale: ``(p - pmin) / (pmax - pmin) * 255`` then truncating ``astype(uint8)``.

    ``pmin`` and ``pmax`` are the whole prediction volume's extremes (a two-pass job for a streamed volume).
    """
    if pmax <= pmin:
        return np.zeros(unit.shape, dtype=np.uint8)
    scaled = (unit.astype(np.float64) - pmin) / (pmax - pmin) * 255.0
    return scaled.astype(np.uint8)
