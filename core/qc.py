"""Quality control of a denoising run: what was removed, and whether signal leaked into it.

Three figures per volume, from the input ``x`` and the output ``y`` (both in the input's units) and the
removed part ``r = x - y``:

- ``removed_energy``: ``sum r^2 / sum (x - mean x)^2``, the share of the input's energy (about its mean) that
  the run took out. Near the noise share for a good denoiser; near 0 for ``--strength 0``.
- ``removed_mean_of_std``: ``mean(r) / std(x)``: an offset the run added (0 for an amplitude-preserving run).
- ``leakage``: the mean absolute *local similarity* between ``r`` and the denoised signal (Chen & Fomel 2015,
  "Random noise attenuation using local signal-and-noise orthogonalization", Geophysics 80(6)), on sampled
  inline sections. Random noise removed is locally orthogonal to the signal (low similarity); signal removed
  with it (a blurred or shifted output) is locally similar to what stayed. A global correlation says nothing
  here: the least-squares amplitude fit makes it zero by construction.

Local similarity: Chen & Fomel define it as ``sqrt(c1 * c2)`` of two regularized local regressions of ``r``
on ``y`` and ``y`` on ``r``; with a smoothing shaping operator ``S`` (here a box window of
:data:`LEAKAGE_WINDOW` traces x samples) that is ``S[r y] / sqrt(S[r^2] S[y^2])``, a local correlation
coefficient in ``[-1, 1]``. The window is large enough that the similarity of pure noise stays near the
value random samples give (about 0.05), small enough to follow a reflector's local waveform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import uniform_filter

#: Smoothing window of the local similarity, (traces, samples).
LEAKAGE_WINDOW = (9, 41)
#: Above this mean local similarity the run warns that signal leaked into the removed part (measured: 0.36-0.44
#: on denoised held-out volumes of both synthetic families, where band-limited noise shares the signal's band).
LEAKAGE_WARN = 0.5
#: Inline sections the leakage is measured on (evenly spaced; enough for a stable mean, cheap on a survey).
LEAKAGE_SECTIONS = 16


def local_similarity(removed: np.ndarray, signal: np.ndarray, window: tuple[int, int] = LEAKAGE_WINDOW
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Local similarity of two sections and where it is defined.

    Args:
        removed: ``(traces, samples)`` section of the removed part (zero-mean).
        signal: ``(traces, samples)`` section of the denoised signal, its volume mean subtracted.
        window: Box smoothing window (traces, samples).

    Returns:
        ``(similarity, defined)``: float64 ``(traces, samples)`` in ``[-1, 1]``, and a bool mask of the samples
        where both parts carry energy (silent areas such as a water column have no similarity).
    """
    r = np.asarray(removed, dtype=np.float64)
    s = np.asarray(signal, dtype=np.float64)
    size = (min(window[0], r.shape[0]), min(window[1], r.shape[1]))
    rs = uniform_filter(r * s, size=size, mode="reflect")
    rr = np.maximum(uniform_filter(r * r, size=size, mode="reflect"), 0.0)  # rounding can dip below 0
    ss = np.maximum(uniform_filter(s * s, size=size, mode="reflect"), 0.0)
    power = rr * ss
    floor = 1e-6 * max(float(np.mean(rr)), 1e-300) * max(float(np.mean(ss)), 1e-300)
    defined = power > floor
    similarity = np.zeros_like(r)
    np.divide(rs, np.sqrt(power), out=similarity, where=defined)
    return np.clip(similarity, -1.0, 1.0), defined


def leakage_inlines(inlines: int, count: int = LEAKAGE_SECTIONS) -> list[int]:
    """Evenly spaced inline indices the leakage is measured on (all of them for a small volume)."""
    if inlines <= count:
        return list(range(inlines))
    return sorted({int(round(i)) for i in np.linspace(0, inlines - 1, count)})


@dataclass
class QualityControl:
    """Accumulates the QC figures of one volume, block by block of inlines.

    Sums are kept per inline and added exactly at the end (:func:`math.fsum`), so the figures do not depend on
    how the volume was cut into blocks or tasks.

    Attributes:
        mean: The input's mean over the samples that count (finite, live), in its units (from the fit).
        sampled: Inline indices whose leakage is measured.
    """

    mean: float
    sampled: list[int]
    rows: list[np.ndarray] = field(default_factory=list)
    similarity: dict[int, tuple[float, int]] = field(default_factory=dict)

    def add(self, first_inline: int, inputs: np.ndarray, output: np.ndarray, live: np.ndarray | None = None) -> None:
        """Take a block of inlines ``first_inline:first_inline + n``.

        Args:
            first_inline: Index of the block's first inline.
            inputs: Input block ``(inline, crossline, sample)`` in the input's units.
            output: Output block, same shape and units.
            live: Optional ``(inline, crossline)`` bool of the traces that count.
        """
        rows = np.zeros((inputs.shape[0], 4), dtype=np.float64)
        for i in range(inputs.shape[0]):
            x = np.asarray(inputs[i], dtype=np.float64)
            y = np.asarray(output[i], dtype=np.float64)
            keep = np.isfinite(x)
            if live is not None:
                keep &= np.asarray(live[i], dtype=bool)[:, None]
            r = np.where(keep, x - y, 0.0)
            dx = np.where(keep, x - self.mean, 0.0)
            rows[i] = (np.count_nonzero(keep), r.sum(), (r * r).sum(), (dx * dx).sum())
            if first_inline + i in self.sampled and keep.any():
                sim, defined = local_similarity(r, np.where(keep, y - self.mean, 0.0))
                defined &= keep
                self.similarity[first_inline + i] = (float(np.abs(sim[defined]).sum()), int(defined.sum()))
        self.rows.append(rows)

    def report(self) -> dict:
        """The figures: ``removed_energy``, ``removed_mean``, ``removed_mean_of_std``, ``leakage``, ``warnings``."""
        rows = np.concatenate(self.rows) if self.rows else np.zeros((0, 4))
        n, sr, srr, sdd = (math.fsum(col) for col in rows.T) if rows.size else (0.0, 0.0, 0.0, 0.0)
        std = math.sqrt(sdd / n) if n else 0.0
        mean_r = sr / n if n else 0.0
        sim_sum = math.fsum(v[0] for v in self.similarity.values())
        sim_n = sum(v[1] for v in self.similarity.values())
        leakage = sim_sum / sim_n if sim_n else 0.0
        out = {"samples": int(n), "removed_energy": srr / sdd if sdd > 0 else 0.0, "removed_mean": mean_r,
               "removed_mean_of_std": mean_r / std if std > 0 else 0.0, "leakage": leakage,
               "leakage_sections": len(self.similarity), "warnings": []}
        if leakage > LEAKAGE_WARN:
            out["warnings"].append(
                f"signal leakage {leakage:.2f} > {LEAKAGE_WARN}: the removed part is locally similar to the "
                "denoised signal (the model is taking signal out); lower --strength or check the preview")
        return out
