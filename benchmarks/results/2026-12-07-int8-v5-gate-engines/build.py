"""Rebuild v5's gate-passed INT8 graph without the search: percentile calibration, float groups as session 11's audit."""
import json, sys, tempfile
from pathlib import Path
import onnx
from onnxruntime.quantization.shape_inference import quant_pre_process
from impeccable.core.model_io import ModelIO
from impeccable.export import int8 as q
from impeccable.export.onnx_export import metadata

src = Path(sys.argv[1]); out = Path(sys.argv[2])
graph = onnx.load(str(src))
io = ModelIO.from_card(json.loads(metadata(graph)["card"]))
groups = q.node_groups(graph)
floated = ["decoder.x_0", "encoder.blocks.0", "encoder.stem"]
float_nodes = [n for n, g in groups.items() if g == "head" or g in floated]
calib = q.synthetic_calibration(io.window, q.DEFAULT_SECTIONS, io=io)
work = out.parent
pre = work / "pre.onnx"
quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
q.quantize(pre, out, work / "percentile.json", float_nodes, q.SectionReader(calib), "percentile")
print("wrote", out, len(float_nodes), "float nodes")
