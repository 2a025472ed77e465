"""impeccable-export through click's CliRunner: files written, exit codes, one-line errors."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnx")

from impeccable.export import cli, tensorrt_build  # noqa: E402
from impeccable.export.cli import main  # noqa: E402


@pytest.fixture
def no_tensorrt(monkeypatch):
    """This machine as the CLI sees it when TensorRT is missing (also on a GPU machine that has it)."""
    monkeypatch.setattr(tensorrt_build, "why_no_engine", lambda: "tensorrt not installed")


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_help_explains_outputs_and_exit_codes():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for text in ("MODEL_DIR", "--fp16", "--batch", "--max-batch", "--opset", "--dynamo / --no-dynamo",
                 "--fp16-margin", "--no-engine", "Exit codes", "2 --fp16 wrote the ONNX files"):
        assert text in result.output


def test_full_export_without_tensorrt_writes_onnx_files_and_exits_2(tiny_model_dir, tmp_path, no_tensorrt):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [str(tiny_model_dir), "--out", str(out), "--fp16"])
    assert result.exit_code == cli.EXIT_NO_ENGINE, result.output
    assert sorted(p.name for p in out.iterdir()) == ["model.fp16.audit.json", "model.fp16.onnx", "model.onnx"]
    assert "ONNX Runtime matches PyTorch" in result.stdout and "node(s) kept in FP32" in result.stdout
    (line,) = _error_lines(result)
    assert line.startswith("Error: no TensorRT plan built: tensorrt not installed | model.onnx and model.fp16.onnx "
                           "are written | pip install '.[gpu]' in the impeccable clone (not on PyPI), on a machine "
                           "with an NVIDIA GPU")
    assert line.endswith(f"impeccable-export {tiny_model_dir} --fp16")
    assert not list(tiny_model_dir.glob("*.onnx"))  # --out respected


def test_up_to_date_files_are_kept(exported_dir, model_copy, no_tensorrt):
    model_dir = model_copy(exported_dir)
    plain = CliRunner().invoke(main, [str(model_dir)])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.startswith("kept ") and "up to date with the weights" in plain.stdout
    first = CliRunner().invoke(main, [str(model_dir), "--fp16", "--no-engine"])
    assert first.exit_code == 0, first.output
    assert "no TensorRT plan asked for" in first.stdout and (model_dir / "model.fp16.onnx").is_file()
    again = CliRunner().invoke(main, [str(model_dir), "--fp16"])  # only the engine is left to do: and it cannot be
    assert again.exit_code == cli.EXIT_NO_ENGINE
    assert [line.split()[0] for line in again.stdout.splitlines()][:2] == ["kept", "kept"]


def test_a_card_changed_outside_the_graph_is_written_into_the_onnx_graph_untouched(exported_dir, model_copy,
                                                                                    no_tensorrt, monkeypatch):
    import json

    import onnx

    from impeccable.core.onnx_meta import onnx_metadata
    from impeccable.export import onnx_export

    model_dir = model_copy(exported_dir)
    card_path = model_dir / "model.json"
    card = json.loads(card_path.read_text())
    card.setdefault("output_guard", {})["below_band_db"] = -15.0
    card_path.write_text(json.dumps(card))
    before = onnx.load(str(model_dir / "model.onnx")).graph
    def no_export(*args, **kwargs):
        raise RuntimeError("exported again")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    result = CliRunner().invoke(main, [str(model_dir)])
    assert result.exit_code == 0, result.output
    assert "wrote the card into" in result.stdout and "graph is untouched" in result.stdout
    assert json.loads(onnx_metadata(model_dir / "model.onnx")["card"]) == card
    after = onnx.load(str(model_dir / "model.onnx")).graph
    assert before.SerializeToString() == after.SerializeToString()
    assert CliRunner().invoke(main, [str(model_dir)]).stdout.startswith("kept ")  # now up to date
    card["input_size"] = [card["input_size"][0] * 2, card["input_size"][1]]  # a graph field: a real export
    card_path.write_text(json.dumps(card))
    again = CliRunner().invoke(main, [str(model_dir)])
    assert isinstance(again.exception, RuntimeError) and "exported again" in str(again.exception)


@pytest.mark.parametrize(("args", "match"), [
    (["{missing}"], "Error: model directory not found"),
    (["{model}", "--batch", "16", "--max-batch", "8"], "Error: batch sizes out of order | received --batch 16 --max-batch 8"),
    (["{model}", "--fp16-margin", "0.5"], "Error: FP16 margin below 1"),
])
def test_one_line_errors(args, match, exported_dir, tmp_path):
    values = {"missing": tmp_path / "nope", "model": exported_dir}
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code == 1
    (line,) = _error_lines(result)
    assert line.startswith(match)


def test_export_without_torch_says_what_to_install(exported_dir, model_copy, monkeypatch):
    model_dir = model_copy(exported_dir)
    real = importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = CliRunner().invoke(main, [str(model_dir), "--force"])
    assert result.exit_code == 1
    (line,) = _error_lines(result)
    assert "exporting needs the training packages | received torch not installed" in line
    assert line.endswith("pip install '.[train]'")
