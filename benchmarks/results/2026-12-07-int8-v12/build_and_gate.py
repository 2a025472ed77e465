"""v12's INT8 graph without the 2-hour search: percentile calibration on the export's synthetic sections (now as
the network sees them: section gain applied), v5's float groups (stem, first stage, decoder.x_0, head), then the
export's gate volumes (seeds 900001-4, 8 x 300 x 1259) through ONNX Runtime and OpenVINO, each engine against its
own float32 run, with the card's section gain and output guard (the export's own functions).

    python build_and_gate.py models/unetpp-v2s-synth/model.onnx WORKDIR
"""
import json, sys, time
from pathlib import Path
import onnx
from onnxruntime.quantization.shape_inference import quant_pre_process
from impeccable.core.model_io import ModelIO
from impeccable.export import int8 as q
from impeccable.export.onnx_export import metadata

src, work = Path(sys.argv[1]), Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
out = work / "model.int8.onnx"
graph = onnx.load(str(src))
io = ModelIO.from_card(json.loads(metadata(graph)["card"]))
groups = q.node_groups(graph)
floated = ["decoder.x_0", "encoder.blocks.0", "encoder.stem"]
float_nodes = [n for n, g in groups.items() if g == "head" or g in floated]
t0 = time.time()
calib = q.synthetic_calibration(io.window, q.DEFAULT_SECTIONS, io=io)
pre = work / "pre.onnx"
quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
q.quantize(pre, out, work / "percentile.json", float_nodes, q.SectionReader(calib), "percentile")
print(f"wrote {out}: {len(float_nodes)} float nodes, {len(calib)} calibration sections, {time.time() - t0:.0f} s",
      flush=True)
flops = q.conv_flops(onnx.load(str(src)))
vols = q.scoring_volumes(q.HELD_OUT_SEED, 4, (8, 300, 1259), io)
for engine in ("onnxruntime", "openvino"):
    ref, t_ref = q.pipeline_scores(src, vols, io.window, 2, io, engine=engine)
    got, t_got = q.pipeline_scores(out, vols, io.window, 2, io, engine=engine)
    for v, r, g in zip(vols, ref, got):
        print(f"{engine:12s} seed {v.seed} {v.family} {v.level:8s} fp32 {r:.4f} int8 {g:.4f} loss {r - g:+.4f}", flush=True)
    print(f"{engine:12s} graph seconds: fp32 {t_ref:.1f}, int8 {t_got:.1f} ({t_ref / t_got:.2f}x)", flush=True)
