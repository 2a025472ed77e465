"""The settings of ``impeccable-train --adapt`` (:class:`AdaptConfig`), torch-free.

Apart from :mod:`impeccable.train.adapt` (which imports torch) so that ``impeccable-train --help`` lists the
options without the ``[train]`` extra.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from impeccable.core.card import read_card
from impeccable.core.errors import InputError
from impeccable.models import DEFAULT_MODEL_DIR
from impeccable.train.config import TrainConfig
from impeccable.train.masks import MASKS, TRACE_FILLS

if TYPE_CHECKING:
    from impeccable.train.survey import Survey


@dataclass(frozen=True)
class AdaptConfig(TrainConfig):
    """A :class:`~impeccable.train.config.TrainConfig` for ``--adapt``: the trainer's fields (other defaults
    where adaptation needs them) plus the survey, the masks and the mix.

    Attributes:
        adapt: The survey (any volume ``impeccable-denoise`` reads).
        mask: ``blind-spot``, ``blind-trace`` or ``both`` (each image draws one of the two).
        mask_share: Share of a crop's samples hidden: blind-spot hides that share of its samples, blind-trace
            that share of its traces (at least one).
        mask_radius: Largest offset (traces and samples) of the neighbour that replaces a hidden sample or trace.
        unmasked_weight: Blind-trace: weight of the mean error on the visible traces beside the hidden ones'
            (semi-blind-trace).
        trace_fill: Blind-trace: hidden traces take a ``neighbour``'s values or Gaussian ``noise``.
        synthetic_share: Share of each batch that is supervised synthetic pairs (rounded to whole images; at
            least one when above 0, at least one survey image always).
        holdout: Share of the survey held out for the before/after QC (a block in the middle of its longer
            horizontal axis, never trained on); 0: no QC.
        scaling: As the trainer's, but ``auto`` (the default) keeps the start model's (its card's
            normalization): adaptation does not change how the runtime feeds the model.
        qc_sections: At most this many held-out sections (or pieces) are denoised for the QC.
        dataset: HDF5 dataset / Zarr array of the survey.
        iline_byte, xline_byte, line_key, cdp_byte: SEG-Y geometry, as ``impeccable-denoise`` takes it.
        removal_floor_coherence: dB by which the adapted model's removal floor rises where the removed part is
            laterally coherent (the card's ``output_guard.removal_floor_coherence_db``; the runtime's
            ``--removal-floor-coherence``), written into the adapted card when the start card has a removal
            floor. An adapted model serves one field survey, whose reflectors it must keep: 10 dB kept Penobscot
            fed alone at SSIM 0.987-0.989 before and after adaptation where the plain floor gave 0.94-0.96
            (benchmarks/results/2026-12-07-adapt-penobscot-v12-coh10-cpu.md); what it costs is some of the
            challenge's own coherent streak noise left in (synthetic family a). 0: the start card's value.
    """

    adapt: Path | None = None
    mask: str = "blind-trace"
    mask_share: float = 0.02
    mask_radius: int = 5
    unmasked_weight: float = 0.05
    trace_fill: str = "neighbour"
    synthetic_share: float = 0.25
    holdout: float = 0.1
    qc_sections: int = 8
    dataset: str | None = None
    iline_byte: int = 189
    xline_byte: int = 193
    line_key: int | None = None
    cdp_byte: int = 21
    removal_floor_coherence: float = 10.0
    # The trainer's fields with other defaults for a short fine-tuning.
    synthetic: int | None = 4
    synthetic_family: str = "mix"
    epochs: int = 1
    steps_per_epoch: int | None = 400
    crop: tuple[int, int] | None = (128, 256)
    lr: float = 1e-4
    clean_fraction: float = 0.3
    init_from: Path | None = DEFAULT_MODEL_DIR
    #: ``auto``: the start model's contract (min-max for v5, robust for field-ready models), so adapting never
    #: changes how the runtime feeds the model; ``robust`` / ``minmax`` as the trainer takes them.
    scaling: str = "auto"

    def __post_init__(self) -> None:
        if self.scaling == "auto":
            from impeccable.core.amplitude import Scaling

            kind = Scaling.of(read_card(self.init_from)).kind if self.init_from is not None else "robust"
            object.__setattr__(self, "scaling", kind)
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if self.adapt is None and not self.resume:
            raise InputError("no survey to adapt on", received="--adapt not given", expected="--adapt SURVEY",
                             todo="pass the noisy survey (SEG-Y, .npy, HDF5, Zarr/MDIO)")
        if self.init_from is None:
            raise InputError("adaptation needs a model to start from", received="no --init-from",
                             expected="a model directory", todo="drop --init-from to start from the shipped model")
        if self.epochs != 1:
            raise InputError("adaptation runs one pass of --steps updates", received=f"--epochs {self.epochs}",
                             expected="--epochs 1", todo="set the length with --steps")
        if self.mask not in MASKS:
            raise InputError("unknown --mask", received=self.mask, expected=" or ".join(MASKS))
        if self.trace_fill not in TRACE_FILLS:
            raise InputError("unknown --trace-fill", received=self.trace_fill, expected=" or ".join(TRACE_FILLS))
        if not 0.0 < self.mask_share < 1.0:
            raise InputError("--mask-share out of range", received=self.mask_share, expected="0 < share < 1",
                             todo="e.g. --mask-share 0.02")
        if self.mask_radius < 1:
            raise InputError("--mask-radius must be positive", received=self.mask_radius, expected=">= 1")
        if self.unmasked_weight < 0:
            raise InputError("--unmasked-weight must not be negative", received=self.unmasked_weight,
                             expected=">= 0")
        if not 0.0 <= self.synthetic_share < 1.0:
            raise InputError("--synthetic-share out of range", received=self.synthetic_share,
                             expected="0 <= share < 1 (survey images are needed)", todo="e.g. --synthetic-share 0.25")
        if not 0.0 <= self.holdout < 1.0:
            raise InputError("--holdout out of range", received=self.holdout, expected="0 <= share < 1")
        if self.qc_sections < 1:
            raise InputError("--qc-sections must be positive", received=self.qc_sections, expected=">= 1")
        if not 0.0 <= self.removal_floor_coherence <= 30.0:
            raise InputError("--removal-floor-coherence out of range", received=self.removal_floor_coherence,
                             expected="0 to 30 dB", todo="e.g. --removal-floor-coherence 10, or 0 for the start card's")
        if self.loss_reduction != "mean":
            raise InputError("adaptation weighs its losses per image", received=f"--loss-reduction "
                             f"{self.loss_reduction}", expected="mean", todo="drop --loss-reduction")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdaptConfig:
        cfg = super().from_dict(values)
        return dataclasses.replace(cfg, adapt=Path(cfg.adapt)) if cfg.adapt is not None else cfg

    def segy_options(self) -> dict:
        """The SEG-Y reader's options (:func:`impeccable.runtime.volumes.open_reader`'s ``segy``)."""
        return {"iline": self.iline_byte, "xline": self.xline_byte, "line_key": self.line_key, "cdp": self.cdp_byte}

    def open_survey(self) -> Survey:
        """The survey, read and checked (one-line errors before any training)."""
        from impeccable.train.survey import Survey

        return Survey(self.adapt, time_axis=self.time_axis, dataset=self.dataset, segy=self.segy_options(),
                      holdout=self.holdout)
