"""``impeccable-train``: fit the denoiser and write a model directory (DESIGN §7).

Thin: parse the flags into a :class:`~impeccable.train.config.TrainConfig`, call
:func:`~impeccable.train.loop.train`, print one-line errors. Runs as a console script, as
``python -m impeccable.train.cli`` and under ``accelerate launch -m impeccable.train.cli``. The console script
enters through :func:`impeccable.train.main`, which checks the ``[train]`` extra first: this module imports
torch (through the config's loss table).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from impeccable.core.cli import one_line_errors, parse_shape
from impeccable.core.errors import InputError
from impeccable.train.adapt_config import AdaptConfig
from impeccable.train.config import (DEVICES, LOSS_REDUCTIONS, PRECISIONS, SYNTHETIC_FAMILIES, TrainConfig,
                                     check_multiple_of_32)
from impeccable.train.losses import LOSSES
from impeccable.train.masks import MASKS, TRACE_FILLS

#: TrainConfig's defaults: every flag's default is read from here, so the two cannot drift apart.
_DEFAULT = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
# click parameter name -> TrainConfig field, where they differ.
_FIELD_OF = {"data_dir": "data", "steps": "steps_per_epoch", "window_text": "window", "crop_text": "crop",
             "shape_text": "synthetic_shape", "decoder_text": "decoder_channels", "adapt_survey": "adapt",
             "adapt_steps": "steps_per_epoch"}
#: AdaptConfig's defaults (``--adapt`` runs): the flags the two kinds of run share keep the trainer's
#: defaults in the help, and an --adapt run takes these where a flag is left out.
_ADAPT = {f.name: f.default for f in dataclasses.fields(AdaptConfig) if f.default is not dataclasses.MISSING}
#: Flags that only an --adapt run takes (click parameter names).
_ADAPT_ONLY = ("adapt_steps", "mask", "mask_share", "mask_radius", "unmasked_weight", "trace_fill", "synthetic_share",
               "holdout", "qc_sections", "dataset", "iline_byte", "xline_byte", "line_key", "cdp_byte",
               "removal_floor_coherence")


def _size(text: str | None, flag: str) -> tuple[int, int] | None:
    if text is None:
        return None
    size = parse_shape(text, n=2, name=flag)
    check_multiple_of_32(flag, size)
    return size


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Challenge-layout folder of noisy/clean .npy pairs, or an HDF5 section cache (.h5).")
@click.option("--synthetic", type=int, help="Generate N synthetic volume pairs (cached in RUN_DIR/synthetic).")
@click.option("--synthetic-shape", "shape_text", default=",".join(map(str, _DEFAULT["synthetic_shape"])),
              show_default=True,
              help="T,IL,XL of each synthetic volume (the challenge's are 1259,300,300).")
@click.option("--synthetic-dir", type=click.Path(path_type=Path), help="Cache folder of the synthetic volumes.")
@click.option("--synthetic-family", type=click.Choice(SYNTHETIC_FAMILIES), default=_DEFAULT["synthetic_family"],
              show_default=True,
              help="Generator: a (the original), b (the independent recipe) or mix (a for even volumes, b for odd).")
@click.option("--min-ssim", type=float,
              help="Skip challenge pairs whose noisy-vs-clean score is below this (seed: 0.7).")
@click.option("--time-axis", type=click.Choice(["auto", "0", "2"]), default=_DEFAULT["time_axis"], show_default=True,
              help="Stored time axis of the challenge files.")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="Run directory: best model at the top level, last/ checkpoint, metrics.jsonl.")
@click.option("--epochs", type=int, default=_DEFAULT["epochs"], show_default=True,
              help="Epochs of the cosine schedule.")
@click.option("--steps-per-epoch", "steps", type=int, help="Updates per epoch [default: one pass over the sections].")
@click.option("--batch-size", type=int, default=_DEFAULT["batch_size"], show_default=True,
              help="Sections per update, per process.")
@click.option("--crop", "crop_text",
              help="Train on random HxW crops of the padded window (multiples of 32), e.g. 128x256.")
@click.option("--slice-stride", type=int, default=_DEFAULT["slice_stride"], show_default=True,
              help="Every k-th inline and crossline section.")
@click.option("--lr", type=float, default=_DEFAULT["lr"], show_default=True, help="Peak AdamW learning rate.")
@click.option("--weight-decay", type=float, default=_DEFAULT["weight_decay"], show_default=True,
              help="AdamW weight decay.")
@click.option("--loss-reduction", type=click.Choice(LOSS_REDUCTIONS), default=_DEFAULT["loss_reduction"],
              show_default=True,
              help="MSE reduction (the seed summed).")
@click.option("--loss", type=click.Choice(LOSSES), default=_DEFAULT["loss"], show_default=True,
              help="mse (the seed's) or mse+ssim: adds SSIM-WEIGHT * (1 - SSIM), the challenge metric, as a term.")
@click.option("--ssim-weight", type=float, default=_DEFAULT["ssim_weight"], show_default=True,
              help="Weight of the SSIM term.")
@click.option("--leak-weight", type=float, default=_DEFAULT["leak_weight"], show_default=True,
              help="Extra weight on removed signal: adds LEAK-WEIGHT x the power of the clean signal found in the "
                   "removed part (local projection), so taking signal costs more than leaving noise. "
                   "--scaling robust only; 0 is off.")
@click.option("--ema-decay", type=float, default=_DEFAULT["ema_decay"], show_default=True,
              help="EMA decay (after its warm-up ramp).")
@click.option("--clean-fraction", type=float, default=_DEFAULT["clean_fraction"], show_default=True,
              help="Share of training images fed the clean section as input (teaches the model to leave clean "
                   "data alone).")
@click.option("--scaling", type=click.Choice(["robust", "minmax"]), default=_DEFAULT["scaling"], show_default=True,
              help="robust: field-ready (robust input scaling, target in the input's units, padding at the data's "
                   "zero level, linear output, field-like sections); minmax: the seed's contract (models up to v5).")
@click.option("--field-share", type=float, default=_DEFAULT["field_share"], show_default=True,
              help="With --scaling robust: share of sections given field-like traits (mutes, time stretch, "
                   "erratic traces, spikes, bursts, linear noise, swell, footprint, AGC or decay gains).")
@click.option("--freeze-bn/--train-bn", "freeze_bn", default=None,
              help="Keep BatchNorm statistics frozen while training [default: frozen with --init-from].")
@click.option("--val-volumes", type=int, help="Held-out validation volumes [default: 10 %, at least 1 of 2+].")
@click.option("--val-tta/--no-val-tta", default=_DEFAULT["val_tta"], show_default=True,
              help="Flip TTA during validation.")
@click.option("--encoder", default=_DEFAULT["encoder"], show_default=True,
              help="smp encoder (tu-test_resnet for a smoke run).")
@click.option("--encoder-weights", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Local timm weights file for the encoder [default: from scratch].")
@click.option("--decoder-channels", "decoder_text", help="UNet++ decoder widths, e.g. 16,16,8,8,8 (tiny models).")
@click.option("--window", "window_text", help="Model input window RxC [default: 320x1280].")
@click.option("--init-from", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Model directory whose weights start the run.")
@click.option("--seed", type=int, default=_DEFAULT["seed"], show_default=True,
              help="Seed of data split, order, augmentation, init.")
@click.option("--device", type=click.Choice(DEVICES), default=_DEFAULT["device"], show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default=_DEFAULT["precision"], show_default=True,
              help="bf16 autocast or fp32; auto: bf16 on a bf16 GPU or a CPU with AMX or AVX-512 BF16 (2x faster "
                   "there), else fp32.")
@click.option("--workers", type=int, default=_DEFAULT["workers"], show_default=True,
              help="DataLoader worker processes.")
@click.option("--max-minutes", type=float, help="Stop cleanly (with a checkpoint) after this many minutes.")
@click.option("--checkpoint-every", type=float, default=_DEFAULT["checkpoint_every"], show_default=True,
              help="Minutes between checkpoints.")
@click.option("--resume", is_flag=True, default=_DEFAULT["resume"],
              help="Continue the run in --out (recipe flags may be left out).")
@click.option("--progress/--no-progress", default=_DEFAULT["progress"], show_default=True, help="Progress bars.")
@click.option("--adapt", "adapt_survey", type=click.Path(path_type=Path),
              help="Adapt a model to this noisy survey (SEG-Y, .npy, HDF5, Zarr/MDIO; no clean data needed): "
                   "self-supervised fine-tuning with blind-spot/blind-trace masks, synthetic pairs mixed into every "
                   "batch, starting from --init-from [default: the shipped model]. Writes a model directory and "
                   "adapt_qc.json (start vs adapted on held-out sections). Its defaults differ: "
                   f"--steps {_ADAPT['steps_per_epoch']}, --lr {_ADAPT['lr']:g}, --crop "
                   f"{'x'.join(map(str, _ADAPT['crop']))}, --synthetic {_ADAPT['synthetic']} "
                   f"(--synthetic-family {_ADAPT['synthetic_family']}), --clean-fraction {_ADAPT['clean_fraction']:g}, "
                   "--scaling: the start model's. "
                   "See docs/adapt.md.")
@click.option("--steps", "adapt_steps", type=int,
              help=f"--adapt: updates of the run [default: {_ADAPT['steps_per_epoch']}]; --max-minutes may stop it "
                   "sooner (the model so far is written; --resume continues).")
@click.option("--mask", type=click.Choice(MASKS),
              help="--adapt: blind-spot (single samples hidden: random noise), blind-trace (whole traces hidden: "
                   f"also trace-wise noise), or both (each image draws one) [default: {_ADAPT['mask']}].")
@click.option("--mask-share", type=float,
              help="--adapt: share of a crop's samples hidden (blind-spot: samples; blind-trace: traces) "
                   f"[default: {_ADAPT['mask_share']:g}].")
@click.option("--mask-radius", type=int,
              help="--adapt: a hidden sample or trace takes the value of a random neighbour at most this many "
                   f"traces/samples away [default: {_ADAPT['mask_radius']}].")
@click.option("--unmasked-weight", type=float,
              help="--adapt, blind-trace: weight of the error on the visible traces beside the hidden ones' "
                   f"(semi-blind-trace, against signal leakage) [default: {_ADAPT['unmasked_weight']:g}].")
@click.option("--trace-fill", type=click.Choice(TRACE_FILLS),
              help=f"--adapt, blind-trace: what replaces a hidden trace [default: {_ADAPT['trace_fill']}].")
@click.option("--synthetic-share", type=float,
              help="--adapt: share of every batch that is supervised synthetic pairs, so the model keeps what it "
                   f"knows [default: {_ADAPT['synthetic_share']:g}].")
@click.option("--holdout", type=float,
              help="--adapt: share of the survey held out (never trained on) for the before/after QC "
                   f"[default: {_ADAPT['holdout']:g}].")
@click.option("--qc-sections", type=int,
              help=f"--adapt: held-out sections denoised for the QC, at most [default: {_ADAPT['qc_sections']}].")
@click.option("--dataset", type=str, help="--adapt: HDF5 dataset / Zarr array of the survey [default: its only one].")
@click.option("--iline-byte", type=int, help="--adapt, SEG-Y: trace-header byte of the inline number [default: 189].")
@click.option("--xline-byte", type=int,
              help="--adapt, SEG-Y: trace-header byte of the crossline number [default: 193].")
@click.option("--line-key", type=int,
              help="--adapt, SEG-Y 2-D lines: trace-header byte of the line number (as impeccable-denoise).")
@click.option("--cdp-byte", type=int,
              help="--adapt, SEG-Y 2-D lines: trace-header byte that orders the traces along a line [default: 21].")
@click.option("--removal-floor-coherence", type=float,
              help="--adapt: dB by which the adapted model's removal floor rises where the removed part is laterally "
                   "coherent (reflectors), written into its card (impeccable-denoise's option of the same name); 0 "
                   f"keeps the start card's [default: {_ADAPT['removal_floor_coherence']:g}].")
@click.pass_context
@one_line_errors
def main(ctx: click.Context, **opts: object) -> None:
    """Train the UNet++ / EfficientNetV2-S denoiser on noisy/clean pairs and write a model directory."""
    from impeccable.train.loop import train

    given = {name for name in opts if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)}
    explicit = {_FIELD_OF.get(name, name) for name in given}
    values = dict(opts)
    survey = values.pop("adapt_survey")
    adapt_values = {name: values.pop(name) for name in _ADAPT_ONLY}
    values["synthetic_shape"] = parse_shape(values.pop("shape_text"), n=3, name="--synthetic-shape")
    values["window"] = _size(values.pop("window_text"), "--window")
    values["crop"] = _size(values.pop("crop_text"), "--crop")
    decoder = values.pop("decoder_text")
    values["decoder_channels"] = tuple(int(v) for v in decoder.split(",")) if decoder else None
    values["data"] = values.pop("data_dir")
    values["steps_per_epoch"] = values.pop("steps")
    if values["data"] is not None and not values["data"].exists():
        raise InputError("--data not found", received=str(values["data"]), expected="a folder or an .h5 cache",
                         todo="check the path")
    if survey is not None or (values["resume"] and _is_adapt_run(values["out"])):
        _adapt(values, adapt_values, survey, given, explicit)
        return
    if used := sorted(name for name in _ADAPT_ONLY if name in given):
        flag = "--steps" if used[0] == "adapt_steps" else "--" + used[0].replace("_", "-")
        raise InputError(f"{flag} is an option of --adapt", received=f"{flag} without --adapt",
                         expected="--adapt SURVEY with it", todo="add --adapt SURVEY, or drop the flag")
    result = train(TrainConfig(**values), explicit=explicit)
    best = "n/a (no validation volumes)" if result.best_score is None else f"{result.best_score:.4f}"
    click.echo(f"{result.run_dir}: step {result.step}, {result.epochs_done} epoch(s), best validation score {best}"
               + (f", stopped ({result.stopped})" if result.stopped else ""))


def _is_adapt_run(out: Path) -> bool:
    from impeccable.train.adapt import is_adapt_run

    return is_adapt_run(out)


def _adapt(values: dict, adapt_values: dict, survey: Path | None, given: set[str], explicit: set[str]) -> None:
    """Run ``--adapt``: the flags given explicitly over :class:`~impeccable.train.adapt.AdaptConfig`'s defaults."""
    from impeccable.train.adapt import adapt

    if "leak_weight" in explicit:
        raise InputError("--leak-weight is an option of supervised training", received="--leak-weight with --adapt",
                         expected="no --leak-weight", todo="drop --leak-weight (adaptation has no clean target)")
    # ``values`` is keyed by TrainConfig field; ``adapt_values`` by click parameter.
    kwargs = {name: value for name, value in values.items() if name in explicit}
    kwargs.update({_FIELD_OF.get(name, name): value for name, value in adapt_values.items() if name in given})
    kwargs.update(out=values["out"], resume=values["resume"], progress=values["progress"])
    if survey is not None:
        kwargs["adapt"] = survey
    if "data" in explicit and "synthetic" not in explicit:
        kwargs["synthetic"] = None  # challenge pairs instead of synthetic ones
    result = adapt(AdaptConfig(**kwargs), explicit=explicit)
    tail = f", stopped ({result.stopped}): continue with --resume" if result.stopped else ""
    click.echo(f"{result.run_dir}: adapted model at step {result.step}{tail}"
               + (f"; QC in {result.run_dir / 'adapt_qc.json'}" if result.qc else ""))
    for warning in (result.qc or {}).get("warnings", []):
        click.echo(f"Warning: {warning}")


if __name__ == "__main__":
    main()
