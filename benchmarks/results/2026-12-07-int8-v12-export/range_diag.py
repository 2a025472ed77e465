"""Where the gate's per-volume INT8 loss comes from: each held-out volume's challenge score with the INT8 output
scaled to uint8 by its own min and max (the challenge's rule) and by the float32 output's, its range, and the rms
of INT8 - fp32 over the fp32 output's std. Min-max ranges (the export's calibration), the given groups in float.

    MODEL=models/unetpp-v2s-synth python range_diag.py decoder.x_0                     # range_diag.log
    SCALE=1.3 ENGINES=onnxruntime python range_diag.py decoder.x_0                     # range_diag-x1.3.log
"""
import json, os, sys, time
from pathlib import Path
import numpy as np, onnx
from onnxruntime.quantization.shape_inference import quant_pre_process
from impeccable.export import int8 as q
from impeccable.export.onnx_export import metadata
from impeccable.core.model_io import ModelIO
from impeccable.core.tiling import predict_sections
from impeccable.data.scoring import score_volumes, score_scoring_sections

src = Path(os.environ.get("MODEL", "models/unetpp-v2s-synth")) / "model.onnx"
work = Path(os.environ.get("WORK", "int8diag")); work.mkdir(exist_ok=True)
io = ModelIO.from_card(json.loads(metadata(onnx.load(str(src)))["card"]))
window = io.window
pre = work / "pre.onnx"
if not pre.exists():
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
graph = onnx.load(str(src))
groups = q.node_groups(graph)
floated = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else []
head = [n for n, g in groups.items() if g == "head"]
fl = head + [n for n, g in groups.items() if g in floated]
cand = work / ("int8-" + ("_".join(floated) or "none") + ".onnx")
import os
scale = float(os.environ.get("SCALE", "1"))
cache = work / "minmax.json"
if scale != 1:
    d = json.loads(cache.read_text())
    for t in d["data"].values():
        for k in ("lowest", "highest"):
            t[k]["data"] = [x * scale for x in t[k]["data"]]
    cache = work / f"minmax-x{scale}.json"
    cache.write_text(json.dumps(d))
    cand = cand.with_name(cand.stem + f"-x{scale}.onnx")
if not cand.exists():
    reader = None if cache.exists() else q.SectionReader(q.synthetic_calibration(window, q.DEFAULT_SECTIONS, io=io))
    q.quantize(pre, cand, cache, fl, reader, "minmax")
vols = q.scoring_volumes(q.HELD_OUT_SEED, 4, (8, 300, 1259), io)
for engine in os.environ.get("ENGINES", "onnxruntime,openvino").split(","):
    f32, i8 = q._runner(src, engine), q._runner(cand, engine)
    for v in vols:
        kw = dict(tta=True, batch=4, pad_value=io.pad_value, guard=io.output_guard, gain=io.section_gain)
        a = predict_sections(v.sections, f32, window, **kw)
        b = predict_sections(v.sections, i8, window, **kw)
        rng = (float(a.min()), float(a.max()))
        own = score_volumes(v.clean, a), score_volumes(v.clean, b)
        fixed = score_scoring_sections(v.clean, b, (float(v.clean.min()), float(v.clean.max())), rng)
        rel = float(np.sqrt(np.mean((a - b) ** 2)) / np.std(a))
        print(f"{engine} {v.seed} {v.family} {v.level}: fp32 {own[0]:.4f} int8 {own[1]:.4f} loss {own[0]-own[1]:+.4f} | "
              f"int8 on fp32 range loss {own[0]-fixed:+.4f} | range fp32 [{rng[0]:.3f},{rng[1]:.3f}] int8 "
              f"[{b.min():.3f},{b.max():.3f}] | rms diff/std {rel:.4f}", flush=True)
