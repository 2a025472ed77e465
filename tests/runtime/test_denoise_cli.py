"""``impeccable-denoise``: the flags' contract, the summary line, and one-line errors that write nothing."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from impeccable.runtime.cli import default_output, main
from impeccable.runtime.engines import installed


def _invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_default_output_sits_beside_the_input():
    assert default_output(Path("/data/survey.npy")) == Path("/data/survey.denoised.npy")
    assert default_output(Path("a/b.c.sgy")) == Path("a/b.c.denoised.sgy")


@pytest.mark.parametrize("time_first", [False, True])
def test_denoise_writes_the_input_orientation_and_prints_the_summary_and_qc(tmp_path, tiny_volume, tiny_model_dir,
                                                                        time_first):
    vol = tiny_volume((3, 20, 100))
    stored = np.moveaxis(vol, -1, 0) if time_first else vol
    np.save(tmp_path / "vol.npy", stored)
    result = _invoke(tmp_path / "vol.npy", "--model", tiny_model_dir, "--engine", "onnxruntime", "--batch-size", 2,
                     "--no-progress")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and "denoised 3 sections" in lines[0] and "sections/s" in lines[0]
    assert lines[1].startswith("sample interval unknown: run at the model's")
    assert lines[2].startswith("QC: removed")
    assert str(tmp_path / "vol.denoised.npy") in lines[0]
    out = np.load(tmp_path / "vol.denoised.npy")
    assert out.shape == stored.shape and out.dtype == np.float32
    # input scale, amplitude-preserving: the removed part has zero mean
    assert abs(float(np.mean(stored.astype(np.float64) - out))) <= 0.01 * float(vol.std())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.denoised.npy", "vol.npy"]


def test_flags_views_scale_tta_preview_and_integer_input(tmp_path, tiny_volume, tiny_model_dir):
    vol = (tiny_volume((4, 20, 100)) * 50).astype(np.int16)
    vol[0, 0, 0] = 0
    np.save(tmp_path / "vol.npy", vol)
    out, png = tmp_path / "den.npy", tmp_path / "den.png"
    result = _invoke(tmp_path / "vol.npy", "-o", out, "--model", tiny_model_dir, "--engine", "onnxruntime",
                     "--views", "both", "--no-tta", "--batch-size", 3, "--scale", "uint8", "--time-axis", "2",
                     "--preview", png, "--no-progress")
    assert result.exit_code == 0, result.output
    line, sampling, qc = result.stdout.strip().splitlines()
    assert sampling.startswith("sample interval unknown") and qc.startswith("QC: ")
    assert "denoised 24 sections" in line and line.endswith(f", preview {png}")
    den = np.load(out)
    assert den.dtype == np.uint8 and den.shape == vol.shape and den.min() == 0 and den.max() == 255
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_nonfinite_samples_are_reported(tmp_path, tiny_volume, tiny_model_dir):
    vol = tiny_volume((3, 20, 100))
    vol[0, :2, 0] = np.nan
    vol[1, 0, 5] = np.inf
    np.save(tmp_path / "vol.npy", vol)
    result = _invoke(tmp_path / "vol.npy", "--model", tiny_model_dir, "--engine", "onnxruntime", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "filled 3 NaN/Inf samples" in result.stderr
    assert np.isfinite(np.load(tmp_path / "vol.denoised.npy")).all()


def test_existing_output_is_replaced_only_with_overwrite(tmp_path, tiny_volume, tiny_model_dir):
    np.save(tmp_path / "vol.npy", tiny_volume((3, 20, 100)))
    np.save(tmp_path / "vol.denoised.npy", np.arange(3))
    args = (tmp_path / "vol.npy", "--model", tiny_model_dir, "--engine", "onnxruntime", "--no-progress")
    assert _invoke(*args).exit_code == 1
    np.testing.assert_array_equal(np.load(tmp_path / "vol.denoised.npy"), np.arange(3))
    assert _invoke(*args, "--overwrite").exit_code == 0
    assert np.load(tmp_path / "vol.denoised.npy").shape == (3, 20, 100)


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits: use a kernel file system that refuses files
        return Path("/sys")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


class Evil:
    def __reduce__(self):
        return (os.system, ("echo unpickled > /dev/null",))


def _save(path: Path, data: object) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        np.save(path, data, allow_pickle=True)
    return path


def _truncated() -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ones((4, 5, 30), np.float32))
    return buf.getvalue()[:300]


GOOD = np.random.default_rng(0).random((3, 20, 100), dtype=np.float32)
NAN_ELSE_ZERO = np.zeros((3, 20, 100), np.float32)
NAN_ELSE_ZERO[0, 0, :4] = np.nan

DEFAULT_ENGINE = "<no --engine>"
# (id, input file name, its content (None: absent), extra args, message pattern)
BAD_RUNS = [
    ("missing file", "vol.npy", None, [], "INPUT not found"),
    ("unsupported extension", "vol.txt", GOOD.tobytes(), [], "unsupported INPUT type"),
    ("object npy", "vol.npy", np.array([Evil(), 1], dtype=object), [], "pickled/object arrays are refused"),
    ("pickle named npy", "vol.npy", pickle.dumps([Evil()]), [], "pickle|unreadable"),
    ("1-D", "vol.npy", np.zeros(10, np.float32), [], "has 1 dimension"),
    ("2-D", "vol.npy", np.zeros((10, 20), np.float32), [], "has 2 dimension"),
    ("4-D", "vol.npy", np.zeros((2, 3, 4, 50), np.float32), [], "has 4 dimension"),
    ("truncated", "vol.npy", _truncated(), [], "truncated"),
    ("nan then constant", "vol.npy", NAN_ELSE_ZERO, [], r"constant \(besides 4 NaN/Inf"),
    ("constant", "vol.npy", np.full((3, 20, 100), 7, np.int16), [], "volume is constant"),
    ("ambiguous time axis", "vol.npy", np.zeros((30, 20, 30), np.float32), [], "time axis"),
    ("output exists", "vol.npy", GOOD, ["-o", "{root}/old.npy"], "output exists"),
    ("output dir missing", "vol.npy", GOOD, ["-o", "{root}/nowhere/out.npy"], "does not exist"),
    ("output dir unwritable", "vol.npy", GOOD, ["-o", "{unwritable}/out.npy"], "not writable"),
    ("output format", "vol.npy", GOOD, ["-o", "{root}/out.sgy"], "format differs"),
    ("missing model dir", "vol.npy", GOOD, ["--model", "{root}/no-model"], "model directory not found"),
    ("incomplete model dir", "vol.npy", GOOD, ["--model", "{root}/card-only", "--engine", "onnxruntime"],
     "has no model.onnx"),
    ("model dir without weights", "vol.npy", GOOD, ["--model", "{root}/card-only", DEFAULT_ENGINE],
     "no installed engine"),
    ("removal floor on a min-max model", "vol.npy", GOOD, ["--removal-floor", "-13"],
     "removal floor needs a field-ready model"),
    ("removal floor not a level", "vol.npy", GOOD, ["--removal-floor", "high"], "removal floor out of range"),
    ("removal floor infinite", "vol.npy", GOOD, ["--removal-floor", "-inf"], "removal floor out of range"),
    ("coherence raise on a min-max model", "vol.npy", GOOD, ["--removal-floor-coherence", "10"],
     "removal floor needs a field-ready model"),
    ("coherence raise out of range", "vol.npy", GOOD, ["--removal-floor-coherence", "40"], "not in the range"),
    ("unknown engine", "vol.npy", GOOD, ["--engine", "tensorflow"],
     "unknown engine .*torch, onnxruntime, tensorrt, openvino"),
    ("engine not installed", "vol.npy", GOOD, ["--engine", "tensorrt"], r"pip install '\.\[gpu\]' in the impeccable clone"),
]
_TRT_HERE = pytest.mark.skipif(installed("tensorrt"), reason="tensorrt is installed here")


@pytest.mark.parametrize(("case", "name", "content", "extra", "match"),
                         [pytest.param(*row, id=row[0], marks=_TRT_HERE if row[0] == "engine not installed" else ())
                          for row in BAD_RUNS])
def test_bad_runs_fail_in_one_line_and_write_nothing(tmp_path, tiny_model_dir, case, name, content, extra, match):
    root = tmp_path / "work"
    root.mkdir()
    if content is not None:
        _save(root / name, content)
    np.save(root / "old.npy", np.arange(3))
    (root / "card-only").mkdir()
    (root / "card-only" / "model.json").write_bytes((tiny_model_dir / "model.json").read_bytes())
    extra = [e.format(root=root, unwritable=_unwritable_dir(tmp_path)) for e in extra]
    if "--model" not in extra:
        extra += ["--model", str(tiny_model_dir)]
    if "--engine" not in extra and DEFAULT_ENGINE not in extra:
        extra += ["--engine", "onnxruntime"]
    extra = [e for e in extra if e != DEFAULT_ENGINE]
    before = _files(root)

    result = _invoke(root / name, *extra, "--no-progress")

    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert _files(root) == before  # nothing written, nothing changed, no temp file left
