"""Sections at the data's sample interval <-> the model's, with an anti-alias filter (DESIGN §2).

A model is trained at one sample interval (4 ms for the shipped ones, in the card). Data at another interval
would show it every event at the wrong frequency: a 2 ms line fed as if it were 4 ms looks half as
high-frequency to the network, and its noise model no longer fits. So the runtime resamples each section's
samples to the model's interval (a polyphase FIR with a Kaiser window, :func:`scipy.signal.resample_poly`,
which low-passes below the lower Nyquist), denoises there, and brings back only what the model *removed*::

    removed_model = x_model - prediction_model
    output        = x - resample(removed_model back to the data's interval)

So the part of the data above the model's band (a 2 ms line's 125-250 Hz) passes through untouched rather than
being cut: the denoiser never removes what it could not see. Time is the last axis everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from impeccable.core.errors import InputError

#: Intervals whose ratio to the model's differs from 1 by less than this are run as they are.
SAME_INTERVAL = 0.01


@dataclass(frozen=True)
class Resampling:
    """Data samples -> model samples by the rational factor ``up / down`` (``data_interval / model_interval``).

    Attributes:
        up: Interpolation factor.
        down: Decimation factor.
    """

    up: int
    down: int

    @classmethod
    def between(cls, data_interval: float | None, model_interval: float | None) -> Resampling | None:
        """The resampling from a data interval to a model's (any unit, both alike), or None when none is needed.

        None when either interval is unknown, or when they differ by under :data:`SAME_INTERVAL`.

        Raises:
            InputError: A non-positive interval.
        """
        if data_interval is None or model_interval is None:
            return None
        if not (data_interval > 0 and model_interval > 0):
            raise InputError("sample interval must be positive", received=f"{data_interval} / {model_interval}",
                             expected="a positive interval in ms", todo="pass --sample-interval MS")
        ratio = data_interval / model_interval
        if abs(ratio - 1.0) < SAME_INTERVAL:
            return None
        frac = Fraction(ratio).limit_denominator(64)
        return cls(frac.numerator, frac.denominator)

    def model_length(self, samples: int) -> int:
        """Samples of a data section of ``samples`` once at the model's interval."""
        return -(-samples * self.up // self.down)

    def to_model(self, sections: np.ndarray) -> np.ndarray:
        """``(..., samples)`` float32 at the data's interval -> ``(..., model_length)`` float32 at the model's."""
        return _resample(sections, self.up, self.down, self.model_length(sections.shape[-1]))

    def to_data(self, sections: np.ndarray, samples: int) -> np.ndarray:
        """``(..., model samples)`` float32 back to ``(..., samples)`` float32 at the data's interval."""
        return _resample(sections, self.down, self.up, samples)


def _resample(x: np.ndarray, up: int, down: int, length: int) -> np.ndarray:
    from scipy.signal import resample_poly

    # padtype "line": the ends are extended along their own trend, not with zeros, so a section whose level
    # is not 0 (normalized data sit at 0.5) gets no step at its first and last samples.
    y = resample_poly(np.asarray(x, dtype=np.float32), up, down, axis=-1, padtype="line").astype(np.float32)
    if y.shape[-1] >= length:
        return np.ascontiguousarray(y[..., :length])
    pad = [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])]
    return np.pad(y, pad, mode="edge")
