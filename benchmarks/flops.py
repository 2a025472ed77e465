"""Count the arithmetic of an ONNX model per input image, from its graph (no torch needed).

Convolutions, Gemm and MatMul are counted as 2 FLOP per multiply-add; element-wise ops (activations, SE
scaling, additions, resizes) are left out: they are memory-bound and a few percent of the total here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        if dims and all(d > 0 for d in dims):
            shapes[vi.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def count_flops(onnx_path: str | Path) -> float:
    """FLOP for one input image (batch 1) of ``onnx_path``, convolutions and matrix products only."""
    model = onnx.load(str(onnx_path))
    # Pin the symbolic batch to 1 so shape inference resolves every tensor.
    for tensor in list(model.graph.input) + list(model.graph.output):
        dims = tensor.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = _shapes(model)
    total = 0.0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.output[0] in shapes and node.input[1] in shapes:
            weight = shapes[node.input[1]]  # (Cout, Cin / groups, kh, kw)
            total += 2.0 * np.prod(shapes[node.output[0]]) * np.prod(weight[1:])
        elif node.op_type in ("Gemm", "MatMul") and node.input[0] in shapes and node.output[0] in shapes:
            total += 2.0 * np.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
    return float(total)
