"""Fixtures of the training tests: tiny volumes, a tiny network, a stand-in synthetic generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from impeccable.core.card import new_card
from impeccable.train.config import TrainConfig
from impeccable.train.dataset import ArrayPair, VolumeSet, pair_stats

TINY_SMP = {"encoder_name": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}
WINDOW = (64, 256)
SHAPE_TILXL = (256, 24, 24)  # (T, IL, XL): sections (24, 256) fit the 64 x 256 window


def make_pair(seed: int, shape: tuple[int, int, int] = (24, 24, 256)) -> tuple[np.ndarray, np.ndarray]:
    """A (clean, noisy) pair, ``(inline, crossline, sample)`` float32: dipping layers plus noise, own scales."""
    rng = np.random.default_rng(seed)
    il, xl, t = shape
    trace = np.convolve(rng.standard_normal(t + 64), np.hanning(9), mode="same")
    shift = (np.arange(il)[:, None] * 0.7 + np.arange(xl)[None, :] * 0.4).astype(int)
    clean = np.stack([[trace[s:s + t] for s in row] for row in shift]).astype(np.float32) * 100
    noisy = 0.2 * (clean + rng.standard_normal(shape).astype(np.float32) * 60) + 223.0
    return clean, noisy.astype(np.float32)


def fake_synthesize_pair(seed: int, shape: tuple[int, int, int] = (300, 300, 1259),
                         noise_level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in for impeccable.data.synth.synthesize_pair: same signature, fast and stable for these tests."""
    return make_pair(seed, shape)


@pytest.fixture
def fake_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route --synthetic through the stand-in generator (the real one has its own tests)."""
    import impeccable.data.synth as synth

    monkeypatch.setattr(synth, "synthesize_pair", fake_synthesize_pair)


@pytest.fixture(scope="session")
def tiny_card() -> dict:
    return new_card(TINY_SMP, input_size=WINDOW)


@pytest.fixture
def volumes() -> VolumeSet:
    """Four tiny in-memory pairs."""
    sources = []
    for i in range(4):
        clean, noisy = make_pair(100 + i)
        sources.append(ArrayPair(f"v{i}", noisy, clean))
    return VolumeSet(sources, pair_stats(sources, progress=False))


def tiny_config(out: Path, **overrides: object) -> TrainConfig:
    """A config of a run that takes a second or two on a CPU."""
    values = dict(out=out, synthetic=3, synthetic_shape=SHAPE_TILXL, epochs=2, steps_per_epoch=3, batch_size=2,
                  slice_stride=4, val_volumes=1, encoder="tu-test_resnet", decoder_channels=(16, 16, 8, 8, 8),
                  window=WINDOW, device="cpu", progress=False)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def make_config():
    """Factory of tiny run configs: ``make_config(out, **overrides)``."""
    return tiny_config


@pytest.fixture(scope="session")
def pair_factory():
    """``pair_factory(seed, shape)`` -> (clean, noisy) canonical float32."""
    return make_pair


@pytest.fixture(scope="session")
def fake_generator():
    """The stand-in generator itself (for fixtures wider than a test, which patch it themselves)."""
    return fake_synthesize_pair
