"""The submission writer/reader and ``impeccable-score`` through click's CliRunner."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from impeccable.core.errors import DataError
from impeccable.data.score_cli import main
from impeccable.data.scoring import score_sections, score_volumes, submission_sections
from impeccable.data.submission import read_submission, write_submission

CANON = (12, 10, 40)


def _pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = (np.cumsum(rng.normal(size=CANON), axis=-1) * 100).astype(np.float32)
    noisy = (0.2 * (clean + 50 * rng.normal(size=CANON)) + 223).astype(np.float32)
    return clean, noisy


@pytest.fixture
def submissions(tmp_path):
    """truth.npz and pred.npz of two volumes; the predictions stored time first, one as a .npy path."""
    (c1, n1), (c2, n2) = _pair(1), _pair(2)
    np.save(tmp_path / "n2.npy", np.moveaxis(n2, -1, 0))
    write_submission({"a": c1, "b": c2}, tmp_path / "truth.npz")
    write_submission([("a", np.moveaxis(n1, -1, 0)), ("b", tmp_path / "n2.npy")], tmp_path / "pred.npz")
    truth = {**submission_sections("a", c1), **submission_sections("b", c2)}
    prediction = {**submission_sections("a", n1), **submission_sections("b", n2)}
    return tmp_path, truth, prediction


def test_writer_makes_the_canonical_sections_from_either_orientation(submissions):
    tmp_path, truth, prediction = submissions
    for name, expected in (("truth.npz", truth), ("pred.npz", prediction)):
        written = read_submission(tmp_path / name)
        assert sorted(written) == sorted(expected)
        for key in expected:
            np.testing.assert_array_equal(written[key], expected[key])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n2.npy", "pred.npz", "truth.npz"]  # no temporaries


def test_writer_refusals(tmp_path):
    clean, _ = _pair(1)
    with pytest.raises(DataError, match="no volume"):
        write_submission({}, tmp_path / "x.npz")
    with pytest.raises(DataError, match="given twice"):
        write_submission([("a", clean), ("a", clean)], tmp_path / "x.npz")
    with pytest.raises(DataError, match="not unique"):
        write_submission({"a": np.zeros((8, 8, 8))}, tmp_path / "x.npz")
    with pytest.raises(DataError, match="2 dimension"):
        write_submission({"a": np.zeros((8, 8))}, tmp_path / "x.npz")
    assert not list(tmp_path.iterdir())


class _Boom:
    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (open, (str(self.flag), "w"))


@pytest.mark.parametrize(
    ("make", "match"),
    [("missing", "not found"), ("npy", "not an npz"), ("pickle", "pickled entries are refused"),
     ("object", "pickled entries are refused"), ("garbage", "cannot read"), ("empty", "holds no section"),
     ("float", "not a 2-D uint8"), ("3d", "not a 2-D uint8")],
)
def test_read_submission_refusals(tmp_path, make, match):
    path = tmp_path / "s.npz"
    flag = tmp_path / "unpickled"
    if make == "npy":
        np.save(tmp_path / "s.npy", np.zeros(3))
        path = tmp_path / "s.npy"
    elif make == "pickle":
        path.write_bytes(pickle.dumps(_Boom(flag)))
    elif make == "object":
        np.savez(path, k=np.array([_Boom(flag)], dtype=object))
    elif make == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    elif make == "empty":
        np.savez(path)
    elif make == "float":
        np.savez(path, k=np.zeros((8, 8), np.float32))
    elif make == "3d":
        np.savez(path, k=np.zeros((8, 8, 8), np.uint8))
    with pytest.raises(DataError, match=match):
        read_submission(path)
    assert not flag.exists()


def test_cli_prints_the_score(submissions):
    tmp_path, truth, prediction = submissions
    expected = score_sections(truth, prediction)
    result = CliRunner().invoke(main, [str(tmp_path / "pred.npz"), str(tmp_path / "truth.npz")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"score {expected:.6f}  (12 sections, lowest and highest dropped)"


def test_cli_per_section_table_marks_the_dropped(submissions):
    tmp_path, truth, _ = submissions
    result = CliRunner().invoke(main, [str(tmp_path / "pred.npz"), str(tmp_path / "truth.npz"), "--per-section"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(truth) + 1
    assert sum("(dropped)" in line for line in lines) == 2
    assert {line.split()[0] for line in lines[:-1]} == set(truth)


def test_cli_scores_npy_volumes_in_either_orientation(tmp_path):
    clean, noisy = _pair(3)
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "pred.npy", np.moveaxis(noisy, -1, 0))
    result = CliRunner().invoke(main, [str(tmp_path / "pred.npy"), str(tmp_path / "clean.npy")])
    assert result.exit_code == 0, result.output
    assert f"score {score_volumes(clean, noisy):.6f}" in result.output


def test_cli_notes_extra_prediction_sections(submissions, tmp_path):
    folder, _, _ = submissions
    extra = dict(read_submission(folder / "pred.npz"))
    extra["zz_gt.npy-i_0"] = np.zeros((8, 8), np.uint8)
    np.savez(tmp_path / "extra.npz", **extra)
    result = CliRunner().invoke(main, [str(tmp_path / "extra.npz"), str(folder / "truth.npz")])
    assert result.exit_code == 0 and "1 prediction section(s) without a truth key were ignored" in result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [(["missing.npz", "truth.npz"], "submission file not found"),
     (["pred.npz", "n2.npy"], "different kinds"),
     (["half.npz", "truth.npz"], "prediction lacks sections"),
     (["bad.npz", "truth.npz"], "cannot read bad.npz")],
)
def test_cli_errors_are_one_line(submissions, args, match):
    tmp_path, _, prediction = submissions
    np.savez(tmp_path / "half.npz", **{k: v for k, v in prediction.items() if k.startswith("a_")})
    (tmp_path / "bad.npz").write_bytes(b"nonsense")
    result = CliRunner().invoke(main, [str(tmp_path / a) for a in args])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert match in result.output
