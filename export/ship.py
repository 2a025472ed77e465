"""Package a trained model as the shipped default: fp16 weights, card, and a compact ONNX.

    python -m impeccable.export.ship runs/v2s-synth models/unetpp-v2s-synth

The weights are stored as fp16 safetensors (half the size; the network still computes in float32 after
loading). The shipped ONNX stores as fp16 (followed by a ``Cast`` to float32, folded once at load by ONNX
Runtime and OpenVINO) those weights that fp16 holds exactly; the rest stay float32: the exporter folds batch
norms into convolution weights, and rounding those would move the output past the 1e-4 parity bound. Parity
with PyTorch is checked on the final file.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from impeccable.core.atomic import atomic_write
from impeccable.core.card import window_of
from impeccable.core.cli import one_line_errors
from impeccable.models.checkpoint import load_model, save_model_dir


def store_initializers_fp16(model: onnx.ModelProto, min_elements: int = 16) -> onnx.ModelProto:
    """Rewrite float32 initializers of at least ``min_elements`` that fp16 holds exactly as fp16 + ``Cast(to=FLOAT)``.

    Small tensors (shapes, scalars, epsilons) stay float32: they cost nothing and some ops need them exact.
    """
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < min_elements:
            continue
        # Only where lossless: the exporter folds batch norms into the convolutions, and those products of fp16
        # weights are not fp16 numbers; rounding them moved a trained model's output by 4.5e-4 (> the 1e-4 bound).
        if not np.array_equal(values.astype(np.float16).astype(np.float32), values):
            continue
        name = init.name
        half_name = f"{name}__fp16"
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    # Casts first keeps the node list topologically sorted.
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def ship_model(run_dir: str | Path, target_dir: str | Path, name: str | None = None) -> Path:
    """Write ``target_dir``: fp16 safetensors + card (from ``run_dir``) and a compact, parity-checked ONNX.

    Args:
        run_dir: A model directory written by impeccable-train (fp32 or fp16 weights).
        target_dir: The shipped model directory (e.g. ``models/unetpp-v2s-synth``).
        name: The card's ``name`` [default: the target directory's name].
    """
    from impeccable.export.onnx_export import check_parity, export_onnx

    target_dir = Path(target_dir)
    model, card = load_model(run_dir)
    card = dict(card, name=name or target_dir.name)
    save_model_dir(model, card, target_dir, dtype=torch.float16)
    onnx_path = export_onnx(target_dir)  # exported from the fp16 weights, upcast: the ONNX sees those values
    compact = store_initializers_fp16(onnx.load(str(onnx_path)))
    reference, card = load_model(target_dir)
    with atomic_write(onnx_path) as f:  # replaced only once the compact graph passed its checks
        onnx.save(compact, str(f.tmp))
        onnx.checker.check_model(str(f.tmp), full_check=True)
        check_parity(f.tmp, reference, window_of(card))
    return target_dir


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("target_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name", required=False)
@one_line_errors
def main(run_dir: Path, target_dir: Path, name: str | None) -> None:
    """Package the model directory RUN_DIR as TARGET_DIR (fp16 weights, card, compact ONNX); NAME names it."""
    click.echo(ship_model(run_dir, target_dir, name))


if __name__ == "__main__":
    main()
