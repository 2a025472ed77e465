"""The real UNet++ / EfficientNetV2-S architecture through the trainer (minutes on a 2-core CPU)."""

from __future__ import annotations

import json

import pytest

from impeccable.train.loop import train


@pytest.mark.slow
def test_real_architecture_one_step_on_a_crop(tmp_path, make_config, fake_synth):
    cfg = make_config(tmp_path, encoder="tu-tf_efficientnetv2_s", decoder_channels=None, window=None,
                      crop=(128, 256), epochs=1, steps_per_epoch=1, val_volumes=0)
    result = train(cfg)
    assert result.step == 1
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["smp"]["encoder_name"] == "tu-tf_efficientnetv2_s" and card["input_size"] == [320, 1280]
    # a field-ready card by default: linear output, robust scaling, padding at the data's zero level
    assert card["smp"]["arch"] == "UnetPlusPlus" and card["smp"]["activation"] is None
    assert card["output_activation"] == "identity" and card["padding"]["value"] == 0.5
