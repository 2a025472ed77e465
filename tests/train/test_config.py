"""TrainConfig: validation of flags, serialization, the resume rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from impeccable.core.errors import InputError
from impeccable.train.config import TrainConfig


@pytest.mark.parametrize(("overrides", "match"), [
    ({"synthetic": None}, "no training data"),
    ({"data": Path("x")}, "no training data, or two sources"),
    ({"crop": (100, 256)}, "--crop is not a multiple of 32"),
    ({"window": (64, 250)}, "--window is not a multiple of 32"),
    ({"crop": (128, 256), "window": (64, 256)}, "crop larger than the window"),
    ({"loss_reduction": "max"}, "unknown loss reduction"),
    ({"device": "tpu"}, "unknown device"),
    ({"epochs": 0}, "--epochs must be positive"),
    ({"ema_decay": 1.0}, "--ema-decay out of range"),
    ({"clean_fraction": 1.5}, "--clean-fraction out of range"),
    ({"val_volumes": -1}, "--val-volumes"),
    ({"loss": "l1"}, "unknown loss"),
    ({"ssim_weight": -0.1}, "--ssim-weight"),
    ({"leak_weight": -1.0}, "--leak-weight must not be negative"),
    ({"leak_weight": 1.0, "scaling": "minmax"}, "--leak-weight needs a field-ready run"),
    ({"precision": "fp8"}, "unknown precision"),
])
def test_bad_values_raise_one_line_errors(tmp_path, make_config, overrides, match):
    with pytest.raises(InputError, match=match):
        make_config(tmp_path, **overrides)


def test_round_trip_through_dict(tmp_path, make_config):
    cfg = make_config(tmp_path, crop=(32, 128), encoder_weights=tmp_path / "w.safetensors")
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert isinstance(again.crop, tuple) and isinstance(again.out, Path)


def test_resume_keeps_recipe_and_takes_runtime(tmp_path, make_config):
    saved = make_config(tmp_path)
    new = dataclasses.replace(saved, workers=1, max_minutes=5.0, precision="fp32", resume=True)
    merged = saved.resumed_with(new)
    assert merged.workers == 1 and merged.max_minutes == 5.0 and merged.precision == "fp32" and merged.resume
    with pytest.raises(InputError, match="--loss cannot change on --resume"):
        saved.resumed_with(dataclasses.replace(new, loss="mse+ssim"))
    with pytest.raises(InputError, match="--lr cannot change on --resume"):
        saved.resumed_with(dataclasses.replace(new, lr=1e-3))
    # Only explicit flags are compared (the CLI's defaults must not clash with a saved recipe).
    assert saved.resumed_with(dataclasses.replace(new, lr=1e-3), explicit={"workers"}).lr == saved.lr


def test_default_validation_volumes(tmp_path, make_config):
    cfg = make_config(tmp_path, val_volumes=None)
    assert [cfg.resolved_val_volumes(n) for n in (1, 2, 19, 20, 250)] == [0, 1, 1, 2, 25]


def test_a_resumed_run_needs_no_data_source(tmp_path, make_config):
    """--resume alone is a complete config: the data source comes from the saved run (no placeholder)."""
    saved = make_config(tmp_path)
    bare = TrainConfig(out=tmp_path, resume=True, workers=1)
    assert bare.data is None and bare.synthetic is None
    assert saved.resumed_with(bare, explicit={"workers"}).synthetic == saved.synthetic
    resuming = dataclasses.replace(saved, synthetic=None, resume=True, workers=1)
    merged = saved.resumed_with(resuming)  # every recipe field compared, the absent source left out
    assert merged.synthetic == saved.synthetic and merged.workers == 1
    with pytest.raises(InputError, match="no training data, or two sources"):
        TrainConfig(out=tmp_path, resume=True, synthetic=2, data=Path("x"))
