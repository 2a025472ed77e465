"""``impeccable-export MODEL_DIR``: a checked ONNX model, FP16 and INT8 ONNX graphs, and manifested TensorRT plans.

Thin: parse the flags into an :class:`ExportConfig`, run :func:`run_export`, print one-line errors.

Exit codes: 0 everything asked for was written; 1 an error (one ``Error:`` line, nothing half-written kept; also
``--int8`` refused because its held-out score loss exceeds ``--max-loss``); 2 ``--fp16`` wrote the ONNX files
but no TensorRT plan could be built here (no TensorRT, Polygraphy or GPU). ``--int8`` alone on such a machine
exits 0: the INT8 graph is for the CPU engines first; its TensorRT plan is built where TensorRT and a GPU exist.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from impeccable.core.card import ONNX_FP16_NAME, ONNX_INT8_NAME, ONNX_NAME, read_card, sha256_file
from impeccable.core.cli import OneLineCommand, one_line_errors
from impeccable.core.errors import ExportError
from impeccable.core.onnx_meta import onnx_metadata
from impeccable.export.config import DEFAULT_MARGIN, DEFAULT_OPSET, ExportConfig

EXIT_NO_ENGINE = 2


def _stamps(path: Path, card: dict, config: ExportConfig) -> dict[str, str] | None:
    """``path``'s metadata if it is this exporter's graph for these weights, exporter and opset, else None."""
    from impeccable.export.onnx_export import PRODUCER

    if not path.is_file():
        return None
    props = onnx_metadata(path)
    same = (props.get("producer") == PRODUCER and props.get("weights_sha256") == card.get("weights_sha256")
            and props.get("opset") == str(config.opset)
            and props.get("exporter") == ("dynamo" if config.dynamo else "torchscript"))
    return props if same else None


def _onnx_is_current(path: Path, card: dict, config: ExportConfig) -> bool:
    """Whether ``path`` is this exporter's output for these weights, card, exporter and opset."""
    props = _stamps(path, card, config)
    return props is not None and props.get("card") == json.dumps(card, sort_keys=True)


#: Card fields the exported graph depends on; the rest (scaling, padding, output guard, gains, metrics) are read by
#: the runtime around the graph, so a card that changed only there is written into the ONNX, graph untouched.
GRAPH_FIELDS = ("format_version", "smp", "input_size", "output_activation", "weights_sha256", "weights_dtype")


def _only_card_is_stale(path: Path, card: dict, config: ExportConfig) -> bool:
    """Whether ``path`` is this exporter's graph for these weights and only its card's runtime fields changed."""
    props = _stamps(path, card, config)
    if props is None:
        return False
    try:
        stamped = json.loads(props.get("card", ""))
    except json.JSONDecodeError:
        return False
    return all(stamped.get(k) == card.get(k) for k in GRAPH_FIELDS)


def _fp16_is_current(path: Path, onnx_path: Path, margin: float) -> bool:
    """Whether ``path`` was converted from ``onnx_path`` as it is now, with this margin, and has its audit."""
    from impeccable.export.fp16 import audit_path, read_audit

    if not (path.is_file() and audit_path(path).is_file()):
        return False
    props, audit = onnx_metadata(path), read_audit(path) or {}
    return (props.get("precision") == "fp16" and props.get("source_onnx_sha256") == sha256_file(onnx_path)
            and audit.get("margin") == margin)


def _int8_is_current(path: Path, onnx_path: Path, config: ExportConfig) -> bool:
    """Whether ``path`` was quantized from ``onnx_path`` as it is now, with these settings, and has its audit."""
    from impeccable.export.int8 import audit_path, read_audit
    from impeccable.core.onnx_meta import onnx_metadata

    if not (path.is_file() and audit_path(path).is_file()):
        return False
    props, audit = onnx_metadata(path), read_audit(path) or {}
    return (props.get("precision") == "int8" and props.get("source_onnx_sha256") == sha256_file(onnx_path)
            and audit.get("settings") == config.int8_config().settings())


def _export_int8(config: ExportConfig, onnx_path: Path, fresh_onnx: bool, echo: Callable[[str], None]) -> Path:
    """Write (or keep) ``model.int8.onnx``; raises Int8LossError when its held-out loss is too high."""
    from impeccable.export.int8 import Int8LossError, audit_path, convert_int8, read_audit
    from impeccable.core.onnx_meta import onnx_metadata

    int8_path = onnx_path.with_name(ONNX_INT8_NAME)
    if fresh_onnx and _int8_is_current(int8_path, onnx_path, config):
        echo(f"kept {int8_path}: quantized from this {ONNX_NAME} with these settings (--force quantizes it again)")
        return int8_path
    try:
        convert_int8(onnx_path, int8_path, config.int8_config(), echo=echo)
    except Int8LossError:
        if int8_path.is_file() and onnx_metadata(int8_path).get("source_onnx_sha256") != sha256_file(onnx_path):
            # An earlier INT8 graph of other weights would otherwise stay beside the new model.onnx and be run.
            int8_path.unlink()
            audit_path(int8_path).unlink(missing_ok=True)
        raise
    audit = read_audit(int8_path) or {}
    held = audit.get("held_out", {})
    flops, speed = audit.get("flops", {}), audit.get("speed", {})
    echo(f"wrote {int8_path}: {len(audit.get('float_nodes', []))} node(s) kept in float "
         f"(groups {audit.get('sensitivity', {}).get('float_groups') or 'none'} + the output head), "
         f"{flops.get('int8_share', float('nan')):.0%} of the FLOPs in INT8, "
         f"{speed.get('speedup', float('nan')):.2f}x fp32 in ONNX Runtime on the gate's volumes; worst held-out "
         f"loss {held.get('worst_loss', float('nan')):+.4f} <= {config.max_loss:g} through "
         f"{' and '.join(e.removesuffix(' cpu') for e in held.get('engines', ['onnxruntime']))} "
         f"(audit: {audit_path(int8_path).name})")
    return int8_path


def _needs_torch() -> None:
    missing = [p for p in ("torch", "segmentation_models_pytorch", "onnx", "onnxconverter_common")
               if importlib.util.find_spec(p) is None]
    if missing:
        raise ExportError("exporting needs the training packages", received=f"{', '.join(missing)} not installed",
                          expected="torch, segmentation-models-pytorch, onnx, onnxconverter-common",
                          todo="pip install '.[train]'")


def run_export(config: ExportConfig, echo: Callable[[str], None] = click.echo) -> int:
    """Write what ``config`` asks for; returns the exit code (0, or :data:`EXIT_NO_ENGINE`).

    Raises:
        ImpeccableError: Any failure (the files it concerns are not left behind).
    """
    from impeccable.export.onnx_export import PARITY_ATOL

    card = read_card(config.model_dir)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_NAME
    fresh_onnx = not config.force and _onnx_is_current(onnx_path, card, config)
    if fresh_onnx:
        echo(f"kept {onnx_path}: up to date with the weights (--force exports it again)")
    elif not config.force and _only_card_is_stale(onnx_path, card, config):
        from impeccable.export.onnx_export import restamp_card

        restamp_card(onnx_path, card)
        echo(f"wrote the card into {onnx_path}: only its runtime fields changed, the graph is untouched "
             "(--force exports it again)")
    else:
        _needs_torch()
        from impeccable.export.onnx_export import export_onnx

        exporter = "dynamo" if config.dynamo else "legacy TorchScript"
        echo(f"exporting {onnx_path} ({exporter} exporter, opset {config.opset}), then checking it against PyTorch ...")
        started = time.perf_counter()
        export_onnx(config.model_dir, onnx_path, opset=config.opset, dynamo=config.dynamo)
        echo(f"wrote {onnx_path} in {time.perf_counter() - started:.0f} s: graph checks passed, ONNX Runtime matches "
             f"PyTorch within {PARITY_ATOL:g} at batch 1 and 3")
    int8_path = _export_int8(config, onnx_path, fresh_onnx, echo) if config.int8 else None
    if not config.fp16:
        return _int8_plan(config, int8_path, echo) if int8_path else 0

    fp16_path = out / ONNX_FP16_NAME
    from impeccable.export.fp16 import audit_path, read_audit

    if fresh_onnx and _fp16_is_current(fp16_path, onnx_path, config.fp16_margin):
        echo(f"kept {fp16_path}: converted from this {ONNX_NAME} (--force converts it again)")
    else:
        _needs_torch()
        from impeccable.export.fp16 import convert_fp16

        echo(f"auditing activation ranges and converting to FP16 (margin {config.fp16_margin:g}) ...")
        convert_fp16(onnx_path, config.model_dir, fp16_path, margin=config.fp16_margin)
        audit = read_audit(fp16_path) or {}
        check = audit.get("fp16_check", {})
        echo(f"wrote {fp16_path}: {len(audit.get('blocked', []))} node(s) kept in FP32, peak |activation| "
             f"{(audit.get('peak') or {}).get('value', float('nan')):.3g}; vs FP32 max abs {check.get('max_abs', float('nan')):.2g}, "
             f"min SSIM {check.get('min_ssim', float('nan')):.4f} (audit: {audit_path(fp16_path).name})")
    if not config.engine:
        echo("no TensorRT plan asked for (--no-engine)")
        return 0

    from impeccable.export.tensorrt_build import GPU_EXTRA, EngineUnavailable, build_engine

    if int8_path is not None:
        _int8_plan(config, int8_path, echo)

    try:
        echo(f"building the TensorRT plan (profile batch 1 / {config.batch} / {config.max_batch}) ...")
        plan = build_engine(fp16_path, out, batch=config.batch, max_batch=config.max_batch)
    except EngineUnavailable as exc:
        click.echo(f"Error: no TensorRT plan built: {exc.received} | {ONNX_NAME} and {ONNX_FP16_NAME} are written | "
                   f"{GPU_EXTRA}, then run: impeccable-export {config.model_dir} --fp16", err=True)
        return EXIT_NO_ENGINE
    echo(f"wrote {plan} and {plan.name}.json")
    return 0


def _int8_plan(config: ExportConfig, int8_path: Path, echo: Callable[[str], None]) -> int:
    """Build the INT8 TensorRT plan where TensorRT and a GPU exist; a note (exit 0) where they do not."""
    from impeccable.export.tensorrt_build import EngineUnavailable, build_engine

    if not config.engine:
        return 0
    try:
        echo(f"building the TensorRT INT8 plan (profile batch 1 / {config.batch} / {config.max_batch}) ...")
        plan = build_engine(int8_path, config.out_dir, batch=config.batch, max_batch=config.max_batch)
    except EngineUnavailable as exc:
        echo(f"no TensorRT INT8 plan built: {exc.received} ({ONNX_INT8_NAME} runs on onnxruntime and openvino)")
        return 0
    echo(f"wrote {plan} and {plan.name}.json")
    return 0


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
               epilog="Exit codes: 0 done; 1 error (one 'Error:' line); 2 --fp16 wrote the ONNX files but this "
                      "machine cannot build a TensorRT plan (no TensorRT or no NVIDIA GPU): pip install "
                      "'.[gpu]' on a GPU machine and run the same command there.")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Output directory [default: MODEL_DIR].")
@click.option("--fp16", is_flag=True,
              help="Also write model.fp16.onnx (float32 I/O, FP16 inside, range-audited FP32 islands, audit JSON) "
                   "and, where TensorRT and an NVIDIA GPU exist, model.<gpu>.fp16.plan with its manifest.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="TensorRT profile's optimal batch: use the batch size you will denoise with.")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="TensorRT profile's largest batch.")
@click.option("--opset", type=click.IntRange(min=13), default=DEFAULT_OPSET, show_default=True, help="ONNX opset.")
@click.option("--dynamo/--no-dynamo", default=True, show_default=True,
              help="Dynamo exporter (folds the encoder's TF 'SAME' padding into the convolutions) or the legacy "
                   "TorchScript one (its run-time Pad chains are constant-folded; needs onnx-graphsurgeon).")
@click.option("--fp16-margin", type=float, default=DEFAULT_MARGIN, show_default=True,
              help="FP16 audit safety factor: nodes whose peak |activation| exceeds 65504 / margin stay FP32.")
@click.option("--engine/--no-engine", default=True, show_default=True,
              help="With --fp16, build the TensorRT plan (--no-engine: stop after the ONNX files, exit 0).")
@click.option("--force", is_flag=True, help="Export again even when the ONNX files are up to date with the weights.")
@click.option("--int8", is_flag=True,
              help="Also write model.int8.onnx: Q/DQ INT8 (onnxruntime.quantization, per-channel weights), "
                   "calibrated on normalized sections, costly layers kept in float by a measured sensitivity pass, "
                   "written only if its challenge-score loss on held-out volumes is within --max-loss; and, "
                   "where TensorRT and a GPU exist, model.<gpu>.int8.plan.")
@click.option("--calibration", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="With --int8: calibrate on the .npy volumes in this folder [default: synthetic sections].")
@click.option("--max-loss", type=float, default=0.002, show_default=True,
              help="With --int8: refuse (exit 1, no INT8 file) when fp32 - int8 challenge score exceeds this on "
                   "any held-out volume.")
@one_line_errors
def main(model_dir: Path, out: Path | None, fp16: bool, batch: int, max_batch: int, opset: int, dynamo: bool,
         fp16_margin: float, engine: bool, force: bool, int8: bool, calibration: Path | None,
         max_loss: float) -> None:
    """Export MODEL_DIR (model.safetensors + model.json) to a checked model.onnx.

    model.onnx takes float32 [batch, 1, rows, cols] (batch dynamic, rows x cols the card's window) and
    returns the network's output (linear for field-ready cards, sigmoid for min-max ones); it carries the card
    and the weights' sha256. It is written only after the graph checks (no run-time shape ops, constant pads,
    onnx.checker) and an ONNX Runtime vs PyTorch comparison (max abs <= 1e-4, batch 1 and 3) pass. A card
    changed only outside the graph (output guard, notes, metrics) is written into the existing model.onnx.

    With --int8 it also writes model.int8.onnx and model.int8.audit.json (for --precision int8 on
    onnxruntime, openvino and tensorrt), only after the held-out loss check passes.

    With --fp16 it also writes model.fp16.onnx and model.fp16.audit.json, and on a machine with TensorRT and
    an NVIDIA GPU model.<gpu>.fp16.plan + .json, a strongly typed TensorRT plan checked against the float32
    graph, with a timing cache (timing.cache) beside it. Up-to-date ONNX files are kept, so the same command
    rebuilds a stale plan on a GPU machine without torch.
    """
    config = ExportConfig(model_dir=model_dir, out=out, fp16=fp16, batch=batch, max_batch=max_batch, opset=opset,
                          dynamo=dynamo, fp16_margin=fp16_margin, engine=engine, force=force, int8=int8,
                          calibration=calibration, max_loss=max_loss)
    code = run_export(config)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
