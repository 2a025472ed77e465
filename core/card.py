"""The model card, ``model.json`` beside ``model.safetensors`` (DESIGN §4). Torch-free.

A card holds the keyword arguments of ``segmentation_models_pytorch.create_model`` under ``smp`` (so plain
smp + safetensors rebuild the network without this toolkit), the input window, the amplitude contract, the
training recipe, validation metrics and the sha256 of the weights file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from impeccable.core.errors import ModelError
from impeccable.core.geometry import WINDOW

CARD_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
ONNX_FP16_NAME = "model.fp16.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
FORMAT_VERSION = 1

#: The seed's network: UNet++ decoder on the TF-ported EfficientNetV2-S encoder, 1 channel in, sigmoid out.
DEFAULT_SMP = {
    "arch": "UnetPlusPlus",
    "encoder_name": "tu-tf_efficientnetv2_s",
    "encoder_weights": None,
    "in_channels": 1,
    "classes": 1,
    "activation": "sigmoid",
}

NORMALIZATION = {
    "kind": "minmax_per_volume",
    "formula": "(v - min(v)) / (max(v) - min(v)) over the whole noisy volume, float32",
    "nonfinite": "left out of the statistics, filled with the finite mean before normalizing",
}
PADDING = {"kind": "zeros", "where": "end of both axes", "section": "rows = traces, columns = samples"}

#: Field-ready models (v6 on): a scaling no spike can squeeze, a target the input determines, padding at the
#: data's zero level, a linear output (DESIGN §2-3; core.amplitude.Scaling).
ROBUST_NORMALIZATION = {
    "kind": "robust_per_volume",
    "formula": "clip(0.5 + 0.25 * (v - center) / spread, -1.5, 2.5); center = median of per-slice medians, "
               "spread = median over slices of the per-slice 99th percentile of |v - slice median|",
    "target": "the clean section in the noisy input's units, scaled with the input's center and spread",
    "nonfinite": "left out of the statistics, filled with the finite mean before normalizing",
}
ROBUST_PADDING = {"kind": "constant", "value": 0.5, "where": "end of both axes",
                  "section": "rows = traces, columns = samples", "why": "0.5 is the data's zero level"}
#: The removal floor of new field-ready cards (dB; core.removal_floor): chosen on v9's development lines, cases and
#: held-out synthetic volumes (benchmarks/results/2026-12-07-field-v9/); its conforming raise (session 18-19:
#: benchmarks/results/2026-12-07-coherent-floor/, 2026-12-07-guard-defaults/).
REMOVAL_FLOOR_DB = -13.0
REMOVAL_FLOOR_COHERENCE_DB = 10.0
REMOVAL_FLOOR_CONFORMITY = 0.6
#: Energy below the band taken away where it is above this many dB of the trace's (core.below_band; session 19).
BELOW_BAND_DB = -15.0
#: Field-ready models: signal that leaked into the removed part put back (core.signal_recovery), weak removal on
#: strong signal left in (core.removal_floor, cards from v9), outstanding energy below the band taken away
#: (core.below_band, cards from session 19), then no output band may hold more energy than the input's
#: (core.band_guard); core.output_guard applies them all, at the model's interval.
BAND_GUARD = {"kind": "band_energy",
              "what": "per section, the output's power spectrum along time (tapered traces, averaged over traces) "
                      "scaled down with a zero-phase gain wherever it exceeds the input's; the level left alone",
              "recover_signal": True,
              "recovery": "local signal-and-noise orthogonalization: the removed part's local least-squares weight "
                          "in [0, 1] on the output (11 traces x 41 samples; 5-trace lateral median) put back",
              "removal_floor_db": REMOVAL_FLOOR_DB,
              "removal_floor_coherence_db": REMOVAL_FLOOR_COHERENCE_DB,
              "removal_floor_conformity": REMOVAL_FLOOR_CONFORMITY,
              "removal_floor": "the removed part applied with weight rho^2 / (rho^2 + tau^2), rho its local power over "
                               "the output's (the recovery window; floored at 0.3 of the section's mean output "
                               "power), tau_dB = removal_floor_db + removal_floor_coherence_db * clip(c, 0, 1) * "
                               "exp(-((p_removed - p_output) / removal_floor_conformity)^2), c the removed part's "
                               "local lateral coherence, p structure-tensor event slopes (samples per trace)",
              "below_band_db": BELOW_BAND_DB,
              "below_band": "per trace, the part below sampling.band_hz[0] (zero-phase Butterworth, order 4, the "
                            "level left alone) taken away with weight rho^2 / (rho^2 + tau^2), rho its energy over "
                            "the rest of the trace's, tau = 10^(below_band_db / 10)",
              "where": "every step at the model's sample interval, before the removed part is resampled back"}
#: Field-ready models from v8: each section's slow amplitude trend balanced before the network, restored after.
SECTION_GAIN = {"kind": "time_trend", "window_samples": 125, "floor": 0.1,
                "what": "per section and sample: median over traces of |unit - 0.5|, Hann-smoothed over the window, "
                        "over its median in time, within [floor, 1/floor]; input (unit - 0.5) / gain + 0.5, "
                        "output restored with the same gain (core.section_gain)"}
#: The synthetic generators' sample interval and the band their wavelets fill once field-like sections are
#: stretched in time by 0.4-1.7 (the families' 5-37 Hz: 3-90 Hz).
SAMPLING = {"interval_ms": 4.0, "band_hz": [3.0, 90.0], "vertical": "time"}
SCALINGS = ("robust", "minmax")


def new_card(smp_kwargs: dict[str, Any] | None = None, input_size: tuple[int, int] = WINDOW,
             scaling: str = "minmax", **extra: Any) -> dict:
    """A fresh card for a network built from ``smp_kwargs`` (defaults: the seed's network).

    Args:
        smp_kwargs: Overrides of :data:`DEFAULT_SMP` (e.g. a tiny encoder for tests).
        input_size: ``(traces, samples)`` window, multiples of 32.
        scaling: ``minmax`` (the seed's contract: min-max input, zero padding, sigmoid output) or ``robust``
            (field-ready: robust input scaling, padding at the data's zero level, linear output, 4 ms, the band
            guard on the output).
        **extra: Further top-level fields (``training``, ``data``, ``metrics``, ``name``...).
    """
    if scaling not in SCALINGS:
        raise ModelError("unknown scaling", received=scaling, expected=" or ".join(SCALINGS), todo="pick one")
    smp = dict(DEFAULT_SMP)
    if scaling == "robust":
        smp["activation"] = None
    smp.update(smp_kwargs or {})
    rows, cols = (int(v) for v in input_size)
    if rows % 32 or cols % 32:
        raise ModelError("input size is not a multiple of 32", received=(rows, cols), expected="multiples of 32",
                         todo="choose e.g. 320x1280")
    card = {
        "format_version": FORMAT_VERSION,
        "smp": smp,
        "input_size": [rows, cols],
        "normalization": copy.deepcopy(NORMALIZATION if scaling == "minmax" else ROBUST_NORMALIZATION),
        "padding": copy.deepcopy(PADDING if scaling == "minmax" else ROBUST_PADDING),
        "output_activation": "sigmoid" if smp.get("activation") == "sigmoid" else "identity",
        "sampling": copy.deepcopy(SAMPLING),
    }
    if scaling == "robust":
        card["output_guard"] = copy.deepcopy(BAND_GUARD)
        card["section_gain"] = copy.deepcopy(SECTION_GAIN)
    card.update(extra)
    return card


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_card(model_dir: str | Path) -> dict:
    """Read and validate ``model_dir/model.json``.

    Raises:
        ModelError: The directory or card is missing, unreadable, or lacks a required field.
    """
    model_dir = Path(model_dir)
    path = model_dir / CARD_NAME
    if not model_dir.is_dir():
        raise ModelError("model directory not found", received=str(model_dir),
                         expected=f"a directory with {CARD_NAME} and {WEIGHTS_NAME}",
                         todo="pass --model with a model directory written by impeccable-train")
    if not path.is_file():
        raise ModelError("model directory has no card", received=str(model_dir), expected=f"{CARD_NAME} inside it",
                         todo="re-export or re-train the model")
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError("model card is not valid JSON", received=f"{path}: {exc}", expected="a JSON object",
                         todo="re-export or re-train the model") from exc
    missing = [k for k in ("smp", "input_size", "output_activation") if k not in card]
    if not isinstance(card, dict) or missing:
        raise ModelError("model card is incomplete", received=f"{path} lacks {missing}",
                         expected="smp, input_size, output_activation", todo="re-export or re-train the model")
    return card


def write_card(card: dict, model_dir: str | Path) -> Path:
    """Write ``card`` as ``model_dir/model.json`` (pretty-printed, sorted keys), atomically."""
    from impeccable.core.atomic import atomic_write

    path = Path(model_dir) / CARD_NAME
    with atomic_write(path, what="cannot write the model card") as out:
        out.tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def window_of(card: dict) -> tuple[int, int]:
    """The model's ``(traces, samples)`` input window from its card."""
    rows, cols = card["input_size"]
    return int(rows), int(cols)
