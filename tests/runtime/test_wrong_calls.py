"""The wrong calls people really make (issue 26): each answered in one line, exit 1, the most useful error first."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from impeccable.runtime import engines
from impeccable.runtime.cli import main


@pytest.fixture
def survey(tmp_path, monkeypatch):
    """A small volume ``v.npy`` in a fresh folder (the working directory), a stale default output beside it."""
    monkeypatch.chdir(tmp_path)
    np.save("v.npy", np.random.default_rng(0).normal(size=(3, 20, 100)).astype(np.float32))
    (tmp_path / "v.denoised.npy").write_bytes(b"old")
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    return tmp_path


CASES = [
    (["folder"], r"^Error: INPUT is a directory \| received folder \| expected a volume file or store \(\.npy"),
    (["missing.npy"], r"^Error: INPUT not found \| received missing.npy"),
    (["notes.txt"], r"^Error: unsupported INPUT type \| received notes.txt \| expected one of \.npy"),
    (["v.npy", "--time-axis", "1"],
     r"^Error: invalid --time-axis \| received 1 \| expected one of 'auto', '0', '2' \| see impeccable-denoise --help"),
    (["v.npy", "--strength", "2"], r"^Error: invalid --strength \| 2.0 is not in the range"),
    (["v.npy", "--bogus"], r"^Error: unknown option \| received --bogus"),
    ([], r"^Error: missing INPUT"),
    (["v.npy", "--engine", "nope"], r"^Error: unknown engine \| received 'nope' \| expected one of torch"),
    # the existing default output comes after the missing engine: installing the engine is what is needed first
    (["v.npy", "--engine", "tensorrt"],
     r"^Error: engine tensorrt needs tensorrt and polygraphy, which are not installed \| received --engine tensorrt"
     r" \| .* \| pip install '\.\[gpu\]' in the impeccable clone \(not on PyPI\)"),
    (["v.npy", "--engine", "openvino"], r"^Error: output exists \| received v.denoised.npy"),
    (["v.npy", "--resume"], r"^Error: --resume and --workers need --cluster"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a) or "no-args" for a, _ in CASES])
def test_wrong_call_is_one_line_exit_1(survey, monkeypatch, args, message):
    real = engines.missing_packages
    monkeypatch.setattr(engines, "missing_packages",
                        lambda name: ["tensorrt", "polygraphy"] if name == "tensorrt" else real(name))
    result = CliRunner().invoke(main, args, prog_name="impeccable-denoise")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(message, lines[0]), lines[0]
    assert (survey / "v.denoised.npy").read_bytes() == b"old"


def test_views_both_states_its_cost_before_the_run(survey, monkeypatch):
    from impeccable.runtime import pipeline

    monkeypatch.setattr(pipeline, "denoise_file", lambda *a: (_ for _ in ()).throw(SystemExit(0)))
    result = CliRunner().invoke(main, ["v.npy", "--views", "both", "-o", "w.npy"])
    assert "views both: 3 inline + 20 crossline sections = 23 sections, 7.7x the work of --views inline" \
        in result.stderr
