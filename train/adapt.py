"""``impeccable-train --adapt SURVEY``: self-supervised fine-tuning on the user's own noisy survey.

A model trained on synthetic pairs meets noise on a real survey that no generator foresaw, and the survey has
no clean labels. Adaptation fine-tunes the model (``--init-from``, default the shipped one) on the noisy survey
itself with blind-spot / blind-trace masks (:mod:`impeccable.train.masks`): each survey image's input is a
masked crop of a survey section, its target the unmasked crop, and the loss counts the hidden samples (plus a
small weight on the visible traces under blind-trace). Supervised synthetic pairs ride in every batch
(``--synthetic-share``), so the model keeps what it knows (Birnie & Alkhalifah 2022: pre-train supervised on
synthetics, fine-tune self-supervised on the field data).

The run IS a training run of :mod:`impeccable.train.loop`: the same set-up (model from ``--init-from``, AdamW,
cosine schedule, EMA, bf16 autocast where native, accelerate), the same resumable checkpoint
(:mod:`impeccable.train.state`), progress bar, synthetic validation and model directory with its card
lineage; only the images of a batch (:class:`AdaptDataset`, keys from :func:`adapt_keys`) and their loss
(:func:`adapt_loss`) differ. One epoch of ``--steps`` updates. A run stopped by ``--max-minutes`` still writes
its model directory (the EMA weights so far) and the QC; ``--resume`` continues to ``--steps``.

Survey sections are read, normalized and padded exactly as ``impeccable-denoise`` does
(:class:`impeccable.train.survey.SurveyFeed`). A block of the survey is held out (``--holdout``) and, after
training, denoised by the start model and the adapted one; their field QC figures
(:mod:`impeccable.train.adapt_qc`) go to ``adapt_qc.json`` beside the model and to the terminal.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from impeccable.core.card import read_card
from impeccable.train import dataset as ds
from impeccable.train import loop
from impeccable.train.adapt_config import AdaptConfig
from impeccable.train.losses import ssim_index
from impeccable.train.masks import apply_mask
from impeccable.train.state import STATE_JSON, last_dir, load_last
from impeccable.train.survey import Survey, SurveyFeed

QC_NAME = "adapt_qc.json"


def synthetic_count(batch: int, share: float) -> int:
    """Synthetic images per batch: ``round(share * batch)``, at least 1 when ``share > 0``, at most ``batch - 1``."""
    if share <= 0:
        return 0
    return int(min(batch - 1, max(1, round(share * batch))))


@dataclass
class AdaptResult:
    """What a call of :func:`adapt` did.

    Attributes:
        run_dir: The run directory (the adapted model at its top level).
        step: Updates done (all invocations).
        stopped: ``"max-minutes"`` or ``"signal"`` when it stopped before ``--steps``, else ``None``.
        qc: The before/after QC (``None`` without held-out sections, or after a signal).
    """

    run_dir: Path
    step: int
    stopped: str | None
    qc: dict | None


class AdaptDataset(Dataset):
    """The images of an adaptation batch; a key ``(kind, number, augmentation seed)`` fixes everything random.

    ``kind`` 0: the supervised synthetic image ``number`` of the trainer's :class:`~impeccable.train.dataset.
    SectionDataset` (weights: the mean over every pixel, as the supervised MSE). ``kind`` 1: a crop of survey
    piece ``number``, normalized by :class:`~impeccable.train.survey.SurveyFeed`, placed in the window like
    a training section (:func:`~impeccable.train.dataset.place_in_window`: random window-sized part, flip,
    padding, crop), masked.

    Returns ``(input, target, weights, kind)``: three ``(1, rows, cols)`` float32 tensors and an int64 scalar.
    """

    def __init__(self, synthetic: ds.SectionDataset, survey: Survey, feed: SurveyFeed, cfg: AdaptConfig,
                 crop: tuple[int, int] | None):
        self.synthetic, self.survey, self.feed, self.cfg, self.crop = synthetic, survey, feed, cfg, crop

    def __len__(self) -> int:
        return len(self.survey.pieces)

    def survey_image(self, number: int, aug_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(masked input, target, weights)`` of one survey image, each ``(rows, cols)`` float32."""
        cfg = self.cfg
        unit = self.feed.training_unit(self.survey.piece(self.survey.pieces[number]), self.survey.stats)
        rng = np.random.default_rng(aug_seed)
        # Placed with NaN padding, so the data's extent is known; the padding then takes the card's value.
        image, _ = ds.place_in_window(unit, unit, self.feed.window, rng, flip=True, crop=self.crop,
                                      pad_value=np.nan)
        image = image[0]
        valid = np.isfinite(image)
        image[~valid] = self.feed.pad_value
        extent = (int(valid[:, 0].sum()), int(valid[0].sum()))  # the data sit at the top-left corner
        masked, weights, _ = apply_mask(image, extent, cfg.mask, cfg.mask_share, cfg.mask_radius,
                                        cfg.unmasked_weight, rng, cfg.trace_fill)
        return masked, image, weights

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, ...]:
        kind, number, aug_seed = key
        if kind == 0:
            x, y = self.synthetic[(number, aug_seed)]
            return x, y, torch.full_like(y, 1.0 / y.numel()), torch.tensor(0)
        masked, target, weights = self.survey_image(number, aug_seed)
        return (torch.from_numpy(masked[None]), torch.from_numpy(target[None]), torch.from_numpy(weights[None]),
                torch.tensor(1))


def adapt_keys(run: Any, epoch: int) -> list[tuple[int, int, int]]:
    """The keys of an adaptation epoch: per process batch, the synthetic images first, then the survey's.

    Synthetic sections are drawn uniformly, survey pieces in proportion to their traces, each image with its
    own augmentation seed: a pure function of the seed and the epoch, so a resumed run sees the same batches.
    """
    cfg = run.cfg
    rng = np.random.default_rng([cfg.seed, epoch, 0xADA7])
    batch, blocks = cfg.batch_size, run.steps_per_epoch * run.world
    n_syn = synthetic_count(batch, cfg.synthetic_share)
    pieces = run.dataset.survey.pieces
    traces = np.array([p.traces for p in pieces], dtype=np.float64)
    syn = rng.integers(0, max(len(run.refs), 1), size=(blocks, n_syn))
    sur = rng.choice(len(pieces), size=(blocks, batch - n_syn), p=traces / traces.sum())
    seeds = rng.integers(0, 2**63 - 1, size=(blocks, batch), dtype=np.int64)
    keys = []
    for b in range(blocks):
        keys += [(0, int(syn[b, j]), int(seeds[b, j])) for j in range(n_syn)]
        keys += [(1, int(sur[b, j]), int(seeds[b, n_syn + j])) for j in range(batch - n_syn)]
    return keys


def adapt_loss(run: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the batch's images of each image's weighted squared error (hidden samples, or every pixel of a
    synthetic pair); with ``--loss mse+ssim`` the synthetic images also carry the SSIM term."""
    x, y, w, _kind = (t.to(run.device, non_blocking=True) for t in batch)
    pred = loop.forward(run, x).float()
    loss = (((pred - y) ** 2) * w).sum(dim=(1, 2, 3)).mean()
    n_syn = synthetic_count(run.cfg.batch_size, run.cfg.synthetic_share)  # the first n_syn of every batch
    if run.cfg.loss == "mse+ssim" and n_syn:
        loss = loss + run.cfg.ssim_weight * (1.0 - ssim_index(pred[:n_syn], y[:n_syn])) * n_syn / x.shape[0]
    return loss, loss.detach()


def saved_state(run_dir: Path) -> dict | None:
    """The trainer state of a run directory's checkpoint, or ``None``."""
    d = last_dir(Path(run_dir))
    return json.loads((d / STATE_JSON).read_text()) if d is not None else None


def is_adapt_run(run_dir: Path) -> bool:
    """Whether a run directory holds an adaptation run (so ``--resume`` without ``--adapt`` continues it)."""
    state = saved_state(run_dir)
    return bool(state and state.get("config", {}).get("adapt"))


def _effective(config: AdaptConfig, explicit: set[str] | None) -> tuple[AdaptConfig, dict | None]:
    """The config the run will use (a resumed run's saved one with this call's runtime fields) and the saved state."""
    if not config.resume:
        return config, None
    state = saved_state(config.out)
    if state is None:
        load_last(config.out)  # raises the trainer's "nothing to resume"
    return AdaptConfig.from_dict(state["config"]).resumed_with(config, explicit), state


def with_coherence_raise(card: dict, raise_db: float) -> dict:
    """The card with its removal floor's coherence raise set to ``raise_db`` (the adapted model's, and the start
    model's for the before/after QC, so that the QC shows what adaptation changed, not the raise); unchanged when
    ``raise_db`` is 0 or the card has no removal floor (min-max start models)."""
    guard = card.get("output_guard") or {}
    if not raise_db or guard.get("removal_floor_db") is None:
        return card
    return {**card, "output_guard": {**guard, "removal_floor_coherence_db": float(raise_db)}}


def adapt(config: AdaptConfig, explicit: set[str] | None = None) -> AdaptResult:
    """Adapt a model to a survey as ``config`` says (or resume such a run); see the module docstring.

    Args:
        config: The run's configuration.
        explicit: With ``config.resume``: the fields the user set explicitly (only those must match).

    Returns:
        An :class:`AdaptResult`.

    Raises:
        ImpeccableError: An unreadable survey (before any training), bad flags, model files, or a run
            directory in the wrong state.
    """
    effective, state = _effective(config, explicit)
    survey = effective.open_survey()
    described = survey.describe()
    if state is not None and "survey" in state.get("data", {}):
        survey.check_unchanged(described, state["data"]["survey"])
    init_card = read_card(effective.init_from)

    run = loop._setup(config, explicit)
    cfg: AdaptConfig = run.cfg
    init_card = with_coherence_raise(init_card, cfg.removal_floor_coherence)
    run.card = with_coherence_raise(run.card, cfg.removal_floor_coherence)
    # The adapted model is trained on sections fed as its own card says the runtime will feed them (the
    # trainer made that card: --scaling, the start model's window).
    feed = SurveyFeed(run.card, survey.interval_ms)
    run.data_desc["survey"] = described
    run.card["data"] = run.data_desc
    n_syn = synthetic_count(cfg.batch_size, cfg.synthetic_share)
    run.recipe["adapt"] = {
        "survey": {"name": described["name"], "sha256": described["sha256"]},
        "mask": cfg.mask, "mask_share": cfg.mask_share, "mask_radius": cfg.mask_radius,
        "unmasked_weight": cfg.unmasked_weight if cfg.mask != "blind-spot" else None,
        "trace_fill": cfg.trace_fill if cfg.mask != "blind-spot" else None,
        "synthetic_share": n_syn / cfg.batch_size, "synthetic_images_per_batch": n_syn,
        "holdout": cfg.holdout, "steps": run.total_steps,
        "target": "the unmasked survey crop, fed as impeccable-denoise feeds it; loss on the hidden samples",
    }
    run.recipe["loss"] = {**run.recipe["loss"], "on": "survey images: hidden samples (masks); synthetic images: "
                          + run.recipe["loss"]["on"]}
    crop = tuple(cfg.crop) if cfg.crop is not None else None
    run.dataset = AdaptDataset(run.dataset, survey, feed, cfg, crop)
    run.keys_fn, run.loss_fn = adapt_keys, adapt_loss
    if run.main:
        loop._log(f"adapting {effective.init_from} to {described['name']} (sha256 {described['sha256'][:12]}): "
                  f"{len(survey.pieces)} training pieces, {len(survey.held_out)} held out; {cfg.mask} masks "
                  f"({cfg.mask_share:g}), {n_syn} of {cfg.batch_size} images synthetic, {run.total_steps} steps")

    loop.run_epochs(run)
    qc = None
    if run.main and run.stopped != "signal":
        if run.stopped is not None:  # --max-minutes: the model so far is usable; --resume continues it
            from impeccable.models.checkpoint import save_model_dir

            save_model_dir(run.ema.module, loop._card_with(run.card, run.recipe, run.step, run.wall(),
                                                           {"step": run.step}), run.run_dir)
        if survey.held_out:
            from impeccable.models.checkpoint import load_model
            from impeccable.train.adapt_qc import before_after, print_qc, write_qc

            start_model, _ = load_model(effective.init_from, device=run.device)
            adapted, _ = load_model(run.run_dir, device=run.device)
            qc = before_after(survey, {"start": (start_model, SurveyFeed(init_card, survey.interval_ms)),
                                       "adapted": (adapted, feed)},
                              cfg.qc_sections, run.device, run.autocast_dtype, cfg.batch_size, str(effective.init_from))
            write_qc(qc, run.run_dir / QC_NAME)
            print_qc(qc, file=sys.stderr)
    survey.close()
    run.accelerator.wait_for_everyone()
    return AdaptResult(run.run_dir, run.step, run.stopped, qc)


__all__ = ["AdaptConfig", "AdaptDataset", "AdaptResult", "QC_NAME", "adapt", "adapt_keys", "adapt_loss",
           "is_adapt_run", "synthetic_count", "with_coherence_raise"]
