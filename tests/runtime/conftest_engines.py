"""Fixtures and helpers of the engine and parity tests (imported by test_engines.py and test_parity.py).

A tiny UNet++ (tu-test_resnet encoder, 64 x 128 window) with its head rescaled so the output spans most of the
sigmoid's range, as a trained denoiser's does: with random init it sits at 0.5 +- 0.01, where the challenge's
min-max uint8 rescaling would blow rounding noise up into a meaningless SSIM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

WINDOW = (64, 128)
SECTION = (56, 120)  # smaller than the window: the zero padding is exercised too
TINY_SMP = {"encoder_name": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}


def synthetic_sections(n: int, shape: tuple[int, int] = SECTION, seed: int = 0) -> np.ndarray:
    """Seismic-like sections ``(n, traces, samples)`` float32 in ``[0, 1]``: dipping Ricker reflectors + noise."""
    rng = np.random.default_rng(seed)
    traces, samples = shape
    x = np.arange(traces, dtype=np.float64)[:, None]
    t = np.arange(samples, dtype=np.float64)[None, :]
    out = np.empty((n, traces, samples), dtype=np.float32)
    for k in range(n):
        img = np.zeros(shape)
        for _ in range(12):
            arg = (np.pi * 0.08 * (t - rng.uniform(0, samples) - rng.uniform(-0.4, 0.4) * x)) ** 2
            img += rng.normal() * (1 - 2 * arg) * np.exp(-arg)
        img += 0.3 * rng.normal(size=shape)
        out[k] = (img - img.min()) / (img.max() - img.min())
    return out


def pad_to_window(sections: np.ndarray, window: tuple[int, int] = WINDOW) -> np.ndarray:
    """Zero-pad ``(n, traces, samples)`` at the end of both axes to ``float32[n, 1, rows, cols]``."""
    out = np.zeros((sections.shape[0], 1, *window), dtype=np.float32)
    out[:, 0, :sections.shape[1], :sections.shape[2]] = sections
    return out


def predict_sections(engine, sections: np.ndarray, batch: int, tta: bool = True) -> np.ndarray:
    """Denoise ``(n, traces, samples)`` sections the pipeline's way (:func:`impeccable.core.tiling.predict_sections`):
    pad (tile when larger), flip TTA, ``batch`` images per engine call, crop (blend)."""
    from impeccable.core.tiling import predict_sections as tiled

    return tiled(sections, engine, tuple(engine.window), tta=tta, batch=batch)


def _scale_head(model, sample) -> None:
    """Rescale the last conv so the logits have std ~1 and mean ~0 on ``sample`` (output ~0.07..0.92)."""
    import torch

    conv = model.segmentation_head[0]
    with torch.no_grad():
        logits = torch.logit(model(sample).clamp(1e-6, 1 - 1e-6))
        gain = 1.0 / float(logits.std())
        conv.weight.mul_(gain)
        conv.bias.mul_(gain).sub_(float(logits.mean()) * gain)


def _export(model_dir: Path) -> None:
    """Write ``model_dir/model.onnx`` with the exporter's default (dynamo) path, checks and parity included."""
    from impeccable.export.onnx_export import export_onnx

    export_onnx(model_dir)


_BUILT: dict[str, Path] = {}  # fixtures imported into several test modules are separate fixtures: build once


@pytest.fixture(scope="session")
def engine_model_dir(tmp_path_factory) -> Path:
    """A tiny model directory: model.json, model.safetensors and model.onnx (card in its metadata)."""
    torch = pytest.importorskip("torch")
    key = str(tmp_path_factory.getbasetemp())
    if key in _BUILT:
        return _BUILT[key]
    from impeccable.core.card import new_card
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(0)
    card = new_card(TINY_SMP, input_size=WINDOW, name="tiny-engine-test")
    model = build_model(card).eval()
    _scale_head(model, torch.from_numpy(pad_to_window(synthetic_sections(4, seed=99))))
    out = tmp_path_factory.mktemp("engine-model")
    save_model_dir(model, card, out)
    _export(out)
    _BUILT[key] = out
    return out


@pytest.fixture(scope="session")
def torch_reference(engine_model_dir):
    """The torch engine (fp32, CPU) on the tiny model, shared by the parity tests."""
    pytest.importorskip("torch")
    from impeccable.runtime.engines import create_engine

    with create_engine("torch", engine_model_dir, device="cpu") as engine:
        yield engine
