"""The export's gate volumes (seeds 900001-4, 8 x 300 x 1259) through ONNX Runtime and OpenVINO: v5's graph."""
import json, sys
from pathlib import Path
import onnx
from impeccable.core.model_io import ModelIO
from impeccable.export import int8 as q
from impeccable.export.onnx_export import metadata
fp32, int8 = Path(sys.argv[1]), Path(sys.argv[2])
io = ModelIO.from_card(json.loads(metadata(onnx.load(str(fp32)))["card"]))
vols = q.scoring_volumes(q.HELD_OUT_SEED, 4, (8, 300, 1259), io)
for engine in ("onnxruntime", "openvino"):
    ref, _ = q.pipeline_scores(fp32, vols, io.window, 2, io.pad_value, engine=engine)
    got, _ = q.pipeline_scores(int8, vols, io.window, 2, io.pad_value, engine=engine)
    for v, r, g in zip(vols, ref, got):
        print(f"{engine:12s} seed {v.seed} {v.family} {v.level:8s} fp32 {r:.4f} int8 {g:.4f} loss {r - g:+.4f}", flush=True)
