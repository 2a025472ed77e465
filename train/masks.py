"""Blind-spot and blind-trace masks for self-supervised training on noisy data alone (``--adapt``).

A network trained to reproduce its noisy input learns the identity. Hide some samples from it (replace them in
the input) and score it only there, and the best it can do is predict each hidden sample from its neighbours:
the part of the sample its neighbours determine, which is the signal when the noise is independent from the
neighbourhood (Krull et al. 2019, Noise2Void; Batson & Royer 2019, Noise2Self). Two schemes:

- **blind-spot** (Noise2Void's "uniform pixel manipulation"): a share of the image's samples, each replaced by
  the original value of a random other sample within ``radius`` traces and samples of it. The loss counts the
  hidden samples only. It removes noise that is independent from sample to sample (random noise), and cannot
  remove noise that is coherent across the neighbourhood (a noisy trace, ringing, linear noise): the
  neighbours predict that noise as well as they predict the signal.
- **blind-trace** (Liu, Birnie & Alkhalifah 2023, Geophysics 88(2)): whole traces hidden, each replaced by a
  random neighbouring trace within ``radius`` traces (``neighbour``) or by Gaussian noise of the image's mean
  and spread (``noise``). The loss counts the hidden traces, plus ``unmasked_weight`` times the mean error on
  the traces left in place (semi-blind-trace: a small pull towards the input on the visible traces keeps
  signal from leaking into the removed part). Noise that is coherent along a trace but not across traces
  (erratic traces, trace-wise bursts) cannot be predicted from the neighbouring traces, so it is removed.

Each function takes one training image (``(rows, cols)`` = traces x samples) whose data fill the
``valid = (rows, cols)`` rectangle at its top-left corner (the rest is the window's padding, never hidden
and never scored) and a numpy generator, so the mask is a pure function of the image's augmentation seed.
The replaced values always come from the ORIGINAL image: the masked input holds, at each hidden position, a
value that is not that position's own.
"""

from __future__ import annotations

import numpy as np

MASKS = ("blind-spot", "blind-trace", "both")
TRACE_FILLS = ("neighbour", "noise")


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Indices reflected into ``[0, size)`` about the edges (``-1 -> 1``, ``size -> size - 2``), then clipped."""
    index = np.where(index < 0, -index, index)
    index = np.where(index >= size, 2 * (size - 1) - index, index)
    return np.clip(index, 0, size - 1)


def _other(index: np.ndarray, source: np.ndarray, size: int) -> np.ndarray:
    """``source``, with entries equal to ``index`` moved one step (a reflection that landed back home)."""
    same = source == index
    return np.where(same, np.where(index + 1 < size, index + 1, index - 1), source)


def blind_spot(image: np.ndarray, valid: tuple[int, int], share: float, radius: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hide a share of the samples, each replaced by a random other sample's original value within ``radius``.

    Args:
        image: ``(rows, cols)`` float32 (traces x samples).
        valid: ``(rows, cols)`` of the data at the top-left corner (at least 2 samples).
        share: Share of the valid samples hidden (at least one).
        radius: Largest trace and sample offset of the replacing neighbour (>= 1).
        rng: Source of the positions and offsets.

    Returns:
        ``(masked, hidden)``: the masked image (float32, same shape) and the bool ``(rows, cols)`` of the hidden
        samples.
    """
    vr, vc = valid
    count = max(1, int(round(share * vr * vc)))
    flat = rng.choice(vr * vc, size=min(count, vr * vc), replace=False)
    rows, cols = np.divmod(flat, vc)
    dr = rng.integers(-radius, radius + 1, size=rows.size)
    dc = rng.integers(-radius, radius + 1, size=rows.size)
    still = (dr == 0) & (dc == 0)
    while still.any():  # the sample itself is never its own replacement
        dr[still] = rng.integers(-radius, radius + 1, size=int(still.sum()))
        dc[still] = rng.integers(-radius, radius + 1, size=int(still.sum()))
        still = (dr == 0) & (dc == 0)
    src_r, src_c = _reflect(rows + dr, vr), _reflect(cols + dc, vc)
    home = (src_r == rows) & (src_c == cols)
    if home.any():  # reflected back onto itself (a one-trace or one-sample image): step along the longer axis
        if vc > 1:
            src_c = np.where(home, _other(cols, src_c, vc), src_c)
        else:
            src_r = np.where(home, _other(rows, src_r, vr), src_r)
    masked = np.array(image, dtype=np.float32, copy=True)
    masked[rows, cols] = image[src_r, src_c]  # the right side is read before any write: original values
    hidden = np.zeros(image.shape, dtype=bool)
    hidden[rows, cols] = True
    return masked, hidden


def blind_trace(image: np.ndarray, valid: tuple[int, int], share: float, radius: int, rng: np.random.Generator,
                fill: str = "neighbour") -> tuple[np.ndarray, np.ndarray]:
    """Hide a share of the traces (rows), each replaced by a neighbouring trace or by noise.

    Args:
        image: ``(rows, cols)`` float32 (traces x samples).
        valid: ``(rows, cols)`` of the data at the top-left corner (``neighbour`` needs at least 2 traces).
        share: Share of the valid traces hidden (at least one).
        radius: Largest trace offset of the replacing neighbour (>= 1).
        rng: Source of the traces, offsets and noise.
        fill: ``neighbour`` (a random other trace within ``radius``, original values) or ``noise`` (Gaussian,
            the valid samples' mean and standard deviation).

    Returns:
        ``(masked, hidden)`` as :func:`blind_spot`; ``hidden`` covers the hidden traces' valid samples.
    """
    if fill not in TRACE_FILLS:
        raise ValueError(f"unknown trace fill {fill!r}; expected one of {', '.join(TRACE_FILLS)}")
    vr, vc = valid
    count = max(1, int(round(share * vr)))
    rows = rng.choice(vr, size=min(count, vr), replace=False)
    masked = np.array(image, dtype=np.float32, copy=True)
    if fill == "neighbour" and vr > 1:
        offset = rng.integers(1, radius + 1, size=rows.size) * rng.choice(np.array([-1, 1]), size=rows.size)
        source = _other(rows, _reflect(rows + offset, vr), vr)
        masked[rows, :vc] = image[source, :vc]
    else:
        data = np.asarray(image[:vr, :vc], dtype=np.float64)
        masked[rows, :vc] = rng.normal(data.mean(), data.std(), size=(rows.size, vc)).astype(np.float32)
    hidden = np.zeros(image.shape, dtype=bool)
    hidden[rows, :vc] = True
    return masked, hidden


def loss_weights(hidden: np.ndarray, valid: tuple[int, int], unmasked_weight: float = 0.0) -> np.ndarray:
    """Per-sample loss weights: the hidden samples' mean plus ``unmasked_weight`` times the visible ones' mean.

    ``sum(weights * (prediction - target) ** 2)`` is then ``mean over hidden + unmasked_weight * mean over the
    other valid samples`` (padding weighs nothing), whatever the share hidden.

    Returns:
        float32 ``hidden.shape``.
    """
    weights = np.zeros(hidden.shape, dtype=np.float32)
    weights[hidden] = 1.0 / max(int(hidden.sum()), 1)
    if unmasked_weight > 0:
        visible = np.zeros(hidden.shape, dtype=bool)
        visible[:valid[0], :valid[1]] = True
        visible &= ~hidden
        if visible.any():
            weights[visible] = unmasked_weight / int(visible.sum())
    return weights


def apply_mask(image: np.ndarray, valid: tuple[int, int], scheme: str, share: float, radius: int,
               unmasked_weight: float, rng: np.random.Generator, fill: str = "neighbour"
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """One training image's masked input and loss weights under a scheme of :data:`MASKS`.

    ``both`` draws blind-spot or blind-trace for each image with even odds. ``unmasked_weight`` applies to
    blind-trace only (blind-spot scores its hidden samples only, as Noise2Void does).

    Returns:
        ``(masked, weights, scheme used)``: float32 images of ``image.shape``.
    """
    if scheme not in MASKS:
        raise ValueError(f"unknown mask {scheme!r}; expected one of {', '.join(MASKS)}")
    if scheme == "both":
        scheme = MASKS[int(rng.integers(0, 2))]
    if scheme == "blind-spot":
        masked, hidden = blind_spot(image, valid, share, radius, rng)
        return masked, loss_weights(hidden, valid), scheme
    masked, hidden = blind_trace(image, valid, share, radius, rng, fill)
    return masked, loss_weights(hidden, valid, unmasked_weight), scheme


__all__ = ["MASKS", "TRACE_FILLS", "apply_mask", "blind_spot", "blind_trace", "loss_weights"]
