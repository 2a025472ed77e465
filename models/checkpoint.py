"""Model directories: save, load, and import the seed's checkpoint (DESIGN §4).

A model directory holds ``model.safetensors`` (the smp network's ``state_dict()``, keys unchanged, fp32 or
fp16) and ``model.json`` (the card). Weights are never pickled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from impeccable.core.atomic import atomic_write
from impeccable.core.card import WEIGHTS_NAME, new_card, read_card, sha256_file, write_card
from impeccable.core.errors import ModelError
from impeccable.models.builder import build_model

SEED_PREFIX = "segmentor."


def save_model_dir(model: nn.Module, card: dict, model_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write a model directory: weights as safetensors (in ``dtype``) and the card with their sha256.

    Files are written to temporary names and renamed, so a crash never leaves a half-written model.

    Args:
        model: The network (its ``state_dict()`` keys are kept unchanged).
        card: Its card; ``weights_sha256`` and ``weights_dtype`` are filled in.
        model_dir: Target directory, created if needed.
        dtype: Storage dtype of floating-point tensors (``torch.float16`` halves the file).
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to("cpu", dtype=dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in model.state_dict().items()
    }
    # The temp file is created with the umask's mode (a model directory is meant to be shared and shipped).
    with atomic_write(model_dir / WEIGHTS_NAME, what="cannot write the model weights") as out:
        save_file(state, str(out.tmp), metadata={"format": "pt"})
        card = dict(card)
        card["weights_sha256"] = sha256_file(out.tmp)
        card["weights_dtype"] = str(dtype).removeprefix("torch.")
    write_card(card, model_dir)
    return model_dir


def load_model(model_dir: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> tuple[nn.Module, dict]:
    """Load a model directory as an fp32 network in eval mode, plus its card.

    Args:
        model_dir: A directory written by :func:`save_model_dir`.
        device: Where to put the network.
        verify: Check the weights file against the card's ``weights_sha256``.

    Raises:
        ModelError: Missing or incomplete directory, checksum mismatch, or weights that do not fit the card.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    weights = model_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError("model directory has no weights", received=str(model_dir), expected=f"{WEIGHTS_NAME} inside it",
                         todo="re-train or re-import the model")
    if verify and card.get("weights_sha256") and sha256_file(weights) != card["weights_sha256"]:
        raise ModelError("weights do not match the card's sha256", received=str(weights),
                         expected=card["weights_sha256"], todo="the file is corrupt or was replaced: restore it")
    model = build_model(card)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(weights).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError("weights do not fit the network the card describes", received=str(exc).splitlines()[0],
                         expected=f"a state_dict of {card['smp']}", todo="check that model.json belongs to these weights") from exc
    return model.to(device).eval(), card


def import_seed_checkpoint(checkpoint: str | Path, model_dir: str | Path, card: dict | None = None,
                           dtype: torch.dtype = torch.float32) -> Path:
    """Convert the seed's ``torch.save``d checkpoint (e.g. ``0_EMA.pth``) into a model directory.

    The checkpoint is a state dict of a wrapper whose keys start with ``segmentor.``; it is loaded with
    ``weights_only=True`` (no arbitrary unpickling), the prefix is stripped, and the weights are written as
    safetensors with a card.

    Args:
        checkpoint: Path of the ``.pth`` file.
        model_dir: Target model directory.
        card: Card to write (default: the seed's network, 320 x 1280).
        dtype: Storage dtype.
    """
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here (pickle, zip, unsupported global)
        raise ModelError("cannot read the seed checkpoint", received=f"{checkpoint}: {exc}".splitlines()[0],
                         expected="a torch.save'd state dict (weights only)", todo="check the file") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(k.startswith(SEED_PREFIX) for k in state):
        raise ModelError("not a seed checkpoint", received=f"keys {list(state)[:3]}...",
                         expected=f"keys starting with '{SEED_PREFIX}'", todo="pass the seed's 0_EMA.pth or 0_best.pth")
    stripped = {k[len(SEED_PREFIX):]: v for k, v in state.items() if k.startswith(SEED_PREFIX)}
    card = card or new_card(name="seed-import", source={"kind": "seed checkpoint", "file": Path(checkpoint).name})
    model = build_model(card)
    try:
        model.load_state_dict(stripped)
    except RuntimeError as exc:
        raise ModelError("seed checkpoint does not fit the seed's network", received=str(exc).splitlines()[0],
                         expected=str(card["smp"]), todo="pass a card that matches the checkpoint") from exc
    return save_model_dir(model, card, model_dir, dtype=dtype)
