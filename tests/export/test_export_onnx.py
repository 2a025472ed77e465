"""model.onnx: symbolic batch that really works, static window, no run-time shapes, metadata, parity gate."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from conftest import TINY_WINDOW  # noqa: E402

from impeccable.core.card import read_card  # noqa: E402
from impeccable.core.errors import ExportError, ParityError  # noqa: E402
from impeccable.export import onnx_export  # noqa: E402
from impeccable.export.onnx_export import check_graph, export_onnx, metadata, synthetic_sections  # noqa: E402
from impeccable.models.checkpoint import load_model  # noqa: E402


@pytest.fixture(scope="module")
def graph(exported_dir):
    return onnx.load(str(exported_dir / "model.onnx"))


def test_io_batch_is_symbolic_and_window_static(graph):
    for tensor in (graph.graph.input[0], graph.graph.output[0]):
        dims = tensor.type.tensor_type.shape.dim
        assert dims[0].dim_param and not dims[0].HasField("dim_value")
        assert [d.dim_value for d in dims[1:]] == [1, *TINY_WINDOW]
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [graph.graph.input[0].name, graph.graph.output[0].name] == ["input", "output"]


def test_no_shape_ops_and_constant_pads(graph):
    ops = [n.op_type for n in graph.graph.node]
    assert "Shape" not in ops
    constants = {i.name for i in graph.graph.initializer}
    assert all(n.input[1] in constants for n in graph.graph.node if n.op_type == "Pad")
    check_graph(graph, TINY_WINDOW)  # the exporter's own gate agrees
    onnx.checker.check_model(graph, full_check=True)


def test_single_file(exported_dir):
    assert not list(exported_dir.glob("*.data"))
    assert not list(exported_dir.glob(".export-*"))  # no temporary leftovers


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_dynamic_batch_really_runs_and_matches_torch(exported_dir, batch):
    model, _ = load_model(exported_dir)
    session = ort.InferenceSession(str(exported_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(batch).random((batch, 1, *TINY_WINDOW), dtype=np.float32)
    out = session.run(["output"], {"input": x})[0]
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == (batch, 1, *TINY_WINDOW)
    assert float(np.abs(out - ref).max()) <= 1e-4
    assert 0.0 <= out.min() and out.max() <= 1.0  # the sigmoid is in the graph


def test_metadata_round_trip(exported_dir, graph):
    props = metadata(graph)
    card = read_card(exported_dir)
    assert json.loads(props["card"]) == card
    assert props["weights_sha256"] == card["weights_sha256"]
    assert props["producer"] == "impeccable-export" and props["exporter"] == "dynamo"
    assert props["opset"] == str(onnx_export.DEFAULT_OPSET) and float(props["parity_max_abs"]) <= 1e-4
    # the runtime reads the same props without onnx
    from impeccable.core.onnx_meta import onnx_metadata

    assert onnx_metadata(exported_dir / "model.onnx") == props


def test_synthetic_sections_are_normalized_and_padded():
    x = synthetic_sections(TINY_WINDOW, 3, seed=0)
    assert x.shape == (3, 1, *TINY_WINDOW) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.01
    big = synthetic_sections((320, 1280), 1, seed=0)
    assert np.all(big[:, :, 300:, :] == 0) and np.all(big[:, :, :, 1259:] == 0)  # challenge section, padded


def test_perturbed_weight_fails_parity_and_leaves_nothing(tiny_model_dir, model_copy, monkeypatch):
    """The exported graph gets a perturbed weight, the PyTorch reference does not: the export must refuse."""
    model_dir = model_copy(tiny_model_dir)
    real_export = onnx_export.export_graph

    def export_perturbed(model, path, window, opset, dynamo):
        twin = copy.deepcopy(model)
        with torch.no_grad():
            twin.segmentation_head[0].weight.mul_(1.5)
        real_export(twin, path, window, opset, dynamo)

    monkeypatch.setattr(onnx_export, "export_graph", export_perturbed)
    # the tiny encoder has no SAME padding to fold; this keeps the test free of onnx-graphsurgeon
    monkeypatch.setattr(onnx_export, "fold_constants", lambda graph: graph)
    with pytest.raises(ParityError, match=r"differs from PyTorch \| received max abs .* expected <= 0.0001"):
        export_onnx(model_dir, dynamo=False)  # the legacy exporter: same gate, a fraction of the time
    assert not (model_dir / "model.onnx").exists()
    assert not list(model_dir.glob(".export-*"))


def _io(shape, name="input", elem=1):
    return onnx.helper.make_tensor_value_info(name, elem, shape)


@pytest.mark.parametrize(("inputs", "nodes", "match"), [
    ([_io([2, 1, 64, 128])], [], "batch dimension is not symbolic"),
    ([_io(["b", 1, 64, 96])], [], r"input is not 1 x 64 x 128"),
    ([_io(["b", 1, 64, 128], elem=10)], [], "input is not float32"),
    ([_io(["b", 1, 64, 128], name="x")], [], "not named as the runtime expects"),
    ([_io(["b", 1, 64, 128])], [onnx.helper.make_node("Shape", ["input"], ["s"])], "computes shapes at run time"),
    ([_io(["b", 1, 64, 128])], [onnx.helper.make_node("Pad", ["input", "s"], ["p"])], "computed at run time"),
])
def test_check_graph_refuses(inputs, nodes, match):
    out = _io(["b", 1, 64, 128], name="output")
    model = onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", inputs, [out]))
    with pytest.raises(ExportError, match=match):
        check_graph(model, TINY_WINDOW)
