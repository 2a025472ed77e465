"""FP16 conversion with onnxconverter-common, and the four work-arounds of its rough edges
(:mod:`impeccable.export.fp16` says why each is needed)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from impeccable.core.errors import ExportError
from impeccable.export.fp16_audit import FP16_MAX, MIN_POSITIVE

if TYPE_CHECKING:
    import onnx

#: onnxconverter-common's default op block list minus Resize/Upsample: nearest-neighbour resizing is exact in
#: FP16, and blocking the decoder's 11 Resize nodes would wrap each in two casts of a full feature map. Their
#: float ``roi``/``scales`` inputs are restored to float32 after conversion (:func:`_float32_resize_params`).
RESIZE_OPS = ("Resize", "Upsample")


def _float32_resize_params(graph: onnx.ModelProto) -> None:
    """Give every Resize float32 ``roi``/``scales`` again: the converter cast them to FP16, which ONNX forbids.

    They are initializers (dynamo exporter) or Constant nodes (legacy exporter); the FP16 tensors are replaced
    by float32 initializers and whatever is left unused is dropped.
    """
    from onnx import numpy_helper

    constants = {i.name: i for i in graph.graph.initializer}
    for node in graph.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    made: dict[str, str] = {}
    for node in graph.graph.node:
        if node.op_type not in RESIZE_OPS:
            continue
        for index in (1, 2):
            name = node.input[index] if len(node.input) > index else ""
            tensor = constants.get(name)
            if tensor is None or tensor.data_type != 10:  # 10 = FLOAT16
                continue
            if name not in made:
                made[name] = f"{name}_float32"
                array = numpy_helper.to_array(tensor).astype(np.float32)
                graph.graph.initializer.append(numpy_helper.from_array(array, made[name]))
            node.input[index] = made[name]
    if not made:
        return
    used = {i for node in graph.graph.node for i in node.input} | {o.name for o in graph.graph.output}
    for node in [n for n in graph.graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.graph.node.remove(node)
    for init in [i for i in graph.graph.initializer if i.name not in used]:
        graph.graph.initializer.remove(init)


def _float32_outputs(graph: onnx.ModelProto) -> None:
    """Make every graph output float32 again.

    With ``keep_io_types=True`` the converter still types an output FP16 when the node producing it is blocked
    (it casts the blocked node's float32 result to FP16 and forgets the output): here that last Cast is turned
    back to float32 (or one is added).
    """
    from onnx import helper

    producer = {out: node for node in graph.graph.node for out in node.output}
    for output in graph.graph.output:
        if output.type.tensor_type.elem_type != 10:  # 10 = FLOAT16
            continue
        node = producer.get(output.name)
        if node is not None and node.op_type == "Cast":
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("to", 1))
        else:
            inner = f"{output.name}_fp16"
            for n in graph.graph.node:
                n.output[:] = [inner if o == output.name else o for o in n.output]
            graph.graph.node.append(helper.make_node("Cast", [inner], [output.name], to=1, name=f"{output.name}_to_float32"))
        output.type.tensor_type.elem_type = 1


def _drop_cast_round_trips(graph: onnx.ModelProto) -> None:
    """Remove ``Cast(to FP16) -> Cast(to FP32)`` chains: a blocked node's output must not pass through FP16 on its
    way to another blocked node (it would overflow there all the same). The converter removes such pairs only
    when the FP16 cast has one consumer."""
    nodes = list(graph.graph.node)
    to16 = {n.output[0]: n for n in nodes if n.op_type == "Cast" and _cast_target(n) == 10}
    outputs = {o.name for o in graph.graph.output}
    alias: dict[str, str] = {}
    for node in nodes:
        if node.op_type == "Cast" and _cast_target(node) == 1 and node.input[0] in to16:
            source = to16[node.input[0]].input[0]
            if node.output[0] in outputs:
                node.input[0] = source  # a float32 -> float32 cast feeding the output: harmless
            else:
                alias[node.output[0]] = source
                graph.graph.node.remove(node)
    for node in graph.graph.node:
        node.input[:] = [alias.get(i, i) for i in node.input]
    used = {i for node in graph.graph.node for i in node.input} | outputs
    for node in to16.values():
        if node.output[0] not in used:
            graph.graph.node.remove(node)
    kept = [v for v in graph.graph.value_info if v.name not in alias]
    del graph.graph.value_info[:]
    graph.graph.value_info.extend(kept)


def _cast_target(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


_GUARD = "impeccable_output_guard"


def _guard_outputs(graph: onnx.ModelProto) -> None:
    """Put an Identity between each graph output and its producer. The converter mishandles a blocked node that
    produces a graph output (it either types the output FP16 or fails pairing its casts); with the guard the
    blocked node feeds an ordinary node, and :func:`_unguard_outputs` removes the guard afterwards."""
    from onnx import helper

    for index, output in enumerate(graph.graph.output):
        inner = f"{output.name}_{_GUARD}"
        for node in graph.graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
        graph.graph.node.append(helper.make_node("Identity", [inner], [output.name], name=f"{_GUARD}_{index}"))


def _unguard_outputs(graph: onnx.ModelProto) -> None:
    """Remove the guards of :func:`_guard_outputs` from a converted graph (an Identity is a no-op)."""
    guards = [n for n in graph.graph.node if n.op_type == "Identity" and n.name.startswith(_GUARD)]
    outputs = {o.name for o in graph.graph.output}
    for guard in guards:
        source, target = guard.input[0], guard.output[0]
        if target in outputs:  # nothing was put after it: the guard itself produces the output
            for node in graph.graph.node:
                node.output[:] = [target if o == source else o for o in node.output]
        else:
            for node in graph.graph.node:
                node.input[:] = [source if i == target else i for i in node.input]
        graph.graph.node.remove(guard)


def _bypass_weight_identities(graph: onnx.ModelProto) -> None:
    """Feed weights straight to their consumers instead of through ``Identity`` nodes (legacy exports share
    weights that way); the converter retypes the weight but not the Identity's output, which ORT then refuses."""
    initializers = {i.name for i in graph.graph.initializer}
    outputs = {o.name for o in graph.graph.output}
    alias = {}
    for node in list(graph.graph.node):
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
            graph.graph.node.remove(node)
    for node in graph.graph.node:
        node.input[:] = [alias.get(i, i) for i in node.input]
    kept = [v for v in graph.graph.value_info if v.name not in alias]
    del graph.graph.value_info[:]
    graph.graph.value_info.extend(kept)


def to_fp16(graph: onnx.ModelProto, blocked: Iterable[str]) -> onnx.ModelProto:
    """FP16 copy of a float32 graph with float32 I/O; ``blocked`` nodes stay float32 (casts around them)."""
    import onnx
    from onnxconverter_common import float16

    ops = [op for op in float16.DEFAULT_OP_BLOCK_LIST if op not in RESIZE_OPS]
    source = onnx.ModelProto()
    source.CopyFrom(graph)
    # The dynamo exporter lists initializers in value_info too; the converter would retype those entries FP16 and
    # then "cast back" the float32 weights of blocked nodes at run time. Initializers need no value_info.
    initializers = {i.name for i in source.graph.initializer}
    kept = [v for v in source.graph.value_info if v.name not in initializers]
    del source.graph.value_info[:]
    source.graph.value_info.extend(kept)
    _bypass_weight_identities(source)
    _guard_outputs(source)
    try:
        with warnings.catch_warnings():  # one warning per tiny weight it rounds up: counted in the audit instead
            warnings.simplefilter("ignore", UserWarning)
            half = float16.convert_float_to_float16(source, keep_io_types=True, op_block_list=ops,
                                                    node_block_list=list(blocked), max_finite_val=FP16_MAX,
                                                    min_positive_val=MIN_POSITIVE)
    except Exception as exc:  # the converter raises bare Exceptions
        raise ExportError("FP16 conversion failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                          expected="a float32 ONNX graph written by impeccable-export",
                          todo="re-export it: impeccable-export MODEL_DIR") from exc
    _unguard_outputs(half)
    _drop_cast_round_trips(half)
    _float32_resize_params(half)
    _float32_outputs(half)
    return half
