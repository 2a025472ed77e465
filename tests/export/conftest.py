"""Export fixtures: a tiny model directory (64 x 128 window), its ONNX export and its FP16 graph, built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY_WINDOW = (64, 128)
TINY_SMP = {"encoder_name": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny UNet++ (tu-test_resnet encoder) with random weights, saved as a model directory (no ONNX)."""
    torch = pytest.importorskip("torch")
    from impeccable.core.card import new_card
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(0)
    card = new_card(TINY_SMP, input_size=TINY_WINDOW, name="tiny-export-test")
    out = tmp_path_factory.mktemp("tiny") / "model"
    save_model_dir(build_model(card), card, out)
    return out


@pytest.fixture(scope="session")
def exported_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A copy of the tiny model directory with model.onnx (dynamo exporter, default opset)."""
    from impeccable.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_model_dir, out)
    export_onnx(out)
    return out


@pytest.fixture(scope="session")
def fp16_dir(exported_dir, tmp_path_factory) -> Path:
    """A copy of the exported directory with model.fp16.onnx and model.fp16.audit.json."""
    from impeccable.export.fp16 import convert_fp16

    out = tmp_path_factory.mktemp("fp16") / "model"
    shutil.copytree(exported_dir, out)
    convert_fp16(out / "model.onnx")
    return out


@pytest.fixture
def model_copy(tmp_path):
    """Copy a fixture directory to a fresh, test-owned path: ``model_copy(src) -> Path``."""

    def copy(src: Path) -> Path:
        dst = tmp_path / "model"
        shutil.copytree(src, dst)
        return dst

    return copy
