"""A section's slow amplitude trend taken out before the network and put back after: weak deep signal seen as signal.

Processed stacks are often true-amplitude: reflections 5-20x weaker at depth than near the top. With one scale
for the whole volume the network sees deep events faint, and faint laterally coherent energy is what it learned
to remove (v7 on Penobscot: the removed part 4-5.5 s deep held coherent events, lateral coherence 0.95). A
processor balances such a section with a slow gain before a noise attenuation and removes it after; this is that
gain, part of the model's contract (the card's ``section_gain``, trained with it).

The gain of one section is a function of time only (traces share it, so lateral amplitude changes such as bright
spots stay as they are): the median over traces of ``|unit - 0.5|`` at each sample (dead and erratic traces do not
move a median), smoothed in time with a Hann window, over its median in time, kept within ``[floor, 1 / floor]``.
Computed on the section at the model's interval in model units, it is the same in every driver, and for a
section cut into tiles it is the section's, so tiles share it (no seams).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impeccable.core.amplitude import ROBUST, Scaling

#: Model units' zero level (the robust scaling's, also its padding): what the gain scales around.
ZERO_LEVEL = ROBUST.pad_value


@dataclass(frozen=True)
class SectionGain:
    """The card's ``section_gain``.

    Attributes:
        window: Length of the Hann window that smooths the amplitude trend, in samples at the model's interval
            (125 = 500 ms at 4 ms: a trend, not single reflectors).
        floor: The gain stays within ``[floor, 1 / floor]`` of the section's typical level (a muted zone or a
            dead stretch is not blown up).
    The balanced input is clipped to the robust scaling's own range (:attr:`Scaling.ROBUST_CLIP`).
    """

    window: int = 125
    floor: float = 0.1

    @classmethod
    def from_card(cls, card: dict) -> SectionGain | None:
        """The card's ``section_gain``, or None (every card before v8: trained without one)."""
        spec = card.get("section_gain")
        if not spec:
            return None
        return cls(window=int(spec.get("window_samples", cls.window)), floor=float(spec.get("floor", cls.floor)))

    def gains(self, sections: np.ndarray) -> np.ndarray:
        """``(n, samples)`` float32 gains of ``(n, traces, samples)`` float32 sections in model units."""
        level = np.median(np.abs(sections - np.float32(ZERO_LEVEL)), axis=1).astype(np.float64)
        samples = level.shape[-1]
        if samples < 3:
            return np.ones_like(level, dtype=np.float32)
        width = min(self.window, samples - 1 + samples % 2)  # odd, never longer than the section
        kernel = np.hanning(width + 2)[1:-1]
        # Normalized convolution: near the ends, the window's part inside the section is what averages.
        smooth = np.stack([np.convolve(row, kernel, mode="same") for row in level])
        weight = np.convolve(np.ones(samples), kernel, mode="same")
        trend = smooth / weight[None, :]
        typical = np.median(trend, axis=-1, keepdims=True)
        typical = np.where(typical > 0, typical, np.maximum(trend.max(axis=-1, keepdims=True), 1e-12))
        return np.clip(trend / typical, self.floor, 1.0 / self.floor).astype(np.float32)

    def balance(self, sections: np.ndarray, gains: np.ndarray) -> np.ndarray:
        """Input sections divided by their gains around the zero level, clipped as the scaling clips (float32)."""
        return np.clip(self.target(sections, gains), *Scaling.ROBUST_CLIP)

    def target(self, sections: np.ndarray, gains: np.ndarray) -> np.ndarray:
        """A training target balanced with its input's gains (not clipped: the network's output is linear)."""
        return ((sections - np.float32(ZERO_LEVEL)) / gains[:, None, :] + np.float32(ZERO_LEVEL)).astype(np.float32)

    @staticmethod
    def restore(predictions: np.ndarray, gains: np.ndarray) -> np.ndarray:
        """Predictions in balanced units back to the section's own (float32)."""
        out = (predictions - np.float32(ZERO_LEVEL)) * gains[:, None, :] + np.float32(ZERO_LEVEL)
        return out.astype(np.float32, copy=False)
