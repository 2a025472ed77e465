"""The real UNet++ / EfficientNetV2-S architecture (random weights) through the exporter: minutes on 2 cores."""

from __future__ import annotations

import collections
import json
import time

import pytest

pytestmark = pytest.mark.slow

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def real_export(tmp_path_factory):
    from impeccable.core.card import new_card
    from impeccable.export.onnx_export import export_onnx
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("real") / "model"
    save_model_dir(build_model(new_card(name="real-architecture-random")), new_card(), model_dir)
    started = time.perf_counter()
    path = export_onnx(model_dir)
    seconds = time.perf_counter() - started
    print(f"real architecture: export + checks + parity took {seconds:.0f} s")
    return model_dir, path, seconds


def test_real_architecture_exports_clean_and_matches_pytorch(real_export):
    model_dir, path, _ = real_export
    graph = onnx.load(str(path))
    ops = collections.Counter(n.op_type for n in graph.graph.node)
    assert ops["Shape"] == 0 and ops["Pad"] == 0  # the 5 TF-SAME convs folded their padding into Conv pads
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 320, 1280]
    props = {p.key: p.value for p in graph.metadata_props}
    assert float(props["parity_max_abs"]) <= 1e-4  # ORT vs PyTorch, batch 1 and 3, random + synthetic sections
    assert path.stat().st_size < 2**31 and not list(model_dir.glob("*.data"))
    print(f"real architecture graph: {len(graph.graph.node)} nodes, {dict(ops.most_common(6))}, "
          f"parity max abs {props['parity_max_abs']}")


def test_real_architecture_fp16_audit(real_export):
    from impeccable.export.fp16 import audit_path, convert_fp16

    model_dir, path, _ = real_export
    started = time.perf_counter()
    fp16 = convert_fp16(path, model_dir)
    audit = json.loads(audit_path(fp16).read_text())
    print(f"real architecture FP16: {time.perf_counter() - started:.0f} s, peak {audit['peak']}, "
          f"{len(audit['blocked'])} node(s) in FP32, check {audit['fp16_check']}")
    assert audit["mapping"]["unmapped"] == 0
    assert audit["fp16_check"]["max_abs"] <= 2e-2
