"""The benchmarks run end to end (``--quick``) on a tiny model and report what the issue's JSON contract names."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnx")

from impeccable.benchmarks import quality, throughput  # noqa: E402

RESULT_KEYS = {"engine", "precision", "batch", "tta", "sections_per_s", "p50_ms", "p90_ms", "p99_ms", "gflops",
               "peak_fraction", "end_to_end_s", "engine_s", "rss_mb"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny UNet++ (tu-test_resnet, 64 x 128 window) with model.onnx: fast enough to benchmark in seconds."""
    import torch

    from impeccable.core.card import new_card
    from impeccable.export.onnx_export import export_onnx
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(0)
    card = new_card({"encoder_name": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}, input_size=(64, 128),
                    name="tiny-bench")
    out = tmp_path_factory.mktemp("bench-model")
    save_model_dir(build_model(card).eval(), card, out)
    export_onnx(out)
    return out


@pytest.mark.parametrize("spec, expected", [
    ("torch", ("torch", "fp32", None)),
    ("openvino:bf16", ("openvino", "bf16", None)),
    ("torch:bf16@cuda", ("torch", "bf16", "cuda")),
    ("onnxruntime@cpu", ("onnxruntime", "fp32", "cpu")),
])
def test_parse_engine(spec, expected):
    assert throughput.parse_engine(spec) == expected


def test_quick_throughput_reports_every_engine(tiny_model, tmp_path):
    engines = ["torch", "onnxruntime"]
    if importlib.util.find_spec("openvino"):
        engines.append("openvino:fp32")
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    result = CliRunner().invoke(throughput.main, ["--quick", "--model", str(tiny_model), "--engines",
                                                  ",".join(engines), "--json", str(out), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"device", "versions", "peak_gflops", "results"} <= set(report)
    assert report["peak_gflops"]["fp32"] > 0
    assert [r["engine"] for r in report["results"]] == engines
    for row in report["results"]:
        assert row["error"] is None, row
        assert RESULT_KEYS <= set(row)
        assert row["sections_per_s"] > 0 and row["gflops"] > 0
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        # the pipeline's time includes the engine's
        assert 0 < row["engine_s"] <= row["end_to_end_s"]
        assert 0 < row["rss_mb"] < 4096
    table = md.read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == len(engines) + 1  # header + one per engine
    assert "1.00x" in table  # the first engine is the reference of the speed-up column


def test_throughput_without_onnx_model_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(throughput.main, ["--quick", "--model", str(tmp_path)])
    assert result.exit_code == 1
    assert "no ONNX model" in result.output and "Traceback" not in result.output


def test_quality_scores_noisy_baselines_and_model(tiny_model, tmp_path):
    out = tmp_path / "quality.json"
    result = CliRunner().invoke(quality.main, ["--model", str(tiny_model), "--engines", "onnxruntime", "--volumes",
                                               "1", "--levels", "moderate", "--shape", "8,56,200", "--families", "a",
                                               "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["seed"] == quality.HELD_OUT_SEED
    scores = rows[0]["scores"]
    assert {"noisy", "bandpass", "fx_decon", "model onnxruntime", "clean-in model onnxruntime"} <= set(scores)
    assert all(np.isfinite(v) and -1 <= v <= 1 for v in scores.values())
    assert 0.75 < scores["noisy"] < 0.97  # the moderate level's calibrated range
    qc = rows[0]["qc"]
    assert set(qc) == {"model onnxruntime", "clean-in model onnxruntime"}
    assert set(qc["model onnxruntime"]) == {"gain", "offset_of_std", "removed_energy", "removed_mean_of_std",
                                            "local_similarity", "removed_coherence"}
    assert abs(qc["model onnxruntime"]["removed_mean_of_std"]) < 0.01  # amplitude-preserving
    assert "| removed_energy |" in result.output  # the QC table


def test_quality_rejects_an_unknown_noise_level(tiny_model):
    result = CliRunner().invoke(quality.main, ["--model", str(tiny_model), "--levels", "moderate,loud"])
    assert result.exit_code == 1
    assert "unknown noise level" in result.output and "light, moderate, strong" in result.output
    assert "Traceback" not in result.output


def test_quality_scores_each_view_setting_as_its_own_column(tiny_model, tmp_path):
    out = tmp_path / "quality.json"
    result = CliRunner().invoke(quality.main, ["--model", str(tiny_model), "--engines", "onnxruntime", "--volumes",
                                               "1", "--levels", "moderate", "--shape", "24,24,200", "--views",
                                               "inline,both", "--no-baselines", "--families", "a", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    scores = report["rows"][0]["scores"]
    assert report["views"] == ["inline", "both"]
    assert set(scores) == {"noisy", "model onnxruntime", "model onnxruntime both", "clean-in model onnxruntime",
                           "clean-in model onnxruntime both"}
    # Averaging in a second, differently oriented pass must change the field (an ignored --views would not).
    assert scores["model onnxruntime both"] != scores["model onnxruntime"]


def test_quality_rejects_an_unknown_view(tiny_model):
    result = CliRunner().invoke(quality.main, ["--model", str(tiny_model), "--views", "inline,diagonal"])
    assert result.exit_code == 1
    assert "unknown views" in result.output and "inline, crossline, both" in result.output
    assert "Traceback" not in result.output


def test_quality_rows_per_family_with_clean_in(tiny_model, tmp_path):
    from impeccable.data.scoring import score_volumes
    from impeccable.data.synth_b import synthesize_pair_b

    out = tmp_path / "quality.json"
    md = tmp_path / "quality.md"
    result = CliRunner().invoke(quality.main, ["--model", str(tiny_model), "--engines", "onnxruntime", "--volumes",
                                               "1", "--levels", "light,strong", "--shape", "8,40,160",
                                               "--no-baselines", "--json", str(out), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["families"] == ["a", "b"]  # both by default
    rows = report["rows"]
    assert [(r["family"], r["level"]) for r in rows] == [("a", "light"), ("a", "strong"), ("b", "light"),
                                                          ("b", "strong")]
    for r in rows:
        assert set(r["scores"]) == {"noisy", "model onnxruntime", "clean-in model onnxruntime"}
    # Family b's rows are its own generator's volumes (the noisy column would match family a's otherwise).
    clean, noisy = synthesize_pair_b(quality.HELD_OUT_SEED, (8, 40, 160), "strong")
    assert rows[3]["scores"]["noisy"] == pytest.approx(score_volumes(clean, noisy))
    # Clean-in: the clean volume denoised and scored against itself, one value per family and seed.
    assert rows[0]["scores"]["clean-in model onnxruntime"] == rows[1]["scores"]["clean-in model onnxruntime"]
    assert rows[0]["scores"]["clean-in model onnxruntime"] != rows[2]["scores"]["clean-in model onnxruntime"]
    assert all(0 < r["scores"]["clean-in model onnxruntime"] < 1 for r in rows)  # a random tiny model alters it
    table = md.read_text()
    assert "| **b** | **strong mean** |" in table and "clean-in model onnxruntime" in table


def test_quality_rejects_an_unknown_family(tiny_model):
    result = CliRunner().invoke(quality.main, ["--model", str(tiny_model), "--families", "a,c"])
    assert result.exit_code == 1
    assert "unknown synthetic family" in result.output and "Traceback" not in result.output
