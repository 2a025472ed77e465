"""model.fp16.onnx: float32 I/O, FP16 inside, and a range audit that keeps hot nodes in FP32."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
pytest.importorskip("onnxconverter_common")

from conftest import TINY_WINDOW  # noqa: E402

from impeccable.core.card import sha256_file  # noqa: E402
from impeccable.core.errors import ExportError, ParityError  # noqa: E402
from impeccable.export import fp16 as fp16_mod  # noqa: E402
from impeccable.export.fp16 import (audit_inputs, audit_path, check_fp16, convert_fp16, head_nodes, map_nodes,  # noqa: E402
                                    module_peaks, node_scopes, plan_blocklist, to_fp16)
from impeccable.export.onnx_export import export_graph, metadata  # noqa: E402
from impeccable.models.checkpoint import load_model  # noqa: E402

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@pytest.fixture(scope="module")
def half(fp16_dir):
    return onnx.load(str(fp16_dir / "model.fp16.onnx"))


def test_fp16_graph_has_float32_io_and_fp16_inside(half):
    assert [t.type.tensor_type.elem_type for t in (*half.graph.input, *half.graph.output)] == [FLOAT, FLOAT]
    dims = half.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, *TINY_WINDOW]
    types = {i.data_type for i in half.graph.initializer}
    assert FLOAT16 in types
    convs = [n for n in half.graph.node if n.op_type == "Conv"]
    fp16_weights = {i.name for i in half.graph.initializer if i.data_type == FLOAT16}
    assert sum(n.input[1] in fp16_weights for n in convs) == len(convs) - 1  # all but the head's conv
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    assert len(casts) <= 4  # input, head in/out: Resize stays FP16 (no casts around the decoder's upsampling)
    onnx.checker.check_model(half, full_check=True)


def test_fp16_graph_runs_at_any_batch(fp16_dir):
    session = ort.InferenceSession(str(fp16_dir / "model.fp16.onnx"), providers=["CPUExecutionProvider"])
    fp32 = ort.InferenceSession(str(fp16_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 8):
        x = np.random.default_rng(batch).random((batch, 1, *TINY_WINDOW), dtype=np.float32)
        out = session.run(["output"], {"input": x})[0]
        assert out.dtype == np.float32 and out.shape == x.shape
        assert float(np.abs(out - fp32.run(["output"], {"input": x})[0]).max()) <= 2e-2


def test_audit_is_written_and_embedded(fp16_dir, half):
    audit = json.loads(audit_path(fp16_dir / "model.fp16.onnx").read_text())
    assert audit_path(fp16_dir / "model.fp16.onnx").name == "model.fp16.audit.json"
    assert audit["margin"] == 16.0 and audit["limit"] == pytest.approx(65504 / 16)
    assert audit["mapping"]["unmapped"] == 0 and audit["modules"] > 50
    assert 0 < audit["peak"]["value"] < audit["limit"] and len(audit["top_modules"]) == 20
    assert {b["reason"] for b in audit["blocked"]} == {"output head"}
    assert [b["op"] for b in audit["blocked"]] == ["Conv", "Sigmoid"]
    check = audit["fp16_check"]
    assert check["finite"] and check["max_abs"] <= 2e-2 and check["min_ssim"] > 0.9
    assert audit["source_onnx_sha256"] == sha256_file(fp16_dir / "model.onnx")
    props = metadata(half)
    assert props["precision"] == "fp16" and props["source_onnx_sha256"] == audit["source_onnx_sha256"]
    assert json.loads(props["fp16_audit"])["blocked"][0]["reason"] == "output head"
    assert json.loads(props["card"])["input_size"] == list(TINY_WINDOW)  # the card travels along


def test_every_dynamo_node_maps_to_a_module(exported_dir):
    graph = onnx.load(str(exported_dir / "model.onnx"))
    model, _ = load_model(exported_dir)
    peaks = module_peaks(model, [np.random.default_rng(0).random((1, 1, *TINY_WINDOW), dtype=np.float32)])
    mapping = map_nodes(graph, peaks)
    assert all(module is not None for module, _ in mapping.values())
    by_op = {n.op_type: mapping[n.name][0] for n in graph.graph.node}
    assert by_op["Sigmoid"] == "segmentation_head.2.activation"
    convs = [mapping[n.name][0] for n in graph.graph.node if n.op_type == "Conv"]
    # leaf modules, named as PyTorch names them; a Conv with a folded BatchNorm carries the BatchNorm's scope,
    # whose output is exactly what the fused node computes
    assert "encoder.model.conv1.1" in convs and "segmentation_head.0" in convs
    assert head_nodes(graph) == [n.name for n in graph.graph.node if n.op_type in ("Sigmoid",)] + [
        next(n.name for n in graph.graph.node if mapping[n.name][0] == "segmentation_head.0")]


@pytest.mark.parametrize(("name", "expected"), [
    ("/decoder/x_0_4/conv1/conv1.0/Conv", ["", "decoder", "decoder.x_0_4", "decoder.x_0_4.conv1", "decoder.x_0_4.conv1.0"]),
    ("/segmentation_head/segmentation_head.2/activation/Sigmoid",
     ["", "segmentation_head", "segmentation_head.2", "segmentation_head.2.activation"]),
    ("/encoder/model/blocks/blocks.0/blocks.0.0/conv/Conv",
     ["", "encoder", "encoder.model", "encoder.model.blocks", "encoder.model.blocks.0", "encoder.model.blocks.0.0",
      "encoder.model.blocks.0.0.conv"]),
    ("Identity_3", []),
])
def test_legacy_node_names_map_to_module_paths(name, expected):
    assert node_scopes(onnx.helper.make_node("Relu", ["x"], ["y"], name=name)) == expected


def onnx_node_peaks(graph, x):
    """Exact peak |output| of every float node output of a float32 graph, from ONNX Runtime."""
    probe = onnx.ModelProto()
    probe.CopyFrom(graph)
    produced = {o: n.name for n in graph.graph.node if n.op_type != "Constant" for o in n.output}
    existing = {o.name for o in graph.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=o) for o in produced if o not in existing)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return {produced[n]: float(np.abs(v).max()) for n, v in zip(names, session.run(names, {"input": x}))
            if np.issubdtype(v.dtype, np.floating) and v.size}


def assert_mapping_bounds(graph, model):
    """Every node's mapped (PyTorch) peak bounds what the node really computes (2x slack for Adds)."""
    x = audit_inputs(TINY_WINDOW)[0]
    mapping = map_nodes(graph, module_peaks(model, [x]))
    ops = {n.name: n.op_type for n in graph.graph.node}
    for name, actual in onnx_node_peaks(graph, x).items():
        module, claimed = mapping[name]
        if ops[name] == "Identity":  # legacy exports pass weights through Identity: not activations
            continue
        slack = 2.0 if ops[name] == "Add" else 1.0
        assert claimed is not None and actual <= claimed * slack * (1 + 1e-3) + 1e-6, (name, module, claimed, actual)


def test_mapped_peaks_bound_the_real_node_outputs(exported_dir):
    assert_mapping_bounds(onnx.load(str(exported_dir / "model.onnx")), load_model(exported_dir)[0])


@pytest.fixture(scope="module")
def inflated(tiny_model_dir, tmp_path_factory):
    """The tiny model with its stem conv scaled 1e6x (activations far beyond FP16), exported with the legacy
    exporter (fast; its node names exercise the legacy scope mapping)."""
    model, card = load_model(tiny_model_dir)
    hot = copy.deepcopy(model)
    with torch.no_grad():
        hot.encoder.model.conv1[0].weight.mul_(1e6)
    path = tmp_path_factory.mktemp("inflated") / "model.onnx"
    export_graph(hot, path, tuple(card["input_size"]), 17, dynamo=False)
    return hot, onnx.load(str(path))


def test_audit_blocks_the_inflated_activation(inflated):
    hot, graph = inflated
    peaks = module_peaks(hot, audit_inputs(TINY_WINDOW))
    assert peaks["encoder.model.conv1.0"]["out"] > 65504
    blocked, facts = plan_blocklist(graph, peaks)
    reasons = {b["module"]: b["reason"] for b in blocked}
    assert reasons["encoder.model.conv1.0"].startswith("activation peak >")
    assert facts["unmapped"] == 0
    assert_mapping_bounds(graph, hot)  # legacy names (``/decoder/x_0_0/...`` skips ``blocks``) map right too


def test_blocking_is_what_keeps_the_inflated_graph_right(inflated):
    hot, graph = inflated
    x = audit_inputs(TINY_WINDOW)[0]
    blocked, _ = plan_blocklist(graph, module_peaks(hot, [x]))
    ref = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"]).run(["output"], {"input": x})[0]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    errors = []
    for nodes in ([], [b["node"] for b in blocked]):
        half = to_fp16(graph, nodes)
        assert [t.type.tensor_type.elem_type for t in (*half.graph.input, *half.graph.output)] == [FLOAT, FLOAT]
        out = ort.InferenceSession(half.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
            ["output"], {"input": x})[0]
        errors.append(float(np.abs(out - ref).max()) if np.isfinite(out).all() else float("inf"))
    unblocked, audited = errors
    assert unblocked > 0.1 and audited <= 2e-2, errors


def test_check_fp16_fails_on_a_broken_graph(fp16_dir, tmp_path):
    """The FP16 gate itself: a graph whose head weight was zeroed must fail the comparison."""
    broken = onnx.load(str(fp16_dir / "model.fp16.onnx"))
    head_conv = next(n for n in broken.graph.node if n.name in head_nodes(broken) and n.op_type == "Conv")
    for init in broken.graph.initializer:
        if init.name == head_conv.input[1]:
            array = onnx.numpy_helper.to_array(init)
            init.CopyFrom(onnx.numpy_helper.from_array(-array * 50, init.name))
    path = tmp_path / "broken.onnx"
    onnx.save(broken, str(path))
    with pytest.raises(ParityError, match=r"FP16 graph's denoised field differs from FP32 .*--fp16-margin"):
        check_fp16(path, fp16_dir / "model.onnx", TINY_WINDOW)


def test_convert_refuses_an_onnx_from_other_weights(exported_dir, model_copy):
    model_dir = model_copy(exported_dir)
    graph = onnx.load(str(model_dir / "model.onnx"))
    fp16_mod.set_metadata(graph, weights_sha256="0" * 64)
    onnx.save(graph, str(model_dir / "model.onnx"))
    with pytest.raises(ExportError, match=r"model.onnx was not exported from these weights.*re-export"):
        convert_fp16(model_dir / "model.onnx")
    assert not (model_dir / "model.fp16.onnx").exists()


def test_blocked_output_head_keeps_float32_output_on_either_exporter(inflated, exported_dir):
    """The converter mishandles a blocked node that produces the graph output (FP16 output, or a crash on
    legacy graphs): the head must come out float32 with no FP16 round trip before the output."""
    for graph in (inflated[1], onnx.load(str(exported_dir / "model.onnx"))):
        half = to_fp16(graph, head_nodes(graph))
        onnx.checker.check_model(half, full_check=True)
        assert half.graph.output[0].type.tensor_type.elem_type == FLOAT
        producer = {o: n for n in half.graph.node for o in n.output}
        last = producer["output"]
        assert last.op_type == "Cast" and producer[last.input[0]].op_type == "Sigmoid"  # float32 -> float32
        assert not [n for n in half.graph.node if n.op_type == "Identity"]
