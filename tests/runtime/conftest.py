"""Runtime fixtures: a tiny model directory with its ONNX export, and small synthetic volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_WINDOW = (64, 128)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny UNet++ (tu-test_resnet encoder, 64 x 128 window) saved as a model directory with model.onnx."""
    torch = pytest.importorskip("torch")
    from impeccable.core.card import new_card
    from impeccable.export.onnx_export import export_onnx
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(0)
    card = new_card({"encoder_name": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]},
                    input_size=TINY_WINDOW, name="tiny-test")
    model = build_model(card)
    # Random init leaves the output near 0.5 everywhere; a bias on the head makes the field vary more.
    out_dir = tmp_path_factory.mktemp("tiny-model")
    save_model_dir(model, card, out_dir)
    export_onnx(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def noisy_volume() -> np.ndarray:
    """A small synthetic noisy volume ``(inline, crossline, sample)`` float32 = (9, 40, 150)."""
    from impeccable.data.synth import synthesize_pair

    _, noisy = synthesize_pair(11, shape=(9, 40, 150))
    return noisy


@pytest.fixture
def volume_file(tmp_path, noisy_volume):
    """Write a volume as .npy in either orientation: ``volume_file(time_first=True)`` -> path."""

    def write(time_first: bool = False, array: np.ndarray | None = None, name: str = "vol.npy") -> Path:
        vol = noisy_volume if array is None else array
        path = tmp_path / name
        np.save(path, np.moveaxis(vol, -1, 0) if time_first else vol)
        return path

    return write
