"""The training loop: learning, the EMA, the model directory, resume, init and encoder weights."""

from __future__ import annotations

import dataclasses
import json

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from impeccable.core.amplitude import Scaling
from impeccable.core.errors import DataError, InputError, OutputError
from impeccable.core.model_io import ModelIO
from impeccable.models.builder import build_model
from impeccable.models.checkpoint import load_model, save_model_dir
from impeccable.train.loop import load_encoder_weights, parent_lineage, read_metrics, train
from impeccable.train.state import STATE_JSON, STATE_TENSORS, model_state
from impeccable.train.validate import validate


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_card, volumes):
    from impeccable.train.dataset import SectionDataset, section_refs

    torch.manual_seed(0)
    model = build_model(tiny_card)
    data = SectionDataset(volumes, section_refs(volumes, [0], 6), (64, 256))
    x, y = (torch.stack(t) for t in zip(*(data[(k, k)] for k in range(2))))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-5)
    losses = []
    for _ in range(8):
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, make_config, fake_generator):
    import impeccable.data.synth as synth

    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "synthesize_pair", fake_generator)
        result = train(make_config(out, epochs=3, steps_per_epoch=4))
    return out, result


def test_run_writes_a_model_directory_and_logs(finished_run):
    out, result = finished_run
    assert result.step == 12 and result.epochs_done == 3 and result.stopped is None
    for name in ("model.safetensors", "model.json", "config.json", "metrics.jsonl", f"last/{STATE_JSON}",
                 f"last/{STATE_TENSORS}", "last/model.safetensors", "last/model.json"):
        assert (out / name).is_file(), name
    lines = read_metrics(out)
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    assert lines[-1]["loss"] < lines[0]["loss"]
    # One warm-up epoch reaches the peak lr, the cosine ends at lr_min on the last update.
    assert lines[0]["lr"] == pytest.approx(3e-4) and lines[-1]["lr"] == pytest.approx(1e-6)
    for key in ("loss", "val_score", "val_noisy_score", "lr", "sections_per_s", "wall_s"):
        assert key in lines[0]
    card = json.loads((out / "model.json").read_text())
    assert card["smp"]["encoder_name"] == "tu-test_resnet" and card["input_size"] == [64, 256]
    assert card["training"]["optimizer"] == {"name": "AdamW", "lr": 3e-4, "weight_decay": 1e-5}
    assert card["data"]["val_volumes"] and not set(card["data"]["val_volumes"]) & set(card["data"]["train_volumes"])
    assert card["metrics"]["val_score"] == max(m["val_score"] for m in lines)
    assert card["weights_dtype"] == "float32"


def test_a_sigmoid_model_starts_a_field_ready_run_as_its_linear_twin(tmp_path, make_config, fake_synth, tiny_card):
    torch.manual_seed(7)
    start = build_model(tiny_card)  # a sigmoid (min-max) model
    save_model_dir(start, tiny_card, tmp_path / "start")
    train(make_config(tmp_path / "run", init_from=tmp_path / "start", epochs=1, steps_per_epoch=1, lr=1e-12,
                      warmup_lr=1e-12, lr_min=1e-12, val_volumes=0))
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["normalization"]["kind"] == "robust_per_volume" and card["padding"]["value"] == 0.5
    assert card["smp"]["activation"] is None and card["output_activation"] == "identity"
    assert card["sampling"]["interval_ms"] == 4.0
    after = load_file(tmp_path / "run" / "last" / STATE_TENSORS)
    head = start.segmentation_head[0]
    torch.testing.assert_close(after["model.segmentation_head.0.weight"], head.weight.detach() * 0.25,
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(after["model.segmentation_head.0.bias"], head.bias.detach() * 0.25 + 0.5,
                               rtol=0, atol=1e-6)
    # A fine-tune keeps BatchNorm statistics frozen (batch statistics of a few sections ruin them)
    stats = {k: v for k, v in start.state_dict().items() if k.endswith("running_mean")}
    assert stats and all(torch.equal(after[f"model.{k}"], v) for k, v in stats.items())
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["training"]["batchnorm"] == "frozen (eval mode)"


@pytest.mark.parametrize(("precision", "loss"), [("fp32", "mse+ssim"), ("bf16", "mse")])
def test_precision_and_loss_are_honoured_and_recorded(tmp_path, make_config, fake_generator, precision, loss):
    import impeccable.data.synth as synth

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "synthesize_pair", fake_generator)
        # min-max: a sigmoid output keeps a random network's MSE below 1, which the last line relies on
        train(make_config(tmp_path, epochs=1, steps_per_epoch=2, precision=precision, loss=loss, scaling="minmax"))
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["precision"] == precision and card["training"]["loss"]["name"] == loss
    assert ("ssim_weight" in card["training"]["loss"]) == (loss == "mse+ssim")
    line = read_metrics(tmp_path)[-1]
    assert 0 < line["loss"] < 1  # the logged loss is the per-pixel MSE whatever is optimized


def test_saved_weights_are_the_ema(finished_run):
    out, _ = finished_run
    raw = model_state(load_file(out / "last" / STATE_TENSORS))
    ema = load_file(out / "last" / "model.safetensors")
    assert raw.keys() == ema.keys()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
    # The best model's recorded score is what its saved weights score: validation ran on the saved EMA.
    from impeccable.train.dataset import VolumeSet, pair_stats, synthetic_sources

    card = json.loads((out / "model.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    sources = synthetic_sources(cfg["synthetic"], tuple(cfg["synthetic_shape"]), cfg["seed"], out / "synthetic",
                                progress=False)
    volumes = VolumeSet(sources, pair_stats(sources, progress=False))
    val = [volumes.ids.index(v) for v in card["data"]["val_volumes"]]
    model, _ = load_model(out)
    # Validation runs at the training precision (bf16 autocast on a bf16 CPU or GPU).
    autocast = torch.bfloat16 if card["training"]["precision"] == "bf16" else None
    score = validate(model, volumes, val, (64, 256), batch_size=2, autocast_dtype=autocast,
                     scaling=Scaling.of(card).kind, io=ModelIO.from_card(card))["val_score"]
    assert score == pytest.approx(card["metrics"]["val_score"], abs=1e-9)


def test_model_directory_round_trip(tmp_path, tiny_card):
    torch.manual_seed(1)
    model = build_model(tiny_card).eval()
    save_model_dir(model, tiny_card, tmp_path / "m")
    again, card = load_model(tmp_path / "m")
    x = torch.rand(2, 1, 64, 256)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert card["input_size"] == [64, 256]


def test_resume_continues_exactly(tmp_path, make_config, fake_synth):
    # The uninterrupted run also checkpoints after every update (--checkpoint-every): saving changes nothing.
    whole = train(make_config(tmp_path / "a", epochs=2, steps_per_epoch=4, checkpoint_every=1e-9))
    # Interrupted after the first update (a tiny --max-minutes), then resumed twice to the end.
    cut = train(make_config(tmp_path / "b", epochs=2, steps_per_epoch=4, max_minutes=1e-9))
    assert cut.stopped == "max-minutes" and cut.step == 1
    state = json.loads((tmp_path / "b" / "last" / STATE_JSON).read_text())
    assert state["step"] == 1 and state["epoch_progress"]["batches"] == 1
    again = train(make_config(tmp_path / "b", epochs=2, steps_per_epoch=4, max_minutes=1e-9, resume=True))
    assert again.step == 2
    done = train(make_config(tmp_path / "b", epochs=2, steps_per_epoch=4, resume=True))
    assert done.step == whole.step == 8
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [m["lr"] for m in a] == [m["lr"] for m in b]  # the schedule continued at the right step
    assert [m["loss"] for m in a] == pytest.approx([m["loss"] for m in b], rel=1e-5)
    wa, wb = (load_file(tmp_path / d / "last" / STATE_TENSORS) for d in "ab")
    for key in wa:
        if key.startswith(("model.", "optim.")):
            torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)
    ea, eb = (load_file(tmp_path / d / "last" / "model.safetensors") for d in "ab")
    for key in ea:
        torch.testing.assert_close(ea[key], eb[key], rtol=1e-5, atol=1e-6)


def test_run_directory_rules(tmp_path, make_config, fake_synth):
    with pytest.raises(DataError, match="nothing to resume"):
        train(make_config(tmp_path / "new", resume=True))
    train(make_config(tmp_path / "run", epochs=1, steps_per_epoch=1))
    with pytest.raises(OutputError, match="already holds a run"):
        train(make_config(tmp_path / "run", epochs=1, steps_per_epoch=1))
    with pytest.raises(InputError, match="--batch-size cannot change on --resume"):
        train(make_config(tmp_path / "run", epochs=1, steps_per_epoch=1, batch_size=3, resume=True))


def test_no_validation_volumes_keeps_the_last_epoch(tmp_path, make_config, fake_synth):
    result = train(make_config(tmp_path, epochs=2, steps_per_epoch=1, val_volumes=0, crop=(32, 128)))
    assert result.best_score is None
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["metrics"]["epoch"] == 2 and "val_score" not in card["metrics"]


def test_init_from_starts_from_those_weights(tmp_path, make_config, fake_synth, tiny_card):
    torch.manual_seed(7)
    start = build_model(tiny_card)
    save_model_dir(start, tiny_card, tmp_path / "start")
    cfg = make_config(tmp_path / "run", init_from=tmp_path / "start", epochs=1, steps_per_epoch=1, lr=1e-12,
                      warmup_lr=1e-12, lr_min=1e-12, val_volumes=0, scaling="minmax")
    train(cfg)
    after = load_file(tmp_path / "run" / "last" / STATE_TENSORS)
    # With a vanishing lr the trained weights stay where --init-from put them (BN statistics do move).
    for key, value in start.state_dict().items():
        if key.endswith(".weight") and "bn" not in key and value.ndim == 4:
            torch.testing.assert_close(after[f"model.{key}"], value, rtol=0, atol=1e-6)


def test_card_lineage_lists_every_run_that_made_the_weights(tmp_path, make_config, fake_synth):
    train(make_config(tmp_path / "first", epochs=1, steps_per_epoch=2, val_volumes=0, crop=(32, 128)))
    train(make_config(tmp_path / "second", init_from=tmp_path / "first", epochs=1, steps_per_epoch=3,
                      val_volumes=0, crop=(32, 128), loss="mse+ssim"))
    first = json.loads((tmp_path / "first" / "model.json").read_text())["training"]["lineage"]
    second = json.loads((tmp_path / "second" / "model.json").read_text())["training"]["lineage"]
    assert [e["run"] for e in first] == ["first"] and first[0]["init_from"] is None
    assert [e["run"] for e in second] == ["first", "second"]
    assert second[0] == first[0]
    assert second[1]["init_from"] == str(tmp_path / "first")
    assert (second[1]["steps"], second[1]["loss"]) == (3, "mse+ssim (0.5)")


def test_parent_lineage_of_a_card_without_one():
    card = {"name": "old", "metrics": {"step": 40, "val_score": 0.9},
            "training": {"loss": {"name": "mse"}, "optimizer": {"lr": 1e-3}, "steps_done": 50, "total_steps": 50}}
    (entry,) = parent_lineage(card)
    assert (entry["run"], entry["loss"], entry["steps"], entry["kept_step"]) == ("old", "mse", 50, 40)
    assert parent_lineage({"name": "untrained"}) == []


def test_encoder_weights_from_a_timm_file(tmp_path, tiny_card):
    source = timm.create_model("test_resnet", pretrained=False)  # 3-channel ImageNet-style checkpoint
    save_file(source.state_dict(), tmp_path / "enc.safetensors")
    model = build_model(tiny_card)
    got, of = load_encoder_weights(model, tmp_path / "enc.safetensors")
    assert got == of
    stem = source.state_dict()["conv1.0.weight"]
    own = model.encoder.model.state_dict()["conv1.0.weight"]
    assert own.shape[1] == 1 and torch.allclose(own[:, 0], stem.sum(dim=1))
    torch.save({"state_dict": {"unrelated.weight": torch.zeros(3)}}, tmp_path / "bad.pth")
    from impeccable.core.errors import ModelError

    with pytest.raises(ModelError, match="do not fit the encoder"):
        load_encoder_weights(model, tmp_path / "bad.pth")


def test_loss_reduction_sum_is_recorded(tmp_path, make_config, fake_synth):
    train(make_config(tmp_path, epochs=1, steps_per_epoch=1, loss_reduction="sum", val_volumes=0, scaling="minmax"))
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["loss"]["reduction"] == "sum"
    assert read_metrics(tmp_path)[0]["loss"] < 1  # logged as the per-pixel MSE whatever the reduction


def test_leak_weight_enters_the_loss_and_the_card(tmp_path, make_config, fake_synth):
    runs = {}
    for weight in (0.0, 50.0):
        out = tmp_path / f"leak{weight:g}"
        train(make_config(out, epochs=1, steps_per_epoch=2, leak_weight=weight, val_volumes=0, seed=3))
        runs[weight] = json.loads((out / "model.json").read_text())
    assert "leak_weight" not in runs[0.0]["training"]["loss"]
    assert runs[50.0]["training"]["loss"]["leak_weight"] == 50.0
    # The same batches and start, so weights that differ were moved by the term's gradient.
    w0 = load_file(tmp_path / "leak0" / "model.safetensors")
    w50 = load_file(tmp_path / "leak50" / "model.safetensors")
    assert any(not torch.equal(w0[k], w50[k]) for k in w0)


def test_config_dataclass_is_frozen(tmp_path, make_config):
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_config(tmp_path).lr = 1.0


def test_workers_load_the_same_batches(tmp_path, make_config, fake_synth):
    for workers in (0, 1):
        train(make_config(tmp_path / f"w{workers}", epochs=1, steps_per_epoch=2, workers=workers, val_volumes=0))
    a, b = (load_file(tmp_path / d / "last" / STATE_TENSORS) for d in ("w0", "w1"))
    for key in a:
        if key.startswith("model."):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_sigterm_checkpoints_and_stops(tmp_path, make_config, fake_synth, monkeypatch):
    import os
    import signal

    from impeccable.train.dataset import SectionDataset

    original = SectionDataset.__getitem__
    sent = []

    def item_then_sigterm(self, key):
        if not sent:  # once, as `timeout` or a job scheduler would (a second signal means "stop now")
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, key)

    monkeypatch.setattr(SectionDataset, "__getitem__", item_then_sigterm)
    result = train(make_config(tmp_path, epochs=2, steps_per_epoch=3))
    assert result.stopped == "signal" and result.step == 1
    assert json.loads((tmp_path / "last" / STATE_JSON).read_text())["step"] == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was put back


@pytest.mark.parametrize(("amx", "avx512_bf16", "expected"), [
    (True, False, True), (False, True, True), (False, False, False), (None, None, False)])
def test_auto_precision_picks_bf16_on_cpus_with_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, expected):
    from impeccable.train.loop import native_bf16

    for name, answer in (("_is_amx_tile_supported", amx), ("_is_avx512_bf16_supported", avx512_bf16)):
        if answer is None:  # a torch build without the probe
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda answer=answer: answer, raising=False)
    assert native_bf16(cuda=False) is expected
