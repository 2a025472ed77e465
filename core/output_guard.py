"""What a field-ready card does to each denoised section before its amplitude fit: one object, every driver.

Four steps, each comparing a blended output section with the section the model was given (same units, the
model's interval: :mod:`impeccable.core.tiling` applies it before the removed part goes back to the data's):

1. **Signal recovery** (:mod:`impeccable.core.signal_recovery`, optional): what of the removed part follows the
   output locally is put back (leaked reflectors).
2. **The removal floor** (:mod:`impeccable.core.removal_floor`, optional): where the removed part is weak against
   the local output, the input is kept (a processed stack comes back unchanged).
3. **Below the band** (:mod:`impeccable.core.below_band`, optional): a trace's energy below the model's band is
   taken away where it stands out (swell).
4. **The band guard** (:mod:`impeccable.core.band_guard`): no frequency of the output holds more energy than the
   input's.

The card says which (``output_guard: {"kind": "band_energy", "recover_signal": true, "removal_floor_db": -13}``);
min-max cards (v5, seed imports) get none, so they run bit for bit as before. :mod:`impeccable.core.tiling` applies it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impeccable.core.band_guard import guard_sections
from impeccable.core.below_band import below_band_sections
from impeccable.core.removal_floor import floor_sections
from impeccable.core.signal_recovery import recover_sections


@dataclass(frozen=True)
class OutputGuard:
    """The card's output guard.

    Attributes:
        band_energy: Keep each output section from holding more energy than its input at any frequency.
        recover_signal: First put back what of the removed part follows the output locally.
        removal_floor_db: Then keep the input where the removed part's local power is under about this many dB
            of the output's (None: off).
        removal_floor_coherence_db: How far that floor rises where the removed part is laterally coherent
            (dB; 0: not at all).
        removal_floor_conformity: Keep that rise to removal whose events run parallel to the output's: the slope
            width in model samples per trace over which it fades (0: wherever the removal is coherent).
        below_band_db: Take away each trace's energy below the model's band where it is above about this many dB
            of the rest of the trace's (None: off).
        band_hz: The card's band ``(low, high)`` in Hz (``sampling.band_hz``).
        interval_ms: The model's sample interval, at which the guard runs.
    """

    band_energy: bool = False
    recover_signal: bool = False
    removal_floor_db: float | None = None
    removal_floor_coherence_db: float = 0.0
    removal_floor_conformity: float = 0.0
    below_band_db: float | None = None
    band_hz: tuple[float, float] = (3.0, 90.0)
    interval_ms: float = 4.0

    @classmethod
    def from_card(cls, card: dict, robust: bool) -> OutputGuard:
        """The card's ``output_guard``; field-ready (``robust``) cards without one get the band guard."""
        spec = card.get("output_guard") or {}
        kind = spec.get("kind", "band_energy" if robust else "none")
        floor, below = spec.get("removal_floor_db"), spec.get("below_band_db")
        sampling = card.get("sampling") or {}
        low, high = sampling.get("band_hz", cls.band_hz)
        return cls(band_energy=kind == "band_energy", recover_signal=bool(spec.get("recover_signal", False)),
                   removal_floor_db=None if floor is None else float(floor),
                   removal_floor_coherence_db=float(spec.get("removal_floor_coherence_db", 0.0)),
                   removal_floor_conformity=float(spec.get("removal_floor_conformity", 0.0)),
                   below_band_db=None if below is None else float(below), band_hz=(float(low), float(high)),
                   interval_ms=float(sampling.get("interval_ms", cls.interval_ms)))

    def as_dict(self) -> dict:
        """JSON-ready, for a run's report."""
        return {"recover_signal": self.recover_signal, "removal_floor_db": self.removal_floor_db,
                "removal_floor_coherence_db": self.removal_floor_coherence_db,
                "removal_floor_conformity": self.removal_floor_conformity, "below_band_db": self.below_band_db,
                "band_energy": self.band_energy}

    def __bool__(self) -> bool:
        return self.band_energy or self.recover_signal or self.removal_floor_db is not None or \
            self.below_band_db is not None

    def apply(self, output: np.ndarray, source: np.ndarray) -> np.ndarray:
        """``(n, traces, samples)`` float32 guarded sections; ``source``: the same sections as the model saw them,
        both at the model's sample interval (the windows and slopes are counted in model samples)."""
        if self.recover_signal:
            output = recover_sections(output, source)
        if self.removal_floor_db is not None:
            output = floor_sections(output, source, self.removal_floor_db, coherence_db=self.removal_floor_coherence_db,
                                    conformity=self.removal_floor_conformity)
        if self.below_band_db is not None:
            output = below_band_sections(output, self.band_hz[0], self.interval_ms, self.below_band_db)
        if self.band_energy:
            output = guard_sections(output, source)
        return output
