"""Blind-spot and blind-trace masks hide what they claim, and a network that copies its input gains nothing."""

from __future__ import annotations

import numpy as np
import pytest

from impeccable.train.masks import apply_mask, blind_spot, blind_trace, loss_weights


def _unique(shape: tuple[int, int]) -> np.ndarray:
    """An image whose every sample differs (so a value says where it came from)."""
    return np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)


def _where(image: np.ndarray, value: float) -> tuple[int, int]:
    r, c = np.argwhere(image == value)[0]
    return int(r), int(c)


@pytest.mark.parametrize("valid", [(32, 64), (20, 50), (1, 64), (32, 1)])
def test_blind_spot_replaces_each_hidden_sample_by_another_within_the_radius(valid):
    image = _unique((32, 64))
    rng = np.random.default_rng(1)
    masked, hidden = blind_spot(image, valid, share=0.05, radius=3, rng=rng)
    assert hidden.sum() == max(1, round(0.05 * valid[0] * valid[1]))
    assert not hidden[valid[0]:].any() and not hidden[:, valid[1]:].any()  # the padding is never hidden
    np.testing.assert_array_equal(masked[~hidden], image[~hidden])  # nothing else changes
    for r, c in np.argwhere(hidden):
        assert masked[r, c] != image[r, c]  # no trace of the original value
        sr, sc = _where(image, masked[r, c])
        assert (sr, sc) != (r, c) and abs(sr - r) <= 3 and abs(sc - c) <= 3
        assert sr < valid[0] and sc < valid[1]  # a data sample, never padding


@pytest.mark.parametrize("fill", ["neighbour", "noise"])
def test_blind_trace_hides_whole_traces(fill):
    image = _unique((40, 64))
    valid = (30, 50)
    masked, hidden = blind_trace(image, valid, share=0.1, radius=2, rng=np.random.default_rng(2), fill=fill)
    rows = np.flatnonzero(hidden.any(axis=1))
    assert rows.size == 3 and (rows < 30).all()
    assert hidden[rows][:, :50].all() and not hidden[:, 50:].any()  # whole traces, padding untouched
    np.testing.assert_array_equal(masked[~hidden], image[~hidden])
    for r in rows:
        assert not np.isin(image[r, :50], masked[r, :50]).any()  # none of the trace's own values remain
        if fill == "neighbour":
            source, _ = _where(image, masked[r, 0])
            assert source != r and abs(source - r) <= 2
            np.testing.assert_array_equal(masked[r, :50], image[source, :50])


def test_loss_weights_average_the_hidden_and_the_visible_parts():
    hidden = np.zeros((8, 16), dtype=bool)
    hidden[2] = True
    w = loss_weights(hidden, (6, 16), unmasked_weight=0.1)
    assert w[hidden].sum() == pytest.approx(1.0)
    assert w[~hidden].sum() == pytest.approx(0.1)
    assert not w[6:].any()  # padding weighs nothing
    assert loss_weights(hidden, (6, 16))[~hidden].sum() == 0


@pytest.mark.parametrize("scheme", ["blind-spot", "blind-trace"])
def test_a_network_that_copies_its_input_gets_no_credit(scheme):
    """On signal + white noise, copying the masked input scores worse than the clean signal on the scored samples,
    and no better than predicting nothing at all where it matters: the hidden samples."""
    rng = np.random.default_rng(3)
    t = np.arange(256)
    clean = np.tile(np.sin(2 * np.pi * t / 40.0), (64, 1)).astype(np.float32)
    losses = {"copy": [], "clean": [], "copy_hidden": [], "zero_hidden": []}
    for seed in range(20):
        noisy = clean + rng.standard_normal(clean.shape).astype(np.float32)
        masked, w, used = apply_mask(noisy, noisy.shape, scheme, 0.05, 4, 0.05, np.random.default_rng(seed))
        assert used == scheme
        hidden = w == w.max()

        def loss(pred):
            return float((w * (pred - noisy) ** 2).sum())

        losses["copy"].append(loss(masked))
        losses["clean"].append(loss(clean))
        losses["copy_hidden"].append(float(((masked - noisy)[hidden] ** 2).mean()))
        losses["zero_hidden"].append(float(((clean - noisy)[hidden] ** 2).mean()))
    mean = {k: np.mean(v) for k, v in losses.items()}
    assert mean["clean"] < 0.7 * mean["copy"]
    # copying a neighbour carries the neighbour's noise on top of the hidden sample's own: about twice the error
    assert mean["copy_hidden"] > 1.6 * mean["zero_hidden"]


def test_both_draws_each_scheme():
    image = _unique((16, 32))
    used = {apply_mask(image, image.shape, "both", 0.1, 2, 0.0, np.random.default_rng(s))[2] for s in range(20)}
    assert used == {"blind-spot", "blind-trace"}


def test_masks_are_a_function_of_the_seed():
    image = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    a = apply_mask(image, (30, 60), "both", 0.02, 5, 0.05, np.random.default_rng(7))
    b = apply_mask(image, (30, 60), "both", 0.02, 5, 0.05, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
