"""Amplitude-preserving output: a per-volume least-squares gain and offset, fitted to the input (DESIGN §3).

The network's sigmoid output ``u`` lies on the *clean* volume's min-max scale, which is not the noisy input's:
mapping it back with the inverse of the input normalization (``u * (max - min) + min``) leaves an offset and a
gain error (measured: the output's mean 0.3 of the input's std below it on a real cube). So the ``input`` scale
fits, once per volume, the affine map that brings the prediction closest to the input in least squares::

    x_n = (x - min) / (max - min)            # the input, normalized as the model saw it
    minimize  sum (x_n - gain * u - offset)^2  over the finite (and live) samples

and writes ``(gain * u + offset) * (max - min) + min``. With an intercept in the fit, the removed part
``r = input - output`` has zero mean, and it is uncorrelated with the output over the volume: no systematic
gain. The fit is solved in those min-max coordinates whatever the model's scaling; the run reports it against
the raw inverse of the model's own scaling (:meth:`AmplitudeFit.as_dict`): ``gain == 1`` and ``offset == 0``
mean the raw inverse was already right. (For a ``robust`` model the raw inverse is ``(u - 0.5) * spread / 0.25
+ center``, which in min-max coordinates is a gain of ``4 * spread / (max - min)``, not 1: the solved gain of
Alaska's line is 0.515, the reported one 1.061.)

Why a least-squares fit to the *noisy* input is the right target: if the prediction were the clean signal
``s`` and the input ``s + n`` with zero-mean noise uncorrelated with ``s``, the fit returns gain 1 and offset
0 exactly, so it restores true amplitudes without knowing the clean volume.

A field-ready (``robust``) model never gets more than the raw inverse's gain. Its output is already in the
input's units, and the fit to the *noisy* input overshoots whenever the output still holds some of the noise
``e``: the least-squares gain is then the clean-signal gain plus ``var(e) / var(u)``, so a gain above 1 amplifies
the noise left in and every band the model did not touch (measured on the shipped model: 1.02-1.52 on the
field cases of ``benchmarks/field.py``; capped, the mean SNR gain went +6.45 -> +7.18 dB, higher on all 15
cases). With the cap the output's spectrum stays under the input's wherever the output guard put it there. The
offset is then solved for that gain, so the removed part still has zero mean. ``minmax`` models (the seed's)
predict on the clean volume's own scale, where any gain can be right: they are fitted freely.

Determinism: the six sums are taken per inline (in float64, one inline at a time) and added with
:func:`math.fsum`, which is exact, so the fit does not depend on how the volume is cut into blocks or tasks
(the distributed runner gets the same gain, bit for bit, as one process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from impeccable.core.amplitude import MINMAX, Scaling, VolumeStats

#: Names of the per-inline sums, in column order.
SUM_NAMES = ("n", "x", "u", "xx", "uu", "xu")


def inline_sums(inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats,
                live: np.ndarray | None = None) -> np.ndarray:
    """The fit's sums of each inline of a block: ``(inlines, 6)`` float64, columns :data:`SUM_NAMES`.

    Args:
        inputs: Input block ``(inline, crossline, sample)``, any real dtype, in the input's units.
        unit: The prediction for the same block ``(inline, crossline, sample)`` float32 in ``[0, 1]``.
        stats: The input's statistics (its normalization).
        live: Optional ``(inline, crossline)`` bool: traces that take part (dead or absent ones do not).
    """
    if inputs.shape != unit.shape:
        raise ValueError(f"input block {inputs.shape} and prediction block {unit.shape} differ")
    out = np.zeros((inputs.shape[0], len(SUM_NAMES)), dtype=np.float64)
    scale = 1.0 / (stats.vmax - stats.vmin)
    for i in range(inputs.shape[0]):
        x = (np.asarray(inputs[i], dtype=np.float64) - stats.vmin) * scale
        u = np.asarray(unit[i], dtype=np.float64)
        keep = np.isfinite(x)
        if live is not None:
            keep &= np.asarray(live[i], dtype=bool)[:, None]
        x, u = x[keep], u[keep]
        out[i] = (x.size, x.sum(), u.sum(), (x * x).sum(), (u * u).sum(), (x * u).sum())
    return out


@dataclass(frozen=True)
class AmplitudeFit:
    """The least-squares map from the unit prediction to the normalized input: ``x_n ~ gain * u + offset``.

    Attributes:
        gain: Multiplies the prediction; 1 = the raw inverse normalization was right.
        offset: Added on the normalized scale; 0 = no shift (times ``max - min`` in the input's units).
        samples: Samples the fit used.
        mean: Mean of the input over those samples, in the input's units.
        std: Standard deviation of the input over those samples, in the input's units.
    """

    gain: float = 1.0
    offset: float = 0.0
    samples: int = 0
    mean: float = 0.0
    std: float = 0.0

    @classmethod
    def from_sums(cls, sums: np.ndarray, stats: VolumeStats, scaling: Scaling = MINMAX) -> AmplitudeFit:
        """Fit from per-inline sums (rows of :func:`inline_sums`, any order: they are added exactly).

        ``scaling``: the model's; a ``robust`` model's gain is capped at its raw inverse's (module notes).
        """
        n, sx, su, sxx, suu, sxu = (math.fsum(col) for col in np.asarray(sums, dtype=np.float64).reshape(-1, 6).T)
        if n < 1:
            return cls()
        mx, mu = sx / n, su / n
        var_u = max(0.0, suu / n - mu * mu)
        var_x = max(0.0, sxx / n - mx * mx)
        cov = sxu / n - mx * mu
        raw_gain = _raw_inverse(stats, scaling)[0]
        # A constant prediction has no gain to fit: keep the raw inverse's, match the mean only.
        gain = cov / var_u if var_u > 1e-12 else raw_gain
        if scaling.kind == "robust":
            gain = min(gain, raw_gain)
        offset = mx - gain * mu
        span = stats.vmax - stats.vmin
        return cls(gain=float(gain), offset=float(offset), samples=int(n), mean=float(mx * span + stats.vmin),
                   std=float(math.sqrt(var_x) * span))

    def relative(self, stats: VolumeStats, scaling: Scaling = MINMAX) -> tuple[float, float]:
        """``(gain, offset)`` against the raw inverse of the model's ``scaling``: the gain over the raw inverse's,
        and what the fit adds to it at the data's zero level (``u`` = the scaling's base), in the input's units.

        For ``minmax`` the raw inverse is ``x_n = u`` (:func:`_raw_inverse`), so the figures are the solved ones.
        """
        span = stats.vmax - stats.vmin
        raw_gain, raw_offset = _raw_inverse(stats, scaling)
        at_base = (self.gain - raw_gain) * scaling.base + (self.offset - raw_offset)
        return self.gain / raw_gain, at_base * span

    def as_dict(self, stats: VolumeStats, scaling: Scaling = MINMAX) -> dict:
        """The fit as the run report shows it: against the raw inverse of the model's ``scaling``
        (:meth:`relative`); ``solved_gain`` is the gain in min-max coordinates."""
        gain, offset = self.relative(stats, scaling)
        return {"gain": gain, "offset": offset, "offset_of_std": offset / self.std if self.std > 0 else 0.0,
                "samples": self.samples, "solved_gain": self.gain}

    def apply(self, inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats, strength: float = 1.0) -> np.ndarray:
        """The output in the input's units: ``input - strength * (input - fitted prediction)``, float32.

        ``strength`` 0 returns the input exactly (finite samples); 1 the fitted prediction. At non-finite input
        samples the output is the fitted prediction (the model saw a filled value there; the input has none).

        Args:
            inputs: Input block ``(inline, crossline, sample)`` in the input's units.
            unit: Prediction block, same shape, float32 in ``[0, 1]``.
            stats: The input's statistics.
            strength: 0..1.
        """
        span = stats.vmax - stats.vmin
        fitted = (unit.astype(np.float64) * self.gain + self.offset) * span + stats.vmin
        if strength == 1.0:
            return fitted.astype(np.float32)
        x = np.asarray(inputs, dtype=np.float64)
        out = x - strength * (x - fitted)
        return np.where(np.isfinite(x), out, fitted).astype(np.float32)


def _raw_inverse(stats: VolumeStats, scaling: Scaling) -> tuple[float, float]:
    """``(gain, offset)`` of the scaling's raw inverse in the fit's min-max coordinates.

    ``x_n = u / (g * span) + (c - base / g - vmin) / span`` with ``(c, g)`` the scaling's affine
    (:meth:`~impeccable.core.amplitude.Scaling.affine`): ``(1, 0)`` for ``minmax``.
    """
    span = stats.vmax - stats.vmin
    center, g = scaling.affine(stats)
    return 1.0 / (g * span), (center - scaling.base / g - stats.vmin) / span
