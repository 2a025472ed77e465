"""What a field-ready card does to each denoised section before its amplitude fit: one object, every driver.

Two steps, both comparing a blended output section with the section the model was given (same units, the
data's interval):

1. **Signal recovery** (:mod:`impeccable.core.signal_recovery`, optional): what of the removed part follows the
   output locally is put back (leaked reflectors).
2. **The band guard** (:mod:`impeccable.core.band_guard`): no frequency of the output holds more energy than the
   input's.

The card says which (``output_guard: {"kind": "band_energy", "recover_signal": true}``); min-max cards (v5,
seed imports) get neither, so they run bit for bit as before. :mod:`impeccable.core.tiling` applies it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impeccable.core.band_guard import guard_sections
from impeccable.core.signal_recovery import radius_at, recover_sections


@dataclass(frozen=True)
class OutputGuard:
    """The card's output guard.

    Attributes:
        band_energy: Keep each output section from holding more energy than its input at any frequency.
        recover_signal: First put back what of the removed part follows the output locally.
    """

    band_energy: bool = False
    recover_signal: bool = False

    @classmethod
    def from_card(cls, card: dict, robust: bool) -> OutputGuard:
        """The card's ``output_guard``; field-ready (``robust``) cards without one get the band guard."""
        spec = card.get("output_guard") or {}
        kind = spec.get("kind", "band_energy" if robust else "none")
        return cls(band_energy=kind == "band_energy", recover_signal=bool(spec.get("recover_signal", False)))

    def __bool__(self) -> bool:
        return self.band_energy or self.recover_signal

    def apply(self, output: np.ndarray, source: np.ndarray, samples_per_model_sample: float = 1.0) -> np.ndarray:
        """``(n, traces, samples)`` float32 guarded sections; ``source``: the same sections as the model saw them;
        ``samples_per_model_sample``: the data's samples in one of the model's (recovery's window is a time span)."""
        if self.recover_signal:
            output = recover_sections(output, source, radius_at(samples_per_model_sample))
        if self.band_energy:
            output = guard_sections(output, source)
        return output
