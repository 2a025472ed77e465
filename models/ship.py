"""Package a trained model as the shipped default: fp16 weights, card, and a compact ONNX.

The shipped ONNX keeps every weight as an fp16 initializer followed by a ``Cast`` to float32. The weights
in the file are exactly the fp16 safetensors' values, the graph still computes in float32 (ONNX Runtime and
OpenVINO fold the casts once at load), and the file is half the size of a float32 export.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from impeccable.core.card import CARD_NAME, ONNX_NAME, read_card, write_card


def store_initializers_fp16(model: onnx.ModelProto, min_elements: int = 16) -> onnx.ModelProto:
    """Rewrite float32 initializers of at least ``min_elements`` as fp16 + ``Cast(to=FLOAT)`` nodes.

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
        name = init.name
        half_name = f"{name}__fp16"
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    # Casts first keeps the node list topologically sorted.
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def ship_model(run_dir: str | Path, target_dir: str | Path, onnx_path: str | Path) -> Path:
    """Write ``target_dir`` with the run's fp16 weights and card, plus a compact ONNX made from ``onnx_path``.

    Args:
        run_dir: A model directory whose safetensors are already fp16 (see models.checkpoint.save_model_dir).
        target_dir: The shipped model directory (e.g. ``models/unetpp-v2s-synth``).
        onnx_path: The float32 ONNX exported from that model directory (impeccable-export).
    """
    run_dir, target_dir = Path(run_dir), Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", CARD_NAME):
        shutil.copyfile(run_dir / name, target_dir / name)
    model = store_initializers_fp16(onnx.load(str(onnx_path)))
    onnx.checker.check_model(model, full_check=True)
    tmp = target_dir / (ONNX_NAME + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, target_dir / ONNX_NAME)
    write_card(read_card(target_dir), target_dir)
    return target_dir
