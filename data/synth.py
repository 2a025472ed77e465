"""PLACEHOLDER (being replaced by the synthetic generator): layered reflectivity plus noise."""

from __future__ import annotations

import numpy as np


def synthesize_pair(seed: int, shape: tuple[int, int, int] = (300, 300, 1259),
                    noise_level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A (clean, noisy) pair, each ``(inline, crossline, sample)`` float32. Placeholder implementation."""
    rng = np.random.default_rng(seed)
    il, xl, t = shape
    trace = np.convolve(rng.standard_normal(t), np.hanning(9), mode="same")
    clean = np.broadcast_to(trace, shape).astype(np.float32) * 100
    noise = rng.standard_normal(shape).astype(np.float32) * 50 * (noise_level or 0.5)
    noisy = 0.2 * (clean + noise) + 223.0
    return clean.copy(), noisy.astype(np.float32)
