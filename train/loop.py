"""The training loop: the seed's recipe, resumable, on a CPU or on GPUs through accelerate.

Recipe: MSE between the sigmoid output and the clean section (each volume min-max scaled on its own),
AdamW (lr 3e-4, weight decay 1e-5), a cosine schedule after one epoch of linear warm-up (timm's
``CosineLRScheduler``, stepped per update), an EMA of the weights (timm's ``ModelEmaV3``) that is validated
and saved. bf16 autocast where the hardware runs it natively (``--precision``); ``accelerate launch -m
impeccable.train.cli ...`` spreads it over GPUs (the batch size is per process), and a plain ``impeccable-train``
runs on one device with no launcher.

Loss reduction: the seed summed the squared errors, which is the mean times ``pixels * batch``, a constant
``c`` for a run. AdamW divides the first moment by the root of the second, so a loss ``c`` times larger gives
the same updates except that ``eps`` acts as ``eps / c`` (negligible unless a parameter's gradients are
tiny); its weight decay is decoupled (``lr * wd * w``) and does not see the loss scale at all. The two
reductions therefore optimize almost identically: ``mean`` (the default) keeps the loss comparable across
crops and batch sizes, ``--loss-reduction sum`` is the seed's choice.
The logged ``loss`` is always the per-pixel MSE, whatever the reduction.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from impeccable.core.amplitude import ROBUST
from impeccable.core.atomic import atomic_write
from impeccable.core.card import new_card, window_of
from impeccable.core.model_io import ModelIO
from impeccable.core.section_gain import SectionGain
from impeccable.core.errors import DataError, InputError, ModelError, OutputError
from impeccable.core.geometry import WINDOW
from impeccable.train import dataset as ds
from impeccable.train.config import TrainConfig, write_config
from impeccable.train.losses import signal_leakage, training_loss
from impeccable.train.state import load_last, model_state, restore_rng, save_last, unflatten_optimizer
from impeccable.train.validate import validate

METRICS = "metrics.jsonl"


@dataclass
class TrainResult:
    """What a call of :func:`train` did.

    Attributes:
        run_dir: The run directory.
        step: Optimizer updates done so far (all invocations).
        epochs_done: Completed epochs.
        best_score: Best validation score (``None`` without validation volumes).
        stopped: Why it stopped before the last epoch (``"max-minutes"``, ``"signal"``), else ``None``.
        metrics: The metrics lines written by this call.
    """

    run_dir: Path
    step: int
    epochs_done: int
    best_score: float | None
    stopped: str | None = None
    metrics: list[dict] = field(default_factory=list)


def _log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------
# Model construction


def load_encoder_weights(model: nn.Module, path: Path) -> tuple[int, int]:
    """Load a local timm weights file (ImageNet classification checkpoint) into the smp encoder.

    The 3-channel stem is summed to the network's 1 channel (timm's ``adapt_input_conv``); the classifier
    head and other layers a features-only encoder lacks are ignored.

    Returns:
        ``(tensors loaded, tensors in the encoder)``.

    Raises:
        ModelError: Unreadable file, or too few tensors fit the encoder (another architecture).
    """
    from safetensors.torch import load_file
    from timm.models import adapt_input_conv

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and torch raise many types for a bad file
        raise ModelError("cannot read the encoder weights", received=f"{path}: {exc}".splitlines()[0],
                         expected="a timm .safetensors / .pth / .bin state dict",
                         todo="check --encoder-weights") from exc
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    target = getattr(getattr(model, "encoder", None), "model", None)
    if target is None:
        raise ModelError("encoder weights need a timm ('tu-') encoder", received=type(model.encoder).__name__,
                         expected="an encoder named tu-...", todo="pass --encoder tu-tf_efficientnetv2_s")
    own = target.state_dict()
    loaded = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key not in own or not isinstance(value, torch.Tensor):
            continue
        if value.ndim == 4 and own[key].ndim == 4 and value.shape[1] != own[key].shape[1]:
            value = adapt_input_conv(own[key].shape[1], value)
        if value.shape == own[key].shape:
            loaded[key] = value
    if len(loaded) < 0.5 * len(own):
        raise ModelError("encoder weights do not fit the encoder",
                         received=f"{len(loaded)} of {len(own)} tensors match",
                         expected="a timm checkpoint of the --encoder architecture", todo="check --encoder-weights")
    target.load_state_dict(loaded, strict=False)
    return len(loaded), len(own)


def _model_card(cfg: TrainConfig) -> tuple[dict, nn.Module | None, list[dict]]:
    """The run's card (architecture + window); with ``init_from``, the initial network and its lineage."""
    from impeccable.models.checkpoint import load_model

    if cfg.init_from is not None:
        init_model, init_card = load_model(cfg.init_from)
        smp_kwargs = dict(init_card["smp"])
        window = cfg.window or window_of(init_card)
        default_encoder = TrainConfig.__dataclass_fields__["encoder"].default
        if cfg.encoder not in (smp_kwargs.get("encoder_name"), default_encoder):
            raise InputError("--encoder differs from the --init-from model's", received=cfg.encoder,
                             expected=smp_kwargs.get("encoder_name"), todo="drop --encoder")
        if cfg.scaling == "robust" and smp_kwargs.get("activation") == "sigmoid":
            # A sigmoid model starts a field-ready run as its linear twin (models.builder explains).
            from impeccable.models.builder import linearize_sigmoid_head

            linearize_sigmoid_head(init_model)
            smp_kwargs["activation"] = None
        elif cfg.scaling == "minmax" and smp_kwargs.get("activation") != "sigmoid":
            raise InputError("--scaling minmax needs a sigmoid model", received=str(cfg.init_from),
                             expected="a model trained with min-max scaling", todo="pass --scaling robust")
        return (new_card(smp_kwargs, input_size=window, scaling=cfg.scaling), init_model,
                parent_lineage(init_card))
    smp_kwargs: dict[str, Any] = {"encoder_name": cfg.encoder}
    if cfg.decoder_channels is not None:
        smp_kwargs["decoder_channels"] = list(cfg.decoder_channels)
    return new_card(smp_kwargs, input_size=cfg.window or WINDOW, scaling=cfg.scaling), None, []


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm layer of a model in training mode back in eval mode (see ``TrainConfig.freeze_bn``)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def lineage_entry(training: dict, metrics: dict, run: str | None) -> dict:
    """One run of a model's lineage, summarized from its card's ``training`` and ``metrics`` sections."""
    loss = training.get("loss", {})
    return {"run": run, "init_from": training.get("init_from"),
            "loss": loss.get("name", "unknown") + (f" ({loss['ssim_weight']})" if "ssim_weight" in loss else ""),
            "lr": training.get("optimizer", {}).get("lr"), "precision": training.get("precision"),
            "steps": training.get("steps_done"), "total_steps": training.get("total_steps"),
            "kept_step": metrics.get("step"), "val_score": metrics.get("val_score"),
            "augmentation": training.get("augmentation"), "wall_time_s": training.get("wall_time_s"),
            # a self-supervised adaptation (``--adapt``): its survey (name, sha256), masks and synthetic share
            **({"adapt": training["adapt"]} if "adapt" in training else {})}


def parent_lineage(card: dict) -> list[dict]:
    """The runs, oldest first, that made a model's weights (its card's ``training.lineage``, or its one run).

    Cards written before lineages were recorded describe only their last run; that run is summarized.
    """
    training = card.get("training")
    if not training:
        return []
    if "lineage" in training:
        return [dict(e) for e in training["lineage"]]
    return [lineage_entry(training, card.get("metrics", {}), card.get("name"))]


# ---------------------------------------------------------------------------------------------------------
# Data


def _volume_set(cfg: TrainConfig, run_dir: Path, main: bool) -> tuple[ds.VolumeSet, dict]:
    """The run's volumes and the data description for the card."""
    log = _log if main else (lambda _m: None)
    if cfg.synthetic is not None:
        from impeccable.data.families import generator_name

        sources = ds.synthetic_sources(cfg.synthetic, cfg.synthetic_shape, cfg.seed, cfg.cache_dir,
                                       progress=cfg.progress and main, log=log, family=cfg.synthetic_family)
        desc = {"source": "synthetic", "family": cfg.synthetic_family,
                "generator": generator_name(cfg.synthetic_family), "shape_t_il_xl": list(cfg.synthetic_shape),
                "seeds": ds.synthetic_seeds(cfg.seed, cfg.synthetic)}
    else:
        sources = ds.challenge_sources(cfg.data, cfg.min_ssim, cfg.time_axis, log=log)
        desc = {"source": "challenge", "root": str(cfg.data), "min_ssim": cfg.min_ssim}
    stats = ds.pair_stats(sources, run_dir / "volume_stats.json", progress=cfg.progress and main)
    return ds.VolumeSet(sources, stats), desc


def _agree(accelerator: Any, *flags: bool) -> list[bool]:
    """Each flag, true on every process when it is true on any (stops and saves happen at the same step)."""
    if accelerator.num_processes == 1:
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=accelerator.device)
    return [bool(v > 0) for v in accelerator.reduce(t, reduction="sum").tolist()]


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[dict]:
    """Turn SIGTERM/SIGINT into a request to checkpoint and stop after the current step."""
    request = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, _frame: Any) -> None:
        if request["signal"] is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        request["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _accelerator(device: str, precision: str = "auto") -> tuple[Any, torch.dtype | None]:
    """The accelerate ``Accelerator`` for ``device`` and the autocast dtype (``None``: fp32).

    Autocast is applied by the loop itself, not by accelerate's ``mixed_precision``: accelerate keeps that
    setting in process-wide state and refuses a second run in the same process with another precision.
    """
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise InputError("--device cuda but no CUDA device is visible", received=f"torch {torch.__version__}",
                         expected="a CUDA build of torch and a GPU", todo="pass --device cpu")
    use_cuda = cuda and device != "cpu"
    if precision == "auto":
        precision = "bf16" if native_bf16(use_cuda) else "fp32"
    return Accelerator(cpu=not use_cuda, mixed_precision="no"), torch.bfloat16 if precision == "bf16" else None


def native_bf16(cuda: bool) -> bool:
    """Whether the training device runs bf16 convolutions natively.

    On a CPU that means AMX tiles (Sapphire Rapids and later) or AVX-512 BF16 dot products (Cooper Lake, AMD
    Zen 4 and later): there bf16 autocast halves the time of an update of the real model (batch 8 of 128x256,
    2 cores: 2.42 -> 1.23 s on a Xeon with AMX, 2.27 -> 1.21 s on an EPYC with AVX-512 BF16); without either,
    oneDNN emulates bf16 and autocast would only slow training down.
    """
    if cuda:
        return torch.cuda.is_bf16_supported()
    # Private but stable since torch 2.3; a build without them answers fp32.
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(probe is not None and probe() for probe in probes)


# ---------------------------------------------------------------------------------------------------------
# The loop


@dataclass
class _Run:
    """Everything one invocation of :func:`train` set up, and the state its epochs carry forward.

    The setup part is fixed once :func:`_setup` returns; ``step``, ``best``, ``progress``, ``stopped``,
    ``last_ckpt`` and ``written`` change as the epochs run.
    """

    cfg: TrainConfig
    run_dir: Path
    accelerator: Any
    autocast_dtype: torch.dtype | None
    main: bool
    world: int
    device: torch.device
    volumes: ds.VolumeSet
    val_idx: list[int]
    refs: list
    data_desc: dict
    card: dict
    window: tuple[int, int]
    steps_per_epoch: int
    total_steps: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: Any
    prepared_model: nn.Module
    prepared_optimizer: Any
    recipe: dict
    dataset: ds.SectionDataset
    wall_before: float
    start_time: float
    last_ckpt: float
    step: int = 0
    best: float | None = None
    progress: dict = field(default_factory=dict)
    stopped: str | None = None
    written: list[dict] = field(default_factory=list)
    #: ``(run, epoch) -> keys`` of the epoch's images [default: :func:`supervised_keys`]; another kind of run
    #: (``--adapt``) feeds other images through the same loop.
    keys_fn: Callable[[_Run, int], list] | None = None
    #: ``(run, batch) -> (loss, logged per-pixel loss)`` of one batch [default: :func:`supervised_loss`].
    loss_fn: Callable[[_Run, Any], tuple[torch.Tensor, torch.Tensor]] | None = None

    def epoch_keys(self, epoch: int) -> list:
        """Every key of one epoch (all processes'), a pure function of the seed and the epoch."""
        return (self.keys_fn or supervised_keys)(self, epoch)

    def batch_loss(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of one batch of the loader and the per-pixel loss logged for it."""
        return (self.loss_fn or supervised_loss)(self, batch)

    def wall(self) -> float:
        """Seconds of training over every invocation of the run."""
        return self.wall_before + time.perf_counter() - self.start_time

    def checkpoint(self, metrics: dict | None = None) -> None:
        """Write ``run_dir/last`` (main process only)."""
        if not self.main:
            return
        c = _card_with(self.card, self.recipe, self.step, self.wall(), metrics)
        state = {"step": self.step, "steps_per_epoch": self.steps_per_epoch, "config": self.cfg.to_dict(),
                 "data": self.data_desc, "scheduler": self.scheduler.state_dict(), "best_score": self.best,
                 "wall_s": self.wall(), "epoch_progress": self.progress}
        save_last(self.run_dir, ema_model=self.ema.module, model=self.accelerator.unwrap_model(self.prepared_model),
                  optimizer=self.optimizer, card=c, state=state)


def train(config: TrainConfig, explicit: set[str] | None = None) -> TrainResult:
    """Train (or resume) a run as ``config`` says; see the module docstring for the recipe.

    Args:
        config: The run's configuration.
        explicit: With ``config.resume``: the fields the user set explicitly (only those must match the
            saved recipe); ``None`` compares every recipe field.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ImpeccableError: Bad data, flags, model files, or a run directory in the wrong state.
    """
    run = _setup(config, explicit)
    run_epochs(run)
    return TrainResult(run.run_dir, run.step, run.step // run.steps_per_epoch, run.best, run.stopped, run.written)


def run_epochs(run: _Run) -> None:
    """Train a set-up run to its last step or to a stop (``run.stopped``), checkpointing on the way."""
    with _stop_on_signals() as stop_request:
        while run.step < run.total_steps and run.stopped is None:
            epoch = run.step // run.steps_per_epoch
            _train_epoch(run, epoch, stop_request)
            if run.stopped is not None:
                break
            _end_epoch(run, epoch, stop_request)
    if run.stopped and run.main:
        _log(f"stopped ({run.stopped}) at step {run.step} of {run.total_steps}; "
             f"continue with: impeccable-train --out {run.run_dir} --resume")
    run.accelerator.wait_for_everyone()


def _setup(config: TrainConfig, explicit: set[str] | None) -> _Run:
    """Resolve the config (resume), the data, the split, the model, optimizer, schedule and EMA (restored on
    resume), and write the run's config."""
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3

    from impeccable.models.builder import build_model

    run_dir = Path(config.out)
    resumed = None
    if config.resume:
        last, tensors, saved = load_last(run_dir)
        config = type(config).from_dict(saved["config"]).resumed_with(config, explicit)
        resumed = (last, tensors, saved)
    elif (run_dir / "last").exists() or (run_dir / METRICS).exists():
        raise OutputError("run directory already holds a run", received=str(run_dir),
                          expected="an empty or new --out folder",
                          todo="pass --resume to continue it, or another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = config

    accelerator, autocast_dtype = _accelerator(cfg.device, cfg.precision)
    main, world, device = accelerator.is_main_process, accelerator.num_processes, accelerator.device

    # The main process writes the synthetic cache and the statistics cache; the others then read them.
    with accelerator.main_process_first():
        volumes, data_desc = _volume_set(cfg, run_dir, main)
    n_val = cfg.resolved_val_volumes(len(volumes))
    train_idx, val_idx = ds.split_volumes(len(volumes), n_val, cfg.seed)
    refs = ds.section_refs(volumes, train_idx, cfg.slice_stride)
    data_desc.update({"volumes": len(volumes), "train_volumes": [volumes.ids[i] for i in train_idx],
                      "val_volumes": [volumes.ids[i] for i in val_idx], "train_sections": len(refs),
                      "slice_stride": cfg.slice_stride, "views": ["inline", "crossline"],
                      "normalization": ("input: min-max over the noisy volume; target: min-max over the clean volume"
                                        if cfg.scaling == "minmax" else "input: robust over the noisy section (jittered);"
                                        " target: the clean section in the input's units, same scaling")})
    if resumed and resumed[2]["data"]["train_volumes"] != data_desc["train_volumes"]:
        raise DataError("the data changed since the run started", received=f"{len(train_idx)} training volumes now",
                        expected=f"{len(resumed[2]['data']['train_volumes'])} as saved",
                        todo="restore the data folder, or start a new run")

    card, init_model, lineage = _model_card(cfg)
    window = window_of(card)
    crop = tuple(cfg.crop) if cfg.crop is not None else None
    if crop is not None and (crop[0] > window[0] or crop[1] > window[1]):
        raise InputError("crop larger than the window", received=f"crop {crop}, window {window}",
                         expected="crop <= window on both axes", todo="pass a smaller --crop")
    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(len(refs) / (cfg.batch_size * world)))
    total_steps = cfg.epochs * steps_per_epoch

    torch.manual_seed(cfg.seed)
    model = build_model(card)
    if init_model is not None:
        model.load_state_dict(init_model.state_dict())
    if cfg.encoder_weights is not None and resumed is None:
        got, of = load_encoder_weights(model, cfg.encoder_weights)
        if main:
            _log(f"encoder weights: {got} of {of} tensors loaded from {cfg.encoder_weights}")
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # One warm-up epoch (the seed's); a one-epoch run warms up over its first tenth instead of all of it.
    warmup = steps_per_epoch if cfg.epochs > 1 else max(1, total_steps // 10)
    scheduler = CosineLRScheduler(optimizer, t_initial=max(1, total_steps - warmup), lr_min=cfg.lr_min,
                                  warmup_t=warmup, warmup_lr_init=cfg.warmup_lr, warmup_prefix=True, t_in_epochs=False)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True)

    step, progress_state, best, wall_before = 0, {}, None, 0.0
    if resumed is not None:
        last, tensors, saved = resumed
        model.load_state_dict(model_state(tensors))
        from safetensors.torch import load_file

        ema.module.load_state_dict(load_file(last / "model.safetensors"))
        optimizer.load_state_dict(unflatten_optimizer(tensors, saved["optimizer"]))
        scheduler.load_state_dict(saved["scheduler"])
        restore_rng(tensors)
        step, best, wall_before = saved["step"], saved.get("best_score"), saved.get("wall_s", 0.0)
        epoch_progress = dict(saved.get("epoch_progress", {}))
        epoch_progress.setdefault("loss_batches", epoch_progress.get("batches", 0))  # older checkpoints
        progress_state = {**_fresh_progress(), **epoch_progress}
        if saved["steps_per_epoch"] != steps_per_epoch:
            raise DataError("steps per epoch changed since the run started", received=steps_per_epoch,
                            expected=saved["steps_per_epoch"], todo="resume with the same data and flags")
        if main:
            _log(f"resuming {run_dir} at step {step} (epoch {step // steps_per_epoch + 1})")
    scheduler.step_update(step)  # the lr of the next update

    prepared_model, prepared_optimizer = accelerator.prepare(model, optimizer)
    if main:
        write_config(cfg, run_dir / "config.json")
        _truncate_metrics(run_dir / METRICS, step // steps_per_epoch)

    card["name"] = run_dir.name
    card["data"] = data_desc
    precision = "bf16" if autocast_dtype == torch.bfloat16 else "fp32"
    recipe = _recipe(cfg, steps_per_epoch, total_steps, scheduler.warmup_t, world, precision, lineage)
    from impeccable.data.synth_field import FieldMix

    dataset = ds.SectionDataset(volumes, refs, window, crop=crop, flip=True, clean_fraction=cfg.clean_fraction,
                                scaling=cfg.scaling, field_mix=FieldMix(field_share=cfg.field_share),
                                section_gain=SectionGain.from_card(card))
    start_time = time.perf_counter()
    return _Run(cfg=cfg, run_dir=run_dir, accelerator=accelerator, autocast_dtype=autocast_dtype, main=main,
                world=world, device=device, volumes=volumes, val_idx=val_idx, refs=refs, data_desc=data_desc,
                card=card, window=window, steps_per_epoch=steps_per_epoch, total_steps=total_steps, model=model,
                optimizer=optimizer, scheduler=scheduler, ema=ema, prepared_model=prepared_model,
                prepared_optimizer=prepared_optimizer, recipe=recipe, dataset=dataset, wall_before=wall_before,
                start_time=start_time, last_ckpt=start_time, step=step, best=best, progress=progress_state)


def _train_epoch(run: _Run, epoch: int, stop_request: dict) -> None:
    """The updates of one epoch (from where a resumed run left it); sets ``run.stopped`` on a stop."""
    cfg, accelerator, device, optimizer, scheduler = run.cfg, run.accelerator, run.device, run.optimizer, run.scheduler
    steps_per_epoch, world = run.steps_per_epoch, run.world
    start_in_epoch = run.step % steps_per_epoch
    keys = run.epoch_keys(epoch)
    mine = ds.process_keys(keys, start_in_epoch, cfg.batch_size, accelerator.process_index, world)
    loader = DataLoader(run.dataset, batch_size=cfg.batch_size, sampler=mine, num_workers=cfg.workers,
                        pin_memory=device.type == "cuda")
    if start_in_epoch == 0:
        run.progress = _fresh_progress()
    bar = tqdm(total=steps_per_epoch, initial=start_in_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               unit="step", disable=not (cfg.progress and run.main), dynamic_ncols=True, file=sys.stderr)
    run.prepared_model.train()
    if cfg.frozen_bn:
        freeze_batchnorm(run.prepared_model)
    tick = last_post = time.perf_counter()
    pending: list[torch.Tensor] = []

    def flush() -> None:
        # Losses stay on the device until shown or saved: a host sync per step would stall a GPU.
        if pending:
            total = torch.stack(pending).sum()
            if world > 1:
                total = accelerator.reduce(total, reduction="mean")
            run.progress["loss_sum"] += float(total)
            run.progress["loss_batches"] += len(pending)
            pending.clear()

    for batch in loader:
        loss, mse = run.batch_loss(batch)
        accelerator.backward(loss)
        run.prepared_optimizer.step()
        run.prepared_optimizer.zero_grad(set_to_none=True)
        run.step += 1
        scheduler.step_update(run.step)
        run.ema.update(accelerator.unwrap_model(run.prepared_model), step=run.step)

        pending.append(mse)
        now = time.perf_counter()
        run.progress["batches"] += 1
        run.progress["seconds"] += now - tick
        tick = now
        bar.update(1)
        end_of_epoch = run.step % steps_per_epoch == 0
        if now - last_post >= 1.0 or end_of_epoch:
            flush()
            last_post = now
            rate = run.progress["batches"] * cfg.batch_size * world / max(run.progress["seconds"], 1e-9)
            bar.set_postfix(loss=f"{run.progress['loss_sum'] / max(run.progress['loss_batches'], 1):.4g}",
                            sec_s=f"{rate:.2f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        if end_of_epoch:
            break
        if world > 1 and run.step % 10:
            continue  # processes compare their clocks every 10 updates only
        out_of_time = cfg.max_minutes is not None and now - run.start_time >= 60 * cfg.max_minutes
        stop, save = _agree(accelerator, out_of_time or stop_request["signal"] is not None,
                            now - run.last_ckpt >= 60 * cfg.checkpoint_every)
        if stop:
            run.stopped = "signal" if stop_request["signal"] else "max-minutes"
            flush()
            run.checkpoint()
            break
        if save:
            flush()
            run.checkpoint()
            run.last_ckpt = time.perf_counter()
            tick += run.last_ckpt - now  # checkpoint time is not training time
    flush()
    bar.close()


def supervised_keys(run: _Run, epoch: int) -> list[tuple[int, int]]:
    """The ``(section, augmentation seed)`` keys of a supervised epoch (:func:`~impeccable.train.dataset.epoch_keys`)."""
    return ds.epoch_keys(len(run.refs), run.steps_per_epoch, run.cfg.batch_size * run.world, run.cfg.seed, epoch)


def forward(run: _Run, x: torch.Tensor) -> torch.Tensor:
    """The network's prediction of a batch on the run's device, under the run's autocast (bf16 or none)."""
    with torch.autocast(run.device.type, dtype=run.autocast_dtype or torch.float32,
                        enabled=run.autocast_dtype is not None):
        return run.prepared_model(x)


def supervised_loss(run: _Run, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The configured loss (:func:`~impeccable.train.losses.training_loss`) of a batch of ``(noisy, clean)``."""
    x, y = batch
    x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
    pred = forward(run, x)
    loss, mse = training_loss(pred, y, run.cfg.loss, run.cfg.loss_reduction, run.cfg.ssim_weight)
    if run.cfg.leak_weight:
        scale = y.numel() if run.cfg.loss_reduction == "sum" else 1
        loss = loss + run.cfg.leak_weight * scale * signal_leakage(pred, x, y, ROBUST.pad_value)
    return loss, mse


def _end_epoch(run: _Run, epoch: int, stop_request: dict) -> None:
    """End of an epoch: validate the EMA, log, keep the best, checkpoint; sets ``run.stopped`` on a stop."""
    cfg, world = run.cfg, run.world
    line = {"epoch": epoch + 1, "step": run.step,
            "loss": run.progress["loss_sum"] / max(run.progress["loss_batches"], 1),
            "lr": run.optimizer.param_groups[0]["lr"],
            "sections_per_s": run.progress["batches"] * cfg.batch_size * world
            / max(run.progress["seconds"], 1e-9),
            "epoch_train_s": run.progress["seconds"]}
    if run.main:
        t0 = time.perf_counter()
        scores = validate(run.ema.module, run.volumes, run.val_idx, run.window, cfg.batch_size, cfg.val_tta,
                          run.device, run.autocast_dtype, scaling=cfg.scaling,
                          io=ModelIO.from_card(run.card)) if run.val_idx else {}
        line.update({k: v for k, v in scores.items() if k != "volumes"})
        if scores:
            line["val_volumes"] = scores["volumes"]
        line["val_s"] = time.perf_counter() - t0
        line["wall_s"] = run.wall()
        improved = not run.val_idx or run.best is None or line["val_score"] > run.best
        if improved:
            run.best = line.get("val_score")
            metrics = {k: line[k] for k in ("epoch", "step", "val_score", "val_noisy_score", "val_loss", "loss")
                       if k in line}
            from impeccable.models.checkpoint import save_model_dir

            save_model_dir(run.ema.module, _card_with(run.card, run.recipe, run.step, run.wall(), metrics), run.run_dir)
        line["best"] = improved
        with open(run.run_dir / METRICS, "a") as fh:
            fh.write(json.dumps(line) + "\n")
        run.written.append(line)
        _log(_summary(line))
        run.progress = _fresh_progress()
        run.checkpoint({k: line[k] for k in ("epoch", "step", "val_score", "val_noisy_score", "val_loss", "loss")
                        if k in line})
        run.last_ckpt = time.perf_counter()
    run.accelerator.wait_for_everyone()
    run.progress = _fresh_progress()
    out_of_time = cfg.max_minutes is not None and time.perf_counter() - run.start_time >= 60 * cfg.max_minutes
    if run.step < run.total_steps and _agree(run.accelerator, out_of_time or stop_request["signal"] is not None)[0]:
        run.stopped = "signal" if stop_request["signal"] else "max-minutes"


def _fresh_progress() -> dict:
    """Running sums of an epoch (saved in mid-epoch checkpoints so its metrics line covers all of it)."""
    return {"loss_sum": 0.0, "loss_batches": 0, "batches": 0, "seconds": 0.0}


def _recipe(cfg: TrainConfig, steps_per_epoch: int, total_steps: int, warmup_steps: int, world: int,
            precision: str, lineage: list[dict]) -> dict:
    """The card's ``training`` section: how the weights were made (``lineage``: the runs before this one)."""
    import segmentation_models_pytorch as smp
    import timm

    return {
        "loss": {"name": cfg.loss, "reduction": cfg.loss_reduction, "on": "sigmoid output vs min-max scaled clean",
                 **({"ssim_weight": cfg.ssim_weight, "ssim": "torchmetrics, uniform 7x7, data range 1"}
                    if cfg.loss == "mse+ssim" else {}),
                 **({"leak_weight": cfg.leak_weight, "leak": "local power of the clean signal in the removed part, "
                     "signal-recovery window (train.losses.signal_leakage)"} if cfg.leak_weight else {})},
        "optimizer": {"name": "AdamW", "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        "schedule": {"name": "cosine (timm CosineLRScheduler, per update)", "warmup_steps": warmup_steps,
                     "warmup_lr": cfg.warmup_lr, "lr_min": cfg.lr_min},
        "ema": {"impl": "timm ModelEmaV3", "decay": cfg.ema_decay, "warmup": True, "saved": True},
        "epochs": cfg.epochs, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "batch_size_per_process": cfg.batch_size, "processes": world, "crop": list(cfg.crop) if cfg.crop else None,
        "augmentation": ["trace-axis flip"] + ([f"clean section as input, p={cfg.clean_fraction:g}"]
                                                if cfg.clean_fraction else [])
        + ([f"field-like traits (data.synth_field), p={cfg.field_share:g}", "random section size",
            "robust-scale jitter"] if cfg.scaling == "robust" else []), "precision": precision, "seed": cfg.seed,
        "init_from": str(cfg.init_from) if cfg.init_from else None,
        "batchnorm": "frozen (eval mode)" if cfg.frozen_bn else "trained",
        "encoder_weights": Path(cfg.encoder_weights).name if cfg.encoder_weights else None,
        "validation": {"volumes": "held out by volume", "sections": "the challenge's six per volume",
                       "tta": cfg.val_tta,
                       "uint8_range": "min/max over each volume's six sections (truth, noisy, prediction alike)"},
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "smp": smp.__version__},
        "lineage": lineage,
    }


def _card_with(card: dict, recipe: dict, step: int, wall_s: float, metrics: dict | None) -> dict:
    c = dict(card)
    training = {**recipe, "steps_done": step, "epochs_done": step // recipe["steps_per_epoch"],
                "wall_time_s": round(wall_s, 1)}
    # The lineage ends with this run, so a model trained on from another says how all its steps were made.
    training["lineage"] = recipe["lineage"] + [lineage_entry(training, metrics or {}, card.get("name"))]
    c["training"] = training
    c["metrics"] = metrics or {}
    return c


def _summary(line: dict) -> str:
    parts = [f"epoch {line['epoch']}", f"step {line['step']}", f"loss {line['loss']:.5f}"]
    if "val_score" in line:
        parts += [f"val {line['val_score']:.4f} (noisy {line['val_noisy_score']:.4f})"]
    parts += [f"{line['sections_per_s']:.2f} sections/s", f"lr {line['lr']:.2e}"]
    return " | ".join(parts) + (" | best" if line.get("best") else "")


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metrics lines of epochs the checkpoint does not include (a crash between log and checkpoint)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epochs_done]
    if len(keep) != len(lines):
        with atomic_write(path) as f:  # a crash mid-rewrite must not lose the run's metrics
            f.tmp.write_text("".join(ln + "\n" for ln in keep))


def read_metrics(run_dir: Path) -> list[dict]:
    """The run's metrics lines."""
    path = Path(run_dir) / METRICS
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


__all__ = ["TrainResult", "forward", "lineage_entry", "load_encoder_weights", "parent_lineage", "read_metrics",
           "run_epochs", "supervised_keys", "supervised_loss", "train"]
