"""``impeccable-export MODEL_DIR``: ONNX (checked, parity-tested), FP16 ONNX and a TensorRT FP16 engine."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from impeccable.core.card import ONNX_FP16_NAME, ONNX_NAME, read_card, window_of
from impeccable.core.cli import one_line_errors

NO_ENGINE_EXIT = 2


def _audit_inputs(window: tuple[int, int]) -> list[np.ndarray]:
    """Normalized synthetic sections (the amplitudes the engine will see) for the FP16 range audit."""
    from impeccable.export.onnx_export import _parity_inputs

    return _parity_inputs(window, seed=1)[2:]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output directory [default: MODEL_DIR].")
@click.option("--fp16", is_flag=True, help="Also write model.fp16.onnx and, with TensorRT and a GPU, the FP16 plan.")
@click.option("--batch", type=int, default=8, show_default=True, help="TensorRT profile's optimal batch (images).")
@click.option("--max-batch", type=int, default=32, show_default=True, help="TensorRT profile's largest batch.")
@click.option("--opset", type=int, default=18, show_default=True, help="ONNX opset.")
@click.option("--dynamo/--no-dynamo", default=True, show_default=True,
              help="Dynamo exporter (folds the encoder's SAME padding into constants) or the legacy one.")
@one_line_errors
def main(model_dir: Path, out: Path | None, fp16: bool, batch: int, max_batch: int, opset: int, dynamo: bool) -> None:
    """Export MODEL_DIR (model.safetensors + model.json) to model.onnx, checked against PyTorch.

    With --fp16 also model.fp16.onnx (float32 I/O, FP16 inside, range-audited float32 islands) and, where
    TensorRT and an NVIDIA GPU exist, model.<gpu>.fp16.plan with its manifest. Without them the ONNX files
    are written and the command exits with code 2, saying why no engine was built.
    """
    from impeccable.export.onnx_export import export_onnx

    out = out or model_dir
    card = read_card(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    click.echo("exporting ONNX and checking it against PyTorch ...")
    onnx_path = export_onnx(model_dir, out / ONNX_NAME, opset=opset, dynamo=dynamo)
    click.echo(f"wrote {onnx_path}")
    if not fp16:
        return
    from impeccable.export.fp16 import convert_fp16
    from impeccable.export.tensorrt_build import build_engine, why_no_engine

    click.echo("auditing activation ranges and converting to FP16 ...")
    fp16_path, audit = convert_fp16(onnx_path, out / ONNX_FP16_NAME, _audit_inputs(window_of(card)))
    click.echo(f"wrote {fp16_path} ({len(audit['blocked'])} node(s) kept in float32)")
    reason = why_no_engine()
    if reason:
        click.echo(f"no TensorRT engine built: {reason} | run impeccable-export {model_dir} --fp16 on a machine "
                   "with an NVIDIA GPU after pip install 'impeccable[gpu]'", err=True)
        sys.exit(NO_ENGINE_EXIT)
    plan = build_engine(fp16_path, out, card, batch=batch, max_batch=max_batch, audit=audit)
    click.echo(f"wrote {plan} and its manifest")


if __name__ == "__main__":
    main()
