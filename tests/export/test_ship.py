"""Shipping a model: fp16 weights, card and a compact parity-checked ONNX, through the click command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from impeccable.core.card import read_card  # noqa: E402
from impeccable.core.errors import ParityError  # noqa: E402
from impeccable.export import onnx_export  # noqa: E402
from impeccable.export.ship import main  # noqa: E402


def test_ship_writes_fp16_weights_and_a_compact_checked_onnx(tiny_model_dir, tmp_path):
    from safetensors.numpy import load_file

    target = tmp_path / "shipped"
    result = CliRunner().invoke(main, [str(tiny_model_dir), str(target), "tiny-shipped"])
    assert result.exit_code == 0, result.output
    assert read_card(target)["name"] == "tiny-shipped"
    weights = load_file(target / "model.safetensors").values()
    assert {a.dtype for a in weights if a.dtype.kind == "f"} == {np.dtype(np.float16)}
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_a_failed_check_leaves_the_exported_onnx_and_no_temporary_file(tiny_model_dir, tmp_path, monkeypatch):
    real = onnx_export.check_parity

    def fails_on_the_compact_graph(path, *args, **kwargs):
        if Path(path).name != "model.onnx":  # export_onnx checks its candidate under the final name
            raise ParityError("compact graph differs", received="x", expected="y")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(onnx_export, "check_parity", fails_on_the_compact_graph)
    target = tmp_path / "shipped"
    result = CliRunner().invoke(main, [str(tiny_model_dir), str(target)])
    assert result.exit_code == 1 and result.output.startswith("Error: compact graph differs")
    assert "Traceback" not in result.output
    assert sorted(p.name for p in target.iterdir()) == ["model.json", "model.onnx", "model.safetensors"]
