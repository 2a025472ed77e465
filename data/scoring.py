"""The Image Impeccable challenge score, exactly as the official starter code computes it.

A submission is a dict of uint8 sections keyed ``<id>_gt.npy-i_<n>`` (``vol[i, :, :]``) and
``<id>_gt.npy-x_<n>`` (``vol[:, x, :]``), where ``<n>`` is the position 0/1/2 of the section taken at
25/50/75 % of the axis (as the official starter names them, not the slice index), on both horizontal axes of a volume in
``(inline, crossline, sample)`` order (each section ``(crossline|inline, sample)``, e.g. ``(300, 1259)``).
Each volume is min-max scaled to 0..255 and cast with a truncating ``astype(uint8)`` first. The score is
skimage SSIM (``data_range=255``, 7x7 uniform window) per section, the minimum and maximum over all
sections dropped, and the mean of the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from skimage.metrics import structural_similarity

from impeccable.core.amplitude import to_uint8
from impeccable.core.errors import DataError

FRACTIONS = (0.25, 0.5, 0.75)


def to_uint8_volume(volume: np.ndarray) -> np.ndarray:
    """Per-volume min-max to 0..255 then truncating ``astype(uint8)`` (the starter's ``rescale_volume``).

    The one uint8 scaling of the toolkit, :func:`impeccable.core.amplitude.to_uint8`, with the volume's extremes.
    """
    vol = np.asarray(volume, dtype=np.float64)
    return to_uint8(vol, float(vol.min()), float(vol.max()))


def section_indices(n: int) -> list[int]:
    """The starter's section positions on an axis of length ``n``: ``int(f * n)`` for f in 25/50/75 %."""
    return [int(f * n) for f in FRACTIONS]


def submission_sections(volume_id: str, volume: np.ndarray) -> dict[str, np.ndarray]:
    """The six uint8 scoring sections of one volume, keyed as the challenge's npz.

    Args:
        volume_id: The volume's id (``<id>`` in the keys).
        volume: ``(inline, crossline, sample)`` volume, any real dtype. A time-first volume must be moved
            with ``np.moveaxis(v, 0, -1)`` first: slicing it directly would score time slices.
    """
    if volume.ndim != 3:
        raise DataError("volume is not 3-D", received=volume.shape, expected="(inline, crossline, sample)")
    vol8 = to_uint8_volume(volume)
    out = {}
    for n, i in enumerate(section_indices(vol8.shape[0])):
        out[f"{volume_id}_gt.npy-i_{n}"] = vol8[i, :, :]
    for n, x in enumerate(section_indices(vol8.shape[1])):
        out[f"{volume_id}_gt.npy-x_{n}"] = vol8[:, x, :]
    return out


def section_ssim(truth: np.ndarray, prediction: np.ndarray) -> float:
    """skimage SSIM of two uint8 sections with ``data_range=255`` (the challenge's per-section score)."""
    return float(structural_similarity(truth, prediction, data_range=255))


def score_sections(truth: Mapping[str, np.ndarray], prediction: Mapping[str, np.ndarray]) -> float:
    """The challenge score of a prediction submission against the truth submission.

    Args:
        truth: Key -> uint8 section, as :func:`submission_sections` makes from the clean volumes.
        prediction: The same keys for the predicted volumes.

    Raises:
        DataError: Keys differ or a section's shape differs.
    """
    missing = sorted(set(truth) - set(prediction))
    if missing:
        raise DataError("prediction lacks sections of the truth", received=f"{len(missing)} missing, e.g. {missing[0]}",
                        expected=f"all {len(truth)} keys", todo="write every volume of the truth file")
    scores = []
    for key in sorted(truth):
        t, p = np.asarray(truth[key]), np.asarray(prediction[key])
        if t.shape != p.shape:
            raise DataError(f"section {key} has another shape", received=p.shape, expected=t.shape,
                            todo="check the volume's orientation")
        scores.append(section_ssim(t, p))
    return trimmed_mean(scores)


def trimmed_mean(scores: Iterable[float]) -> float:
    """Mean after dropping the single minimum and maximum (all of them when fewer than three)."""
    ordered = sorted(scores)
    if len(ordered) >= 3:
        ordered = ordered[1:-1]
    return float(np.mean(ordered))


def score_scoring_sections(truth: np.ndarray, prediction: np.ndarray, truth_range: tuple[float, float],
                           prediction_range: tuple[float, float]) -> float:
    """The challenge score of two volumes, casting only their six scoring sections to uint8.

    The same number as :func:`score_volumes` when the ranges are each volume's min and max, without a whole
    float64 / uint8 copy of either volume (memory-mapped and synthetic volumes are scored in bounded memory).

    Args:
        truth: ``(inline, crossline, sample)`` volume, any real dtype (array-like: a memmap reads six sections).
        prediction: The same shape.
        truth_range: ``(min, max)`` of the whole truth volume.
        prediction_range: ``(min, max)`` of the whole prediction volume.
    """
    scores = []
    for axis in (0, 1):
        for n in section_indices(truth.shape[axis]):
            scores.append(section_ssim(to_uint8(np.take(truth, n, axis=axis), *truth_range),
                                       to_uint8(np.take(prediction, n, axis=axis), *prediction_range)))
    return trimmed_mean(scores)


def score_volumes(truth: np.ndarray, prediction: np.ndarray, volume_id: str = "vol") -> float:
    """Challenge score of one predicted volume against its clean volume, both ``(inline, crossline, sample)``."""
    return score_sections(submission_sections(volume_id, truth), submission_sections(volume_id, prediction))
