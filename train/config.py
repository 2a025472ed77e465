"""The training stage's configuration: one frozen dataclass, ``None`` meaning "the default", resolved here.

Fields split into the *recipe* (what the run learns from and how: fixed once a run has started, so that
``--resume`` continues the same optimization) and the *runtime* (where and how long it runs: free to change
on every resume).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impeccable.core.atomic import atomic_write
from impeccable.core.errors import InputError
from impeccable.core.geometry import WINDOW
from impeccable.train.losses import LOSSES

SEED_ENCODER = "tu-tf_efficientnetv2_s"
LOSS_REDUCTIONS = ("mean", "sum")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
SYNTHETIC_FAMILIES = ("a", "b", "mix")  # impeccable.data.families.FAMILIES (config stays import-light)

#: Fields a resumed run may change; every other field belongs to the recipe.
RUNTIME_FIELDS = frozenset({"out", "resume", "device", "precision", "workers", "max_minutes", "checkpoint_every",
                            "progress"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``impeccable-train`` needs; the CLI maps its flags onto these fields.

    Attributes:
        out: Run directory (best model at the top level, ``last/``, ``metrics.jsonl``).
        data: Challenge-layout directory of noisy/clean pairs (exclusive with ``synthetic``).
        synthetic: Number of synthetic volumes to generate (exclusive with ``data``).
        synthetic_shape: ``(T, IL, XL)`` of each synthetic volume (stored canonically as ``(IL, XL, T)``).
        synthetic_dir: Cache of the synthetic volumes; ``None``: ``out/synthetic``.
        synthetic_family: Generator of the synthetic volumes: ``a``, ``b`` or ``mix`` (a for even volumes, b for
            odd; :mod:`impeccable.data.families`).
        min_ssim: Skip challenge pairs whose noisy-vs-clean SSIM is below this (the seed used 0.7).
        time_axis: Stored time axis of challenge files (``"auto"``, ``"0"`` or ``"2"``).
        epochs: Epochs of the cosine schedule (the seed trained 100).
        steps_per_epoch: Optimizer updates per epoch; ``None``: one pass over the training sections.
        batch_size: Sections per update and per process (the global batch is this times the process count).
        crop: ``(rows, cols)`` random crop of the padded window, multiples of 32; ``None``: the full window.
        slice_stride: Every k-th inline and crossline section (the seed took 1 in 5).
        lr: Peak learning rate of AdamW.
        lr_min: Learning rate at the end of the cosine.
        warmup_lr: Learning rate at step 0 of the one-epoch linear warm-up.
        weight_decay: AdamW weight decay.
        loss_reduction: ``"mean"`` (default) or ``"sum"`` (the seed's) reduction of the MSE.
        loss: ``"mse"`` (the seed's) or ``"mse+ssim"`` (adds ``ssim_weight * (1 - SSIM)``, see ``train.losses``).
        ssim_weight: Weight of the SSIM term of ``"mse+ssim"``.
        leak_weight: Weight of the signal-leakage term (``train.losses.signal_leakage``: the power of the clean
            signal in the removed part), added to either loss; field-ready (``robust``) runs only. 0: off.
        ema_decay: Upper bound of the EMA decay (timm ``ModelEmaV3`` with its warm-up ramp).
        clean_fraction: Share of training images whose input is the clean section itself (target unchanged): it
            teaches the network to leave noise-free data alone (the clean-in bar of DESIGN §3). 0 keeps the
            sample stream of older runs exactly.
        scaling: ``robust`` (field-ready, the default: robust input scaling, the target in the input's units,
            padding at the data's zero level, linear output, field-like traits drawn per section) or ``minmax``
            (the seed's contract, models up to v5).
        field_share: With ``robust``: share of sections given field-like traits (mutes, stretch, erratic and
            coherent noise, gains; :mod:`impeccable.data.synth_field`).
        freeze_bn: Keep every BatchNorm layer in eval mode while training (running statistics and batch
            normalization frozen; their affine weights still learn). ``None``: frozen when fine-tuning
            (``init_from``): a few sections per batch give batch statistics far from the ones the model was
            trained with (a field-ready fine-tune of a min-max model saw its outputs jump to -32).
        val_volumes: Held-out validation volumes; ``None``: 10 % of the volumes (at least 1 when there are 2+).
        val_tta: Flip TTA during validation (twice the cost).
        encoder: smp encoder name (``tu-test_resnet`` for smoke runs).
        encoder_weights: Local timm weights file for the encoder; ``None``: from scratch.
        decoder_channels: UNet++ decoder widths; ``None``: smp's default.
        window: ``(traces, samples)`` model input window; ``None``: 320 x 1280 (or the init model's).
        init_from: Model directory whose weights (and architecture) start the run.
        seed: Seed of the split, the section order, the augmentations and the weights' initialization.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        precision: ``"bf16"`` autocast (weights, optimizer and loss stay fp32), ``"fp32"``, or ``"auto"``: bf16
            where the hardware runs it natively (a bf16-capable GPU; a CPU with AMX tiles or AVX-512 BF16, where it
            halves the time of an update), else fp32.
        workers: DataLoader worker processes (0 = load in the training process).
        max_minutes: Stop cleanly, with a checkpoint, after this many minutes of this invocation.
        checkpoint_every: Minutes between mid-epoch checkpoints (epoch ends always checkpoint).
        resume: Continue from ``out/last``.
        progress: Show tqdm bars.
    """

    out: Path
    data: Path | None = None
    synthetic: int | None = None
    synthetic_shape: tuple[int, int, int] = (1259, 128, 128)
    synthetic_dir: Path | None = None
    synthetic_family: str = "a"
    min_ssim: float | None = None
    time_axis: str = "auto"
    epochs: int = 100
    steps_per_epoch: int | None = None
    batch_size: int = 8
    crop: tuple[int, int] | None = None
    slice_stride: int = 5
    lr: float = 3e-4
    lr_min: float = 1e-6
    warmup_lr: float = 1e-6
    weight_decay: float = 1e-5
    loss_reduction: str = "mean"
    loss: str = "mse"
    ssim_weight: float = 0.5
    leak_weight: float = 0.0
    ema_decay: float = 0.999
    clean_fraction: float = 0.0
    scaling: str = "robust"
    field_share: float = 0.6
    freeze_bn: bool | None = None
    val_volumes: int | None = None
    val_tta: bool = False
    encoder: str = SEED_ENCODER
    encoder_weights: Path | None = None
    decoder_channels: tuple[int, ...] | None = None
    window: tuple[int, int] | None = None
    init_from: Path | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    workers: int = 0
    max_minutes: float | None = None
    checkpoint_every: float = 10.0
    resume: bool = False
    progress: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise InputError for values no run can use (each message says which flag to change)."""
        # A resumed run may leave both out: it continues on the data source its saved config names.
        if self.data is not None and self.synthetic is not None or (
                self.data is None and self.synthetic is None and not self.resume):
            raise InputError("no training data, or two sources",
                             received=f"--data {self.data}, --synthetic {self.synthetic}",
                             expected="exactly one of --data DIR or --synthetic N",
                             todo="pass --data with the challenge folder or --synthetic with a volume count")
        if self.synthetic is not None and self.synthetic < 1:
            raise InputError("--synthetic needs at least one volume", received=self.synthetic, expected=">= 1")
        if self.synthetic_family not in SYNTHETIC_FAMILIES:
            raise InputError("unknown --synthetic-family", received=repr(self.synthetic_family),
                             expected=" or ".join(SYNTHETIC_FAMILIES))
        if len(self.synthetic_shape) != 3 or min(self.synthetic_shape) < 1:
            raise InputError("bad --synthetic-shape", received=self.synthetic_shape, expected="T,IL,XL positive")
        for name in ("epochs", "batch_size", "slice_stride"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be positive", received=getattr(self, name),
                                 expected=">= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise InputError("--steps-per-epoch must be positive", received=self.steps_per_epoch, expected=">= 1")
        if self.crop is not None:
            check_multiple_of_32("--crop", self.crop)
        if self.window is not None:
            check_multiple_of_32("--window", self.window)
        win = self.window or WINDOW
        if self.crop is not None and self.window is not None and (self.crop[0] > win[0] or self.crop[1] > win[1]):
            raise InputError("crop larger than the window", received=f"crop {self.crop}, window {win}",
                             expected="crop <= window on both axes", todo="pass a smaller --crop or a larger --window")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise InputError("unknown loss reduction", received=self.loss_reduction,
                             expected=" or ".join(LOSS_REDUCTIONS))
        if self.device not in DEVICES:
            raise InputError("unknown device", received=self.device, expected=", ".join(DEVICES))
        if self.loss not in LOSSES:
            raise InputError("unknown loss", received=self.loss, expected=", ".join(LOSSES))
        if self.ssim_weight < 0:
            raise InputError("--ssim-weight must not be negative", received=self.ssim_weight, expected=">= 0")
        if self.leak_weight < 0:
            raise InputError("--leak-weight must not be negative", received=self.leak_weight, expected=">= 0")
        if self.leak_weight and self.scaling != "robust":
            raise InputError("--leak-weight needs a field-ready run", received=f"--scaling {self.scaling}",
                             expected="--scaling robust (the output in the input's units)",
                             todo="drop --leak-weight or pass --scaling robust")
        if self.precision not in PRECISIONS:
            raise InputError("unknown precision", received=self.precision, expected=", ".join(PRECISIONS))
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError("--ema-decay out of range", received=self.ema_decay, expected="0 <= decay < 1")
        if self.scaling not in ("robust", "minmax"):
            raise InputError("unknown --scaling", received=self.scaling, expected="robust or minmax",
                             todo="pass --scaling robust")
        if not 0.0 <= self.field_share <= 1.0:
            raise InputError("--field-share out of range", received=self.field_share, expected="0 <= share <= 1",
                             todo="pass e.g. --field-share 0.6")
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise InputError("--clean-fraction out of range", received=self.clean_fraction,
                             expected="0 <= fraction <= 1", todo="e.g. --clean-fraction 0.25")
        if self.lr <= 0 or self.weight_decay < 0:
            raise InputError("bad optimizer setting", received=f"lr {self.lr}, weight decay {self.weight_decay}",
                             expected="lr > 0, weight decay >= 0")
        if self.val_volumes is not None and self.val_volumes < 0:
            raise InputError("--val-volumes must not be negative", received=self.val_volumes, expected=">= 0")
        if self.workers < 0:
            raise InputError("--workers must not be negative", received=self.workers, expected=">= 0")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise InputError("--max-minutes must be positive", received=self.max_minutes, expected="> 0")
        if self.checkpoint_every <= 0:
            raise InputError("--checkpoint-every must be positive", received=self.checkpoint_every,
                             expected="> 0 minutes")

    # -- resolved defaults -------------------------------------------------------------------------------------

    @property
    def frozen_bn(self) -> bool:
        """Whether BatchNorm layers stay in eval mode (``freeze_bn``, resolved)."""
        return self.init_from is not None if self.freeze_bn is None else self.freeze_bn

    @property
    def cache_dir(self) -> Path:
        """Where synthetic volumes live."""
        return Path(self.synthetic_dir) if self.synthetic_dir is not None else Path(self.out) / "synthetic"

    def resolved_val_volumes(self, n_volumes: int) -> int:
        """How many volumes validation holds out of ``n_volumes``."""
        if self.val_volumes is not None:
            return self.val_volumes
        return 0 if n_volumes < 2 else max(1, math.floor(0.1 * n_volumes))

    # -- (de)serialization -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def recipe(self) -> dict[str, Any]:
        """The fields a resumed run must keep (everything but :data:`RUNTIME_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored, so older run directories still load)."""
        kinds = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, value in values.items():
            if name not in kinds:
                continue
            if value is not None and name in {"out", "data", "synthetic_dir", "encoder_weights", "init_from"}:
                value = Path(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    def resumed_with(self, new: TrainConfig, explicit: set[str] | None = None) -> TrainConfig:
        """This (saved) config with ``new``'s runtime fields, refusing a changed recipe.

        Args:
            new: The config of the resuming invocation.
            explicit: Fields the user set explicitly; only those are compared (``None``: compare all recipe
                fields, as a library caller passes a complete config).

        Raises:
            InputError: A recipe field differs (changing it mid-run would not continue the same optimization).
        """
        saved, wanted = self.recipe(), new.recipe()
        names = set(saved) if explicit is None else set(explicit) & set(saved)
        if new.data is None and new.synthetic is None:  # no source given: the saved run's, not a change
            names -= {"data", "synthetic"}
        changed = sorted(n for n in names if saved[n] != wanted[n])
        if changed:
            name = changed[0]
            raise InputError(f"--{name.replace('_', '-')} cannot change on --resume",
                             received=wanted[name], expected=f"{saved[name]} (as the run started)",
                             todo="drop the flag, or start a new run in another --out directory")
        runtime = {k: getattr(new, k) for k in RUNTIME_FIELDS}
        return dataclasses.replace(self, **runtime)


def check_multiple_of_32(flag: str, size: tuple[int, int]) -> None:
    """Raise InputError unless ``size`` is two positive multiples of 32 (the network downsamples 5 times)."""
    if len(size) != 2 or min(size) <= 0 or any(v % 32 for v in size):
        fixed = "x".join(str(max(32, 32 * round(v / 32))) for v in size)
        raise InputError(f"{flag} is not a multiple of 32", received="x".join(map(str, size)),
                         expected="two positive multiples of 32", todo=f"pass e.g. {flag} {fixed}")


def write_config(config: TrainConfig, path: Path) -> None:
    """Write the config as JSON (the run directory's ``config.json``)."""
    with atomic_write(path) as f:
        f.tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
