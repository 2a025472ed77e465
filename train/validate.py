"""Validation with the challenge's formula on held-out volumes.

Denoising whole validation volumes every epoch would cost more than training on a CPU, so only the six
sections the challenge scores (25/50/75 % of both horizontal axes) are predicted, through the full inference
pipeline: per-volume min-max, then :mod:`impeccable.core.tiling`, the runtime's own tiling, blending and flip
TTA, so a section larger than the window is scored as ``impeccable-denoise`` predicts it. They are scored
exactly as :func:`impeccable.data.scoring.score_sections` scores a submission, with one approximation: the
uint8 scaling of every section, truth, noisy and prediction alike, takes its min/max over the volume's six
sections instead of over the whole volume (only six sections of the prediction exist). The three must share the
convention: with the truth and the noisy input on their whole volume's range and the prediction on its six
sections', a prediction equal to the truth scored below 1, and the field-ready models' output (in the input's
units, whose extremes need not sit in the six sections) was charged for the difference. Measured on v11's
validation volume syn-0003 (family b, light noise): whole volumes through the runtime, 0.9357 -> 0.9387; the
mixed convention said 0.936 -> 0.905 (made worse), the shared one says 0.920 -> 0.921; syn-0001: the mixed
0.933 -> 0.947, the shared 0.938 -> 0.947 (``benchmarks/results/2026-12-07-field-v11-full/``). The exported
model's real score comes from ``impeccable-denoise`` + ``impeccable-score`` on whole volumes.

Before the runtime's tiling was used here, sections larger than the window were tiled half-overlapping and
averaged plainly. Measured with the shipped model on two held-out synthetic pairs (seeds 900001, 900002): for
(8, 128, 1259) volumes, whose sections fit the window, the score is unchanged (0.931732); for (8, 400, 1259),
whose inline sections take two tiles, it moved from 0.914199 to 0.914463 without TTA and from 0.915077 to
0.915351 with flip TTA (+0.0003 each), the score of what ``impeccable-denoise`` returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from impeccable.core import tiling
from impeccable.core.amplitude import ROBUST, to_uint8
from impeccable.core.model_io import ModelIO
from impeccable.core.output_guard import OutputGuard
from impeccable.core.section_gain import SectionGain
from impeccable.data.scoring import score_sections, section_indices
from impeccable.data.synth_field import in_input_units
from impeccable.train.dataset import CROSSLINE, INLINE, VolumeSet


def torch_runner(model: nn.Module, device: torch.device | str = "cpu",
                 autocast_dtype: torch.dtype | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A network as the ``run_batch`` of :func:`impeccable.core.tiling.predict_sections`: numpy in, numpy out.

    Args:
        model: Network in eval mode, ``(N, 1, rows, cols)`` -> same, values in ``[0, 1]``.
        device: Where the network runs.
        autocast_dtype: e.g. ``torch.bfloat16`` on CUDA; ``None`` runs in float32.

    Returns:
        ``float32[N, 1, rows, cols] -> float32[N, 1, rows, cols]``, gradients off.
    """
    device = torch.device(device)

    @torch.no_grad()
    def run_batch(images: np.ndarray) -> np.ndarray:
        ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with ctx:
            pred = model(torch.from_numpy(np.ascontiguousarray(images)).to(device))
        return pred.float().cpu().numpy()

    return run_batch


def predict_sections(model: nn.Module, sections: np.ndarray, window: tuple[int, int], batch_size: int = 8,
                     tta: bool = False, device: torch.device | str = "cpu",
                     autocast_dtype: torch.dtype | None = None, pad_value: float = 0.0,
                     guard: OutputGuard | None = None, gain: SectionGain | None = None) -> np.ndarray:
    """Denoise normalized sections with a network exactly as the runtime does (:mod:`impeccable.core.tiling`).

    Args:
        model: Network in eval mode, ``(N, 1, rows, cols)`` -> same, values in ``[0, 1]``.
        sections: ``(n, traces, samples)`` float32 in ``[0, 1]``.
        window: ``(rows, cols)`` model window; sections are zero-padded at the end to it (larger ones are
            tiled with the runtime's overlap and blended with its ramps).
        batch_size: Images per forward pass (tiles and, with TTA, their mirrored copies).
        tta: Also predict the trace-mirrored sections and average (flip TTA).
        device: Where the network runs.
        autocast_dtype: e.g. ``torch.bfloat16`` on CUDA; ``None`` runs in float32.
        pad_value: The card's padding (:class:`impeccable.core.model_io.ModelIO`).
        guard: The card's output guard (:mod:`impeccable.core.output_guard`), or None.
        gain: The card's section gain (:mod:`impeccable.core.section_gain`), or None.

    Returns:
        ``(n, traces, samples)`` float32 predictions in ``[0, 1]``.
    """
    return tiling.predict_sections(sections, torch_runner(model, device, autocast_dtype), window, tta, batch_size,
                                   pad_value=pad_value, guard=guard, gain=gain)


def scoring_positions(shape: Sequence[int]) -> list[tuple[int, int]]:
    """The challenge's six sections of a ``(inline, crossline, sample)`` shape as ``(axis, index)`` pairs."""
    return [(INLINE, i) for i in section_indices(shape[0])] + [(CROSSLINE, x) for x in section_indices(shape[1])]


def section_key(volume_id: str, axis: int, index: int) -> str:
    """The challenge's key of a section (``<id>_gt.npy-i_<n>`` / ``<id>_gt.npy-x_<n>``)."""
    return f"{volume_id}_gt.npy-{'i' if axis == INLINE else 'x'}_{index}"


def validate(model: nn.Module, volumes: VolumeSet, indices: Sequence[int], window: tuple[int, int],
             batch_size: int = 8, tta: bool = False, device: torch.device | str = "cpu",
             autocast_dtype: torch.dtype | None = None, scaling: str = "minmax", io: ModelIO | None = None) -> dict:
    """Challenge score of the model (and of the noisy input, the baseline) on the validation volumes.

    Args:
        model: Network in eval mode (the EMA weights).
        volumes: The volume set.
        indices: Validation volume indices.
        window: Model window.
        batch_size: Windows per forward pass.
        tta: Flip TTA.
        device: Where the network runs.
        autocast_dtype: Mixed precision dtype, or ``None``.
        scaling: The model's (card) scaling: ``minmax`` or ``robust`` (inputs scaled with the noisy volume's
            robust figures, padded at 0.5; the loss's target is the clean section in the input's units).
        io: The model card's contract; its output guard and section gain are applied as the runtime applies
            them. None: the band guard alone for ``robust`` (cards before the output guard), nothing for ``minmax``.

    Returns:
        ``val_score`` and ``val_noisy_score`` (trimmed mean over all validation sections, as the
        challenge scores a submission), ``val_loss`` (MSE of the normalized sections, padding excluded),
        and ``volumes``: per-volume ``score`` and ``noisy_score`` (each volume's own six sections).
    """
    if io is not None:
        guard, gain = io.output_guard or None, io.section_gain
    else:
        guard, gain = (OutputGuard(band_energy=True) if scaling == "robust" else None), None
    truth, pred, noisy = {}, {}, {}
    per_volume, sq_err, count = {}, 0.0, 0
    for i in indices:
        vid = volumes.ids[i]
        n_stats, _ = volumes.stats[i]
        positions = scoring_positions(volumes.shapes[i])
        units, raws = [], []
        for axis, index in positions:
            raw = volumes.section(i, axis, index, normalized=False)
            raws.append(raw)
            if scaling == "robust":
                clean_u, _ = in_input_units(np.nan_to_num(raw[0]), np.nan_to_num(raw[1]))
                units.append((ROBUST.normalize(raw[0], n_stats), _unclipped(clean_u, n_stats)))
            else:
                units.append(volumes.section(i, axis, index, normalized=True))
        v_pred, v_truth, v_noisy = {}, {}, {}
        # Inline and crossline sections differ in length: predict each axis as its own stack.
        for axis in (INLINE, CROSSLINE):
            picks = [k for k, (a, _) in enumerate(positions) if a == axis]
            stack = np.stack([units[k][0] for k in picks])
            p = predict_sections(model, stack, window, batch_size, tta, device, autocast_dtype,
                                 pad_value=ROBUST.pad_value if scaling == "robust" else 0.0, guard=guard, gain=gain)
            for j, k in enumerate(picks):
                key = section_key(vid, *positions[k])
                v_pred[key] = p[j]
                clean_unit = units[k][1]
                sq_err += float(np.sum((p[j] - clean_unit) ** 2))
                count += clean_unit.size
                raw_noisy, raw_clean = raws[k]
                v_truth[key], v_noisy[key] = np.nan_to_num(raw_clean), np.nan_to_num(raw_noisy)
        v_truth, v_noisy, v_pred = (_to_uint8_sections(v) for v in (v_truth, v_noisy, v_pred))
        per_volume[vid] = {"score": score_sections(v_truth, v_pred), "noisy_score": score_sections(v_truth, v_noisy)}
        truth.update(v_truth), pred.update(v_pred), noisy.update(v_noisy)
    if not indices:
        return {}
    return {"val_score": score_sections(truth, pred), "val_noisy_score": score_sections(truth, noisy),
            "val_loss": sq_err / max(count, 1), "volumes": per_volume}


def _to_uint8_sections(sections: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A volume's sections to uint8 on their shared min/max (the module docstring says why not the volume's)."""
    lo = min(float(v.min()) for v in sections.values())
    hi = max(float(v.max()) for v in sections.values())
    return {key: to_uint8(v, lo, hi) for key, v in sections.items()}


def _unclipped(block: np.ndarray, stats) -> np.ndarray:
    """A block in robust units without the input's clipping (a target)."""
    offset, gain = ROBUST.affine(stats)
    return ((block - np.float32(offset)) * np.float32(gain) + np.float32(0.5)).astype(np.float32)


__all__ = ["predict_sections", "scoring_positions", "section_key", "torch_runner", "validate"]
