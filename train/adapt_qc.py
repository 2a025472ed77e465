"""Before/after QC of an adaptation on the survey's held-out sections (never trained on).

The held-out sections are denoised by the start model and by the adapted one exactly as ``impeccable-denoise``
does, each model fed as its own card says (:class:`~impeccable.train.survey.SurveyFeed`: scaling, resampling,
padding or tiling, flip TTA, and the way back to the survey's units), and each run's removed part
``r = input - output`` is described by a few field QC figures (:func:`field_figures`):

- ``removed_energy``: ``sum r^2 / sum (x - mean x)^2``, the share of the input's energy taken out.
- ``low_frequency_ratio``: the output's energy below :data:`LOW_HZ` over the input's (a denoiser must not add
  low frequencies; issue 25's bar is 1.1).
- ``removed_lateral_coherence``: the correlation of neighbouring traces of the removed part, pooled
  (``sum r_i . r_i+1 / sqrt(sum r_i^2 sum r_i+1^2)``): about 0 for removed random noise, near the input's own
  lateral coherence when reflections were removed.
- ``coherent_removed_energy``: the same lag-one products over the input's (``sum r_i . r_i+1 / sum dx_i .
  dx_i+1``-style normalization by the input's energy): the share of the input's energy that was removed AND
  is laterally coherent, i.e. signal-like. The run warns when the adapted model's exceeds the start's by more
  than :data:`COHERENT_WARN`.
- ``leakage``: mean absolute local similarity of the removed part and the output
  (:func:`impeccable.core.qc.local_similarity`, Chen & Fomel 2015).
- ``removed_from_denoised``: what each model takes from the start model's own output, fed back to it as a
  stand-in for the clean survey (share of its energy). A survey has no clean data, and the figures above, taken
  on the noisy sections, cannot see a model that has learned to take more from the signal itself: an adaptation
  to strong erratic traces (``benchmarks/results/2026-12-07-adapt-penobscot-v9-erratic-cpu.md``) kept every figure
  above sound (leakage even fell) while it removed 11.4 % of the clean stack instead of 4.8 %. The run warns when
  the adapted model's exceeds the start's by more than :data:`DENOISED_WARN`.

These few figures are computed here until the field QC functions of issue 25 land in :mod:`impeccable.core`
(then this module should call them).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from impeccable.core.amplitude import VolumeStats
from impeccable.core.atomic import atomic_write
from impeccable.core.qc import local_similarity
from impeccable.train.survey import Survey, SurveyFeed
from impeccable.train.validate import torch_runner

#: Upper edge of the "low frequencies" band, Hz.
LOW_HZ = 8.0
#: Sample interval assumed when the survey's reader does not report one, ms.
DEFAULT_INTERVAL_MS = 4.0
#: Warn when the adapted model's coherent removed energy exceeds the start model's by more than this share of
#: the input's energy.
COHERENT_WARN = 0.01
#: Warn when the adapted model takes more than this share of the start model's output more than the start does.
DENOISED_WARN = 0.02


def _lag_one(a: np.ndarray, b: np.ndarray) -> float:
    """``sum a_i . b_i+1`` over neighbouring traces of ``(n, traces, samples)`` stacks (float64)."""
    return float(np.einsum("nts,nts->", a[:, :-1].astype(np.float64), b[:, 1:].astype(np.float64)))


def field_figures(inputs: np.ndarray, output: np.ndarray, interval_ms: float) -> dict:
    """The QC figures of one run on sections (see the module docstring).

    Args:
        inputs: ``(n, traces, samples)`` float32 sections in the survey's units.
        output: The denoised sections, same shape and units.
        interval_ms: Sample interval, ms.

    Returns:
        ``removed_energy``, ``low_frequency_ratio``, ``removed_lateral_coherence``, ``coherent_removed_energy``,
        ``input_lateral_coherence``, ``leakage``.
    """
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(output, dtype=np.float64)
    mean = float(x.mean())
    dx, dy, r = x - mean, y - mean, x - y
    energy = float((dx * dx).sum())
    freqs = np.fft.rfftfreq(x.shape[-1], d=interval_ms / 1000.0)
    low = freqs < LOW_HZ
    e_in = float((np.abs(np.fft.rfft(dx, axis=-1))[..., low] ** 2).sum())
    e_out = float((np.abs(np.fft.rfft(dy, axis=-1))[..., low] ** 2).sum())
    rr = math.sqrt(float((r[:, :-1] ** 2).sum()) * float((r[:, 1:] ** 2).sum()))
    xx = math.sqrt(float((dx[:, :-1] ** 2).sum()) * float((dx[:, 1:] ** 2).sum()))
    sims = []
    for k in range(x.shape[0]):
        sim, defined = local_similarity(r[k], dy[k])
        if defined.any():
            sims.append(np.abs(sim[defined]))
    return {
        "removed_energy": float((r * r).sum()) / energy if energy > 0 else 0.0,
        "low_frequency_ratio": e_out / e_in if e_in > 0 else 1.0,
        "removed_lateral_coherence": _lag_one(r, r) / rr if rr > 0 else 0.0,
        "coherent_removed_energy": _lag_one(r, r) / xx if xx > 0 else 0.0,
        "input_lateral_coherence": _lag_one(dx, dx) / xx if xx > 0 else 0.0,
        "leakage": float(np.concatenate(sims).mean()) if sims else 0.0,
    }


def denoise(feed: SurveyFeed, model: nn.Module, raw: np.ndarray, stats: VolumeStats, device: torch.device,
            autocast_dtype: torch.dtype | None, batch: int) -> np.ndarray:
    """Sections ``(n, traces, samples)`` denoised as ``impeccable-denoise`` does (the model's card's feeding,
    flip TTA), back in the survey's units (float32)."""
    model.eval()
    unit = feed.predict(torch_runner(model, device, autocast_dtype), raw, stats, tta=True, batch=batch)
    return feed.to_units(raw, unit, stats)


def before_after(survey: Survey, models: dict[str, tuple[nn.Module, SurveyFeed]], max_sections: int,
                 device: torch.device, autocast_dtype: torch.dtype | None, batch: int, start_name: str) -> dict:
    """QC figures of the start and adapted models on (up to ``max_sections`` evenly spaced) held-out pieces.

    Args:
        survey: The survey.
        models: ``{"start": (network, its feed), "adapted": (network, its feed)}`` (each fed as its card says).
        max_sections: Held-out pieces denoised, at most.
        device: Where the networks run.
        autocast_dtype: bf16 or None.
        batch: Images per forward pass.
        start_name: The start model (for the report).

    Returns:
        ``{"survey", "held_out", "interval_ms", "start", "adapted", "warnings"}`` (JSON-ready).
    """
    pieces = survey.held_out
    if len(pieces) > max_sections:
        pieces = [pieces[int(round(i))] for i in np.linspace(0, len(pieces) - 1, max_sections)]
    raw = np.stack([survey.piece(p) for p in pieces])
    interval = survey.interval_ms or DEFAULT_INTERVAL_MS
    outputs = {name: denoise(feed, model, raw, survey.stats, device, autocast_dtype, batch)
               for name, (model, feed) in models.items()}
    figures = {name: field_figures(raw, out, interval) for name, out in outputs.items()}
    proxy = outputs["start"]  # the start's output: the nearest thing to the clean survey the run has
    for name, (model, feed) in models.items():
        again = denoise(feed, model, proxy, survey.stats, device, autocast_dtype, batch)
        figures[name]["removed_from_denoised"] = field_figures(proxy, again, interval)["removed_energy"]
    s, a = figures["start"], figures["adapted"]
    warnings = qc_warnings(s, a)
    return {"survey": survey.path.name, "start_model": start_name,
            "held_out": {"pieces": [p.as_dict() for p in pieces], "block": survey.block,
                         "note": "never in a training image"},
            "interval_ms": interval, "interval_assumed": survey.interval_ms is None,
            "start": s, "adapted": a, "warnings": warnings}


def qc_warnings(start: dict, adapted: dict) -> list[str]:
    """What the run warns about, from the start and adapted models' figures (:func:`field_figures` plus
    ``removed_from_denoised``)."""
    s, a = start, adapted
    warnings = []
    if a["removed_from_denoised"] > s["removed_from_denoised"] + DENOISED_WARN:
        warnings.append(f"the adapted model takes more from already denoised sections than the start model: "
                        f"{a['removed_from_denoised']:.3f} vs {s['removed_from_denoised']:.3f} of their energy (it "
                        "may remove signal from quiet, clean parts of the survey); compare the two models on a clean "
                        "stretch before using it (fewer --steps or a larger --synthetic-share)")
    if a["coherent_removed_energy"] > s["coherent_removed_energy"] + COHERENT_WARN:
        warnings.append(f"the adapted model removes more laterally coherent (signal-like) energy than the start "
                        f"model: {a['coherent_removed_energy']:.3f} vs {s['coherent_removed_energy']:.3f} of the "
                        "input's energy; look at the removed section before using it (fewer --steps, a larger "
                        "--synthetic-share, or --mask blind-spot)")
    if a["low_frequency_ratio"] > 1.1:
        warnings.append(f"the adapted model's output holds {a['low_frequency_ratio']:.2f}x the input's energy below "
                        f"{LOW_HZ:g} Hz")
    return warnings


def write_qc(qc: dict, path: Any) -> None:
    """Write the QC as JSON (``adapt_qc.json`` beside the model)."""
    with atomic_write(path, what="cannot write the adaptation QC") as out:
        out.tmp.write_text(json.dumps(qc, indent=2) + "\n")


ROWS = (("removed energy (share of the input's)", "removed_energy"),
        (f"output / input energy below {LOW_HZ:g} Hz", "low_frequency_ratio"),
        ("lateral coherence of the removed part", "removed_lateral_coherence"),
        ("coherent removed energy (signal-like)", "coherent_removed_energy"),
        ("leakage (local similarity)", "leakage"),
        ("removed from the start's output", "removed_from_denoised"))


def print_qc(qc: dict, file: TextIO = sys.stdout) -> None:
    """The QC as a few lines: each figure, start -> adapted, then the warnings."""
    n = len(qc["held_out"]["pieces"])
    assumed = " (assumed)" if qc["interval_assumed"] else ""
    print(f"QC on {n} held-out section(s) of {qc['survey']} (never trained on), {qc['interval_ms']:g} ms"
          f"{assumed}: start -> adapted", file=file)
    for label, key in ROWS:
        print(f"  {label:<40} {qc['start'][key]:8.4f} -> {qc['adapted'][key]:8.4f}", file=file)
    for warning in qc["warnings"]:
        print(f"Warning: {warning}", file=file)


__all__ = ["COHERENT_WARN", "DENOISED_WARN", "LOW_HZ", "before_after", "denoise", "field_figures", "print_qc",
           "qc_warnings", "write_qc"]
