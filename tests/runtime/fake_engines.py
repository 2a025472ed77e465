"""Stand-in engines the runtime's format tests share (imported by the test modules beside this file)."""

from __future__ import annotations

import numpy as np


class MixingEngine:
    """A deterministic stand-in engine: a smooth, position-dependent map of [0, 1] images into (0, 1).

    Each sample is mixed with its neighbours along traces and samples, so a mirror not undone or a wrong
    section order shows up at once.
    """

    name, precision, device, max_batch = "fake", "fp32", "cpu", None

    def __init__(self, window: tuple[int, int] = (8, 16)):
        self.window = window

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        mixed = 4.0 * (batch - 0.5) + 0.3 * np.roll(batch, 1, axis=-1) - 0.2 * np.roll(batch, 1, axis=-2)
        return (1.0 / (1.0 + np.exp(-mixed))).astype(np.float32)

    def close(self) -> None:
        pass
