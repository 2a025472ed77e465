"""impeccable-train through click's CliRunner: outputs, resume, one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from impeccable.train.cli import main

TINY = ["--synthetic", "3", "--synthetic-shape", "256,24,24", "--encoder", "tu-test_resnet",
        "--decoder-channels", "16,16,8,8,8", "--window", "64x256", "--batch-size", "2", "--slice-stride", "4",
        "--val-volumes", "1", "--device", "cpu", "--no-progress"]


def test_cli_writes_the_run_directory(tmp_path, fake_synth):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [*TINY, "--out", str(out), "--epochs", "2", "--steps-per-epoch", "2",
                                       "--crop", "32x128"])
    assert result.exit_code == 0, result.output
    assert "step 4, 2 epoch(s), best validation score" in result.output
    for name in ("model.safetensors", "model.json", "metrics.jsonl", "last/model.safetensors",
                 "last/trainer_state.safetensors", "last/trainer_state.json"):
        assert (out / name).is_file(), name
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "model.json").read_text())["training"]["crop"] == [32, 128]


def test_cli_resume_needs_only_the_run_directory(tmp_path, fake_synth):
    out = tmp_path / "run"
    first = CliRunner().invoke(main, [*TINY, "--out", str(out), "--epochs", "2", "--steps-per-epoch", "2",
                                      "--max-minutes", "1e-9"])
    assert first.exit_code == 0, first.output
    assert "stopped (max-minutes)" in first.output
    again = CliRunner().invoke(main, ["--out", str(out), "--resume", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert "step 4, 2 epoch(s)" in again.output
    changed = CliRunner().invoke(main, ["--out", str(out), "--resume", "--lr", "0.1"])
    assert changed.exit_code == 1 and changed.output.startswith("Error: --lr cannot change on --resume")


@pytest.mark.parametrize(("args", "match"), [
    (["--out", "{out}"], "Error: no training data"),
    (["--out", "{out}", "--data", "{out}/missing"], "Error: --data not found"),
    ([*TINY, "--out", "{out}", "--crop", "100x256"], "Error: --crop is not a multiple of 32"),
    ([*TINY, "--out", "{out}", "--crop", "128x256"], "Error: crop larger than the window"),
    ([*TINY, "--out", "{out}", "--val-volumes", "3"], "Error: no volume left for training"),
    (["--out", "{out}", "--resume"], "Error: nothing to resume"),
    ([*TINY, "--out", "{out}", "--data", "{out}"], "Error: no training data, or two sources"),
])
def test_cli_one_line_errors(tmp_path, fake_synth, args, match):
    result = CliRunner().invoke(main, [a.format(out=tmp_path) for a in args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(match) and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


def test_cli_empty_data_folder(tmp_path):
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.startswith("Error: no usable noisy/clean pair found")


def test_cli_no_cuda(tmp_path, fake_synth):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = CliRunner().invoke(main, [*TINY[:-3], "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("Error: --device cuda but no CUDA device")


def test_cli_trains_on_the_challenge_layout(tmp_path, pair_factory):
    import numpy as np

    for i in range(3):
        clean, noisy = pair_factory(i)
        folder = tmp_path / "data" / f"vol{i}"
        folder.mkdir(parents=True)
        np.save(folder / f"seismic_w_noise_vol_{i}.npy", np.moveaxis(noisy, -1, 0))  # time first, as some are
        np.save(folder / f"seismicCubes_RFC_fullstack_2023.{i}.npy", clean)
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "data"), "--out", str(out), *TINY[4:], "--epochs", "1", "--steps-per-epoch", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model.json").read_text())
    assert card["data"]["source"] == "challenge" and len(card["data"]["train_volumes"]) == 2
    assert (out / "volume_stats.json").is_file()


def test_cli_with_the_real_generator(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [*TINY, "--out", str(out), "--epochs", "1", "--steps-per-epoch", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "synthetic" / "manifest.json").read_text())["generator"]
    assert len(list((out / "synthetic").glob("syn-*.npy"))) == 6


def test_cli_trains_on_the_family_mixture(tmp_path, fake_synth):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [*TINY, "--out", str(out), "--epochs", "1", "--steps-per-epoch", "1",
                                       "--synthetic-family", "mix"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "model.json").read_text())["data"]
    assert data["family"] == "mix" and "synth_b.synthesize_pair_b" in data["generator"]
    assert len(list((out / "synthetic").glob("syn-*-b-s*.npy"))) == 2  # volume 1 of 3 is family b
    bad = CliRunner().invoke(main, [*TINY, "--out", str(tmp_path / "bad"), "--synthetic-family", "c"])
    assert bad.exit_code == 2 and "--synthetic-family" in bad.output


def test_every_flag_default_is_the_config_default():
    """The flags read their defaults from TrainConfig: a default changed in one place is changed in both."""
    import dataclasses

    from impeccable.train.cli import _FIELD_OF
    from impeccable.train.config import TrainConfig

    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    checked = 0
    for param in main.params:
        name = _FIELD_OF.get(param.name, param.name)
        if fields.get(name, None) is None or fields[name] is dataclasses.MISSING:
            continue  # no default on either side (click leaves it unset)
        expected = fields[name]
        if isinstance(expected, tuple):
            expected = ",".join(map(str, expected))
        assert param.default == expected, param.name
        checked += 1
    assert checked >= 20
