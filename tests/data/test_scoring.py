"""data/scoring.py against a direct skimage computation of the official formula, and its edge cases.

The reference below follows the starter's ``utils.py`` step by step: ``rescale_volume(low=0, high=100)``
(percentiles 0 and 100 = min and max, clip, scale to 0..255), ``create_submission`` (slices at
``int(f * shape[a])`` of axes 0 and 1, truncating ``astype(np.uint8)``), ``scoring`` (skimage SSIM with
``data_range=255`` per truth key, sorted, first and last dropped, mean).
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from impeccable.core.errors import DataError
from impeccable.data.scoring import (
    score_scoring_sections,
    score_sections,
    score_volumes,
    section_indices,
    submission_sections,
    to_uint8_volume,
    trimmed_mean,
)
from impeccable.data.submission import read_submission, write_submission

CANON = (12, 10, 40)  # (inline, crossline, sample); sections >= 7 on each side for the SSIM window


def _starter_sections(volume: np.ndarray) -> list[np.ndarray]:
    """The starter's rescale + slicing, written out independently of data/scoring.py."""
    lo, hi = np.percentile(volume, 0), np.percentile(volume, 100)
    scaled = (np.clip(volume, lo, hi) - lo) / (hi - lo) * 255
    out = [scaled[s, :, :].astype(np.uint8) for s in (np.array([0.25, 0.5, 0.75]) * volume.shape[0]).astype(int)]
    out += [scaled[:, s, :].astype(np.uint8) for s in (np.array([0.25, 0.5, 0.75]) * volume.shape[1]).astype(int)]
    return out


def _starter_score(truths: list[np.ndarray], predictions: list[np.ndarray]) -> float:
    scores = []
    for truth, prediction in zip(truths, predictions):
        for t, p in zip(_starter_sections(truth), _starter_sections(prediction)):
            scores.append(structural_similarity(t, p, data_range=255))
    return float(np.mean(sorted(scores)[1:-1]))


def _pair(seed: int, shape=CANON, level: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = np.cumsum(rng.normal(size=shape), axis=-1).astype(np.float64) * 100
    noisy = 0.2 * (clean + level * 100 * rng.normal(size=shape)) + 223
    return clean, noisy


def test_score_volumes_equals_direct_skimage_computation():
    clean, noisy = _pair(0)
    assert score_volumes(clean, noisy) == pytest.approx(_starter_score([clean], [noisy]), abs=1e-12)


def test_multi_volume_score_drops_min_and_max_over_all_sections():
    pairs = [_pair(s, level=lv) for s, lv in ((1, 0.2), (2, 1.0), (3, 3.0))]
    truth, prediction = {}, {}
    for k, (clean, noisy) in enumerate(pairs):
        truth.update(submission_sections(f"v{k}", clean))
        prediction.update(submission_sections(f"v{k}", noisy))
    expected = _starter_score([c for c, _ in pairs], [n for _, n in pairs])
    assert score_sections(truth, prediction) == pytest.approx(expected, abs=1e-12)


def test_uint8_cast_truncates_and_extremes_set_the_scale():
    # 0 .. 255 spread over 0 .. 1: 0.999 * 255 = 254.7 truncates to 254; rounding would give 255.
    v = np.array([0.0, 0.999, 1.0, 0.5 / 255, 1.99 / 255]).reshape(1, 1, 5)
    np.testing.assert_array_equal(to_uint8_volume(v).ravel(), [0, 254, 255, 0, 1])
    # one extreme sample sets the grey levels of the whole volume
    spiky = np.linspace(0, 1, 10).reshape(1, 1, 10)
    spiky[0, 0, -1] = 100
    assert to_uint8_volume(spiky).ravel()[:-1].max() == 2
    assert to_uint8_volume(np.full((2, 2, 2), 7.0)).max() == 0  # constant volume: no division by zero


def test_affine_rescale_does_not_change_the_score():
    clean, noisy = _pair(4)
    assert score_volumes(clean, 3 * noisy - 50) == pytest.approx(score_volumes(clean, noisy), abs=2e-3)


def test_trimmed_mean_drops_one_min_and_one_max():
    assert trimmed_mean([0.1, 0.5, 0.6, 0.9]) == pytest.approx(0.55)
    assert trimmed_mean([0.5, 0.5, 0.5, 0.2, 0.2]) == pytest.approx(0.4)  # only one copy of each extreme goes
    assert trimmed_mean([0.3, 0.7]) == pytest.approx(0.5)  # fewer than three: nothing dropped (starter: NaN)


def test_one_ruined_section_is_dropped():
    clean, noisy = _pair(5)
    truth = submission_sections("v", clean)
    prediction = submission_sections("v", clean)  # perfect...
    worst = sorted(prediction)[0]
    prediction[worst] = np.zeros_like(prediction[worst])  # ...but one section
    assert score_sections(truth, prediction) == pytest.approx(1.0)


def test_section_positions_and_shapes():
    assert section_indices(300) == [75, 150, 225]
    assert section_indices(10) == [2, 5, 7]
    sections = submission_sections("v", np.zeros(CANON))
    assert len(sections) == 6
    assert {s.shape for k, s in sections.items() if "-i_" in k} == {(10, 40)}
    assert {s.shape for k, s in sections.items() if "-x_" in k} == {(12, 40)}
    assert all(s.dtype == np.uint8 for s in sections.values())


def test_keys_follow_the_starter():
    # The starter's create_submission keys sections by position (i_0, i_1, i_2), not slice index (i_75).
    keys = set(submission_sections("44319267", np.zeros((300, 300, 16))))
    assert keys == {f"44319267_gt.npy-{a}_{n}" for a in "ix" for n in range(3)}


def test_pitfall_time_first_volume_unmoved_scores_time_slices(tmp_path):
    # Flat layers, as in seismic: a time slice of the clean volume is nearly uniform, a vertical section is not.
    rng = np.random.default_rng(6)
    clean = np.cumsum(rng.normal(size=CANON[-1]), axis=-1) * 100 + rng.normal(size=CANON)
    noisy = 0.2 * (clean + 30 * rng.normal(size=CANON)) + 223
    stored_clean, stored_noisy = np.moveaxis(clean, -1, 0), np.moveaxis(noisy, -1, 0)  # (T, IL, XL)
    # The starter's slicing on the stored array: the "i" sections are (IL, XL) time slices at samples 10/20/30
    # (the "x" ones transposed inlines), no error is raised, and a number comes out.
    naive = submission_sections("v", stored_noisy)
    assert {s.shape for k, s in naive.items() if "-i_" in k} == {(12, 10)}
    assert {s.shape for k, s in naive.items() if "-x_" in k} == {(40, 10)}
    naive_score = score_sections(submission_sections("v", stored_clean), naive)
    right = score_volumes(clean, noisy)
    assert naive_score < right - 0.1  # here 0.76 against 0.93
    # The writer moves the time axis explicitly: the stored time-first volume scores as the canonical one.
    write_submission({"v": stored_noisy}, tmp_path / "pred.npz")
    write_submission({"v": clean}, tmp_path / "truth.npz")
    pred, truth = read_submission(tmp_path / "pred.npz"), read_submission(tmp_path / "truth.npz")
    assert {s.shape for k, s in pred.items() if "-i_" in k} == {(10, 40)}
    assert score_sections(truth, pred) == pytest.approx(right, abs=1e-12)


@pytest.mark.parametrize(("edit", "match"), [("drop", "lacks sections"), ("transpose", "another shape")])
def test_score_sections_errors(edit, match):
    clean, noisy = _pair(7)
    truth, prediction = submission_sections("v", clean), submission_sections("v", noisy)
    key = sorted(prediction)[0]
    if edit == "drop":
        del prediction[key]
    else:
        prediction[key] = prediction[key].T
    with pytest.raises(DataError, match=match):
        score_sections(truth, prediction)


def test_the_six_section_score_is_the_whole_volume_score():
    rng = np.random.default_rng(7)
    truth = rng.normal(size=(9, 11, 40)).astype(np.float32)
    pred = (truth + rng.normal(scale=0.5, size=truth.shape)).astype(np.float32)
    ranges = [(float(v.min()), float(v.max())) for v in (truth, pred)]
    assert score_scoring_sections(truth, pred, *ranges) == score_volumes(truth, pred)
