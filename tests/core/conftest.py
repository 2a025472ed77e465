"""Shared test data of the core tests."""
import numpy as np
import pytest


def make_reflectors(rng: np.random.Generator, traces: int = 120, samples: int = 400) -> np.ndarray:
    """Twenty dipping, band-limited reflections (zero mean), ``(traces, samples)`` float64."""
    t = np.arange(samples)
    out = np.zeros((traces, samples))
    for _ in range(20):
        t0, dip, a = rng.uniform(0, samples), rng.uniform(-0.8, 0.8), rng.normal()
        centre = t0 + dip * np.arange(traces)[:, None]
        out += a * np.exp(-((t - centre) / 3.0) ** 2) * np.cos((t - centre) / 2.0)
    return out


@pytest.fixture
def reflectors():
    """Factory: ``reflectors(rng, traces=120, samples=400)`` (:func:`make_reflectors`)."""
    return make_reflectors
