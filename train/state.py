"""The resumable checkpoint ``RUN_DIR/last/``: a model directory plus the trainer's state, never pickled.

``last/model.safetensors`` + ``last/model.json`` are the EMA weights as a normal model directory (usable
by every other stage). ``last/trainer_state.safetensors`` holds the tensors needed to continue exactly
(the raw, non-EMA weights, the optimizer's moments, the torch RNG states); ``last/trainer_state.json`` holds
the scalars (step, epoch progress, scheduler state, optimizer hyper-parameters, best score, config).
The folder is written beside the old one and swapped in, so an interrupted save keeps the previous
checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from impeccable.core.errors import DataError
from impeccable.models.checkpoint import save_model_dir

LAST = "last"
STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-ready rest."""
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:  # AdamW checks that betas is a tuple
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_last(run_dir: Path, *, ema_model: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
              card: dict, state: dict[str, Any]) -> Path:
    """Write ``run_dir/last`` (EMA model directory + trainer state), replacing the previous one safely.

    Args:
        run_dir: The run directory.
        ema_model: The EMA network (becomes ``last/model.safetensors``).
        model: The trained (raw) network.
        optimizer: The optimizer (its state is saved).
        card: Card of the EMA model directory.
        state: JSON-ready trainer scalars (step, progress, scheduler, config...).
    """
    run_dir = Path(run_dir)
    final, tmp, old = run_dir / LAST, run_dir / f"{LAST}.tmp", run_dir / f"{LAST}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_dir(ema_model, card, tmp)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = flatten_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, tmp / STATE_TENSORS)
    (tmp / STATE_JSON).write_text(json.dumps({**state, "optimizer": optim_meta}, indent=1, sort_keys=True) + "\n")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def last_dir(run_dir: Path) -> Path | None:
    """The checkpoint folder to resume from (``last``, or ``last.old`` when a save was cut mid-swap)."""
    for name in (LAST, f"{LAST}.old"):
        d = Path(run_dir) / name
        if (d / STATE_JSON).is_file() and (d / STATE_TENSORS).is_file():
            return d
    return None


def load_last(run_dir: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """Read the checkpoint: ``(folder, tensors, scalars)``.

    Raises:
        DataError: No checkpoint in ``run_dir``.
    """
    d = last_dir(run_dir)
    if d is None:
        raise DataError("nothing to resume", received=f"{run_dir} has no {LAST}/{STATE_JSON}",
                        expected="a run directory written by impeccable-train",
                        todo="drop --resume to start a new run, or check --out")
    return d, load_file(d / STATE_TENSORS), json.loads((d / STATE_JSON).read_text())


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    """Put back the torch RNG states saved by :func:`save_last`."""
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The raw network's state dict inside the checkpoint tensors."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
