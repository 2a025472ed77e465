"""The shipped default model: complete, self-consistent, loadable without this toolkit, and its ONNX agrees with it.

These run on the files in ``models/`` (what ``impeccable-denoise`` uses when ``--model`` is not given).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from impeccable.core.card import read_card, sha256_file, window_of
from impeccable.models import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.json").is_file(),
                                reason=f"no shipped model in {DEFAULT_MODEL_DIR}")


def test_card_describes_the_seed_network_and_its_training():
    card = read_card(DEFAULT_MODEL_DIR)
    assert card["smp"]["arch"].lower() == "unetplusplus"
    assert card["smp"]["encoder_name"] == "tu-tf_efficientnetv2_s"
    assert card["input_size"] == [320, 1280]
    assert card["weights_dtype"] == "float16"
    assert card["data"]["source"] == "synthetic" and card["data"]["seeds"]
    assert card["training"]["steps_done"] > 0 and card["training"]["wall_time_s"] > 0
    assert "val_score" in card["metrics"]


def test_the_default_is_field_ready():
    """Robust scaling with a linear head, the data's zero level as padding, its interval, and the output guard
    with the removal floor (issue 25): what keeps a field stack's signal and spectrum."""
    from impeccable.core.model_io import ModelIO

    card = read_card(DEFAULT_MODEL_DIR)
    io = ModelIO.from_card(card)
    assert io.scaling.kind == "robust" and card["output_activation"] == "identity" and card["smp"]["activation"] is None
    assert io.pad_value == 0.5 and io.interval_ms == 4.0 and io.section_gain is not None
    guard = io.output_guard
    assert guard.band_energy and guard.recover_signal and guard.removal_floor_db == -13.0
    assert (guard.removal_floor_coherence_db, guard.removal_floor_conformity, guard.below_band_db) == (10.0, 0.6, -15.0)


def test_weights_hash_matches_the_card_and_the_onnx_metadata():
    onnx = pytest.importorskip("onnx")
    card = read_card(DEFAULT_MODEL_DIR)
    assert sha256_file(DEFAULT_MODEL_DIR / "model.safetensors") == card["weights_sha256"]
    graph = onnx.load(str(DEFAULT_MODEL_DIR / "model.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["weights_sha256"] == card["weights_sha256"]
    assert json.loads(meta["card"]) == card  # the ONNX alone runs with the directory's card
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 320, 1280]


def test_weights_load_into_plain_smp_without_this_toolkit():
    pytest.importorskip("torch")
    smp = pytest.importorskip("segmentation_models_pytorch")
    from safetensors.torch import load_file

    card = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
    kwargs = dict(card["smp"])
    model = smp.create_model(kwargs.pop("arch"), **kwargs)
    missing, unexpected = model.load_state_dict(load_file(DEFAULT_MODEL_DIR / "model.safetensors"), strict=True)
    assert not missing and not unexpected


@pytest.mark.slow
def test_onnx_runtime_agrees_with_torch_on_a_normalized_section():
    pytest.importorskip("torch")
    from impeccable.export.onnx_export import synthetic_sections
    from impeccable.runtime.engines import create_engine

    window = window_of(read_card(DEFAULT_MODEL_DIR))
    x = synthetic_sections(window, 2, seed=5)
    with create_engine("torch", DEFAULT_MODEL_DIR, device="cpu") as ref, \
            create_engine("onnxruntime", DEFAULT_MODEL_DIR) as ort:
        diff = np.abs(ort(x) - ref(x)).max()
    assert diff <= 1e-4, f"max abs {diff:.3g}"
