"""``impeccable-train --adapt``: the survey split, the card's lineage, exact resume, one-line errors, the QC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from impeccable.core.card import new_card, sha256_file
from impeccable.core.errors import InputError
from impeccable.models.builder import build_model
from impeccable.models.checkpoint import load_model, save_model_dir
from impeccable.train.adapt import QC_NAME, AdaptConfig, adapt, synthetic_count
from impeccable.train.cli import main
from impeccable.train.state import STATE_TENSORS
from impeccable.train.survey import INLINE, CROSSLINE, split_survey

SHAPE_TILXL = (256, 24, 24)  # the synthetic volumes' (T, IL, XL), as the trainer's tiny runs (conftest)


@pytest.fixture
def start_model(tmp_path, tiny_card) -> Path:
    torch.manual_seed(0)
    return save_model_dir(build_model(tiny_card), tiny_card, tmp_path / "start")


@pytest.fixture
def survey(tmp_path, pair_factory) -> Path:
    """A noisy survey ``(inline, crossline, sample)`` = (30, 20, 256), as a user's .npy."""
    _, noisy = pair_factory(7, (30, 20, 256))
    path = tmp_path / "survey.npy"
    np.save(path, noisy)
    return path


def adapt_config(out: Path, survey: Path, start: Path, **overrides: object) -> AdaptConfig:
    values = dict(out=out, adapt=survey, init_from=start, synthetic=3, synthetic_shape=SHAPE_TILXL,
                  synthetic_family="a", steps_per_epoch=3, batch_size=4, crop=(32, 128), slice_stride=4,
                  val_volumes=1, device="cpu", precision="fp32", progress=False, qc_sections=2)
    values.update(overrides)
    return AdaptConfig(**values)


@pytest.mark.parametrize(("shape", "views"), [((601, 1, 1501), ("inline", "crossline")),
                                              ((1, 534, 1501), ("inline",)),
                                              ((30, 40, 100), ("inline", "crossline"))])
def test_the_held_out_block_is_in_no_training_piece(shape, views):
    train, held, block = split_survey(shape, views, holdout=0.1)
    axis = INLINE if block["view_axis"] == "inline" else CROSSLINE
    a, b = block["start"], block["stop"]
    assert b - a == round(0.1 * shape[axis]) and held
    for p in train:
        if p.axis == axis:
            assert not a <= p.index < b
        else:  # a section across the block: its traces a:b are not in the piece
            assert p.stop <= a or p.start >= b
    widths = {p.traces for p in held}
    assert max(widths) == max(b - a, shape[1 - axis] if shape[axis] > 1 else 0) or len(widths) == 1


def test_the_survey_is_read_and_scaled_as_the_runtime_reads_it(survey):
    from impeccable.core.model_io import ModelIO
    from impeccable.runtime.passes import reader_stats
    from impeccable.runtime.volumes import open_reader
    from impeccable.train.survey import Survey, SurveyFeed

    opened = Survey(survey)
    reader = open_reader(survey)
    assert opened.stats == reader_stats(reader) and opened.stats.spread > 0  # the robust figures too
    card = new_card(scaling="robust")
    io, feed = ModelIO.from_card(card), SurveyFeed(card)
    section = reader.read(inlines=slice(3, 4))[0]
    np.testing.assert_array_equal(feed.unit(opened.section(INLINE, 3), opened.stats), io.normalize(section, opened.stats))
    assert feed.pad_value == io.pad_value == 0.5


def test_a_survey_too_small_is_refused():
    with pytest.raises(InputError, match="too small"):
        split_survey((3, 4, 100), ("inline", "crossline"), holdout=0.1)


def test_synthetic_count():
    assert [synthetic_count(8, s) for s in (0, 0.01, 0.25, 0.5, 0.99)] == [0, 1, 2, 4, 7]


def test_adapt_writes_a_model_directory_with_its_lineage_and_the_qc(tmp_path, survey, start_model, fake_synth):
    assert adapt_config(tmp_path / "x", survey, start_model).scaling == "minmax"  # auto: the start model's
    result = adapt(adapt_config(tmp_path / "run", survey, start_model, scaling="robust"))
    assert result.step == 3 and result.stopped is None
    model, card = load_model(tmp_path / "run")  # a model directory like any other
    entry = card["training"]["lineage"][-1]
    assert entry["adapt"]["survey"] == {"name": "survey.npy", "sha256": sha256_file(survey)}
    assert entry["adapt"]["mask"] == "blind-trace" and entry["adapt"]["mask_share"] == 0.02
    assert entry["adapt"]["synthetic_images_per_batch"] == 1 and entry["steps"] == 3
    assert entry["init_from"] == str(start_model)
    assert card["data"]["survey"]["held_out_block"] == {"view_axis": "inline", "start": 13, "stop": 16}
    # --scaling robust from a min-max start: a field-ready card (the trainer's linear twin of the sigmoid model)
    assert card["normalization"]["kind"] == "robust_per_volume" and card["output_activation"] == "identity"
    # an adapted model keeps its survey's reflectors: its removal floor rises where the removed part is coherent
    assert card["output_guard"]["removal_floor_coherence_db"] == 10.0
    qc = json.loads((tmp_path / "run" / QC_NAME).read_text())
    assert len(qc["held_out"]["pieces"]) == 2
    for name in ("start", "adapted"):
        assert set(qc[name]) >= {"removed_energy", "low_frequency_ratio", "removed_lateral_coherence",
                                  "coherent_removed_energy", "leakage", "removed_from_denoised"}
        assert all(np.isfinite(v) for v in qc[name].values())
    # the weights moved from the start model's
    start, _ = load_model(start_model)
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), model.state_dict().values()))


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, survey, start_model, fake_synth):
    whole = adapt(adapt_config(tmp_path / "a", survey, start_model, steps_per_epoch=4, qc_sections=1))
    cut = adapt(adapt_config(tmp_path / "b", survey, start_model, steps_per_epoch=4, qc_sections=1,
                             max_minutes=1e-9))
    assert cut.stopped == "max-minutes" and cut.step == 1
    assert (tmp_path / "b" / "model.json").is_file()  # the model so far is written at a stop
    # resumed from the CLI without --adapt: the run directory says it is an adaptation
    out = CliRunner().invoke(main, ["--out", str(tmp_path / "b"), "--resume", "--no-progress",
                                    "--precision", "fp32"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert whole.step == 4
    wa, wb = (load_file(tmp_path / d / "last" / STATE_TENSORS) for d in "ab")
    for key in wa:
        if key.startswith(("model.", "optim.")):
            torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)
    ea, eb = (load_file(tmp_path / d / "model.safetensors") for d in "ab")
    for key in ea:
        torch.testing.assert_close(ea[key], eb[key], rtol=1e-5, atol=1e-6)


def test_an_unreadable_survey_fails_in_one_line_before_training(tmp_path, start_model, fake_synth):
    out_dir = tmp_path / "run"
    for name, content in (("broken.sgy", b"not a SEG-Y file" * 300), ("broken.npy", b"\x93NUMPY garbage" * 10)):
        bad = tmp_path / name
        bad.write_bytes(content)
        result = CliRunner().invoke(main, ["--adapt", str(bad), "--out", str(out_dir), "--init-from",
                                           str(start_model), "--no-progress"])
        assert result.exit_code == 1
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and name in lines[0], result.output
        assert not out_dir.exists()  # nothing generated, nothing trained
    missing = CliRunner().invoke(main, ["--adapt", str(tmp_path / "nope.npy"), "--out", str(out_dir)])
    assert missing.exit_code == 1 and "Error: input file not found" in missing.output


def test_adapt_flags_need_adapt(tmp_path):
    result = CliRunner().invoke(main, ["--synthetic", "2", "--out", str(tmp_path / "r"), "--mask", "blind-spot"])
    assert result.exit_code == 1 and "Error: --mask is an option of --adapt" in result.output


def test_help_documents_the_adaptation():
    text = CliRunner().invoke(main, ["--help"]).output
    for flag in ("--adapt", "--mask", "--mask-share", "--mask-radius", "--unmasked-weight", "--synthetic-share",
                 "--steps", "--holdout", "--removal-floor-coherence"):
        assert flag in text


def test_the_qc_warns_when_the_adapted_model_takes_more_from_denoised_sections():
    """The figure the noisy sections cannot show: a model that learned to take more from the signal itself."""
    from impeccable.train.adapt_qc import DENOISED_WARN, qc_warnings

    start = {"coherent_removed_energy": 0.001, "low_frequency_ratio": 0.9, "removed_from_denoised": 0.03}
    assert qc_warnings(start, dict(start)) == []
    assert qc_warnings(start, {**start, "removed_from_denoised": 0.03 + DENOISED_WARN / 2}) == []
    (warning,) = qc_warnings(start, {**start, "removed_from_denoised": 0.09})
    assert "already denoised" in warning and "0.090 vs 0.030" in warning


def test_the_coherence_raise_lands_only_where_the_card_has_a_removal_floor():
    from impeccable.core.model_io import ModelIO
    from impeccable.train.adapt import with_coherence_raise

    robust, minmax = new_card(scaling="robust"), new_card(scaling="minmax")
    del robust["output_guard"]["removal_floor_coherence_db"]  # a start card without the raise (v12's first card)
    raised = with_coherence_raise(robust, 10.0)
    assert ModelIO.from_card(raised).output_guard.removal_floor_coherence_db == 10.0
    assert "removal_floor_coherence_db" not in robust["output_guard"]  # the start card is not changed
    assert with_coherence_raise(robust, 0.0) is robust  # 0: the start card's own value
    assert with_coherence_raise(minmax, 10.0) is minmax  # a min-max card has no removal floor to raise
    floorless = {**robust, "output_guard": {**robust["output_guard"], "removal_floor_db": None}}
    assert with_coherence_raise(floorless, 10.0) is floorless


def test_an_out_of_range_coherence_raise_is_one_line_before_training(tmp_path, survey, start_model):
    result = CliRunner().invoke(main, ["--adapt", str(survey), "--out", str(tmp_path / "run"), "--init-from",
                                       str(start_model), "--removal-floor-coherence", "45"])
    assert result.exit_code == 1 and "--removal-floor-coherence out of range" in result.output
    assert not (tmp_path / "run" / "model.safetensors").exists()
