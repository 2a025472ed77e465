"""The v12 INT8 graph the export wrote, outside its gate: held-out volumes the gate never saw (seeds 900005-900008,
both families, moderate and strong), each engine's INT8 against the same engine's float32, OpenVINO's INT8 also
with its float islands in bf16 (beside OpenVINO bf16 on the float graph); the challenge score of the pipeline's
output (tiles, flip TTA, the card's padding, section gain and output guard), the loss at the float32 output's
uint8 range (what the graph changes inside the sections), and engine time per call of 4 images.

    python outside_gate.py MODEL_DIR_WITH_INT8 OUT.json            # outside_gate.*
    GATE=1 python outside_gate.py MODEL_DIR_WITH_INT8 OUT.json     # gate_bf16_islands.*
"""
import json, os, statistics, sys, time
from pathlib import Path
import numpy as np
import onnx
import openvino as ov
from impeccable.core.model_io import ModelIO
from impeccable.data.scoring import score_volumes, score_scoring_sections
from impeccable.export import int8 as q
from impeccable.export.onnx_export import metadata
from impeccable.core.tiling import predict_sections

model = Path(sys.argv[1])
fp32, int8 = model / "model.onnx", model / "model.int8.onnx"
io = ModelIO.from_card(json.loads(metadata(onnx.load(str(fp32)))["card"]))
core = ov.Core()


def openvino(path, hint):
    req = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
                             ).create_infer_request()
    return lambda a: req.infer({0: np.ascontiguousarray(a)})[0].copy()


variants = {"openvino fp32": openvino(fp32, "f32"), "openvino bf16": openvino(fp32, "bf16"),
            "openvino int8 (f32 islands)": openvino(int8, "f32"), "openvino int8 (bf16 islands)": openvino(int8, "bf16"),
            "onnxruntime fp32": q._runner(fp32), "onnxruntime int8": q._runner(int8)}
reference = {"openvino": "openvino fp32", "onnxruntime": "onnxruntime fp32"}
x = np.random.default_rng(0).random((4, 1, *io.window), dtype=np.float32)
rows = {}
if os.environ.get("GATE"):  # the export gate's own four volumes, OpenVINO with bf16 islands beside its floats
    variants = {k: v for k, v in variants.items()
                if k in ("openvino fp32", "openvino bf16", "openvino int8 (bf16 islands)")}
for name, run in variants.items():
    run(x)
    times = []
    for _ in range(3):
        t0 = time.perf_counter(); run(x); times.append(time.perf_counter() - t0)
    rows[name] = {"p50_ms_per_4_images": 1000 * statistics.median(times), "volumes": []}
    print(f"{name:30s} {rows[name]['p50_ms_per_4_images']:7.0f} ms per 4 images", flush=True)
if os.environ.get("GATE"):  # seeds 900001-900004 as the gate draws them
    seeds = [("a", "moderate", 900001), ("b", "moderate", 900002), ("a", "strong", 900003), ("b", "strong", 900004)]
else:
    seeds = [(f, l, s) for s in (900005, 900006) for f in "ab" for l in ("moderate", "strong")]
for fam, level, seed in seeds:
    from impeccable.core.amplitude import volume_stats
    from impeccable.data.families import synthesize_family_pair
    clean, noisy = synthesize_family_pair(fam, 0, seed, (8, 300, 1259), level)
    sections = io.normalize(noisy, volume_stats(noisy))
    outs = {}
    for name, run in variants.items():
        outs[name] = predict_sections(sections, run, io.window, tta=True, batch=4, pad_value=io.pad_value,
                                      guard=io.output_guard, gain=io.section_gain)
    crange = (float(clean.min()), float(clean.max()))
    line = [f"{fam} {level} {seed}:"]
    for name, out in outs.items():
        ref = outs[reference[name.split()[0]]]
        own = score_volumes(clean, out)
        at_ref = score_scoring_sections(clean, out, crange, (float(ref.min()), float(ref.max())))
        base = score_volumes(clean, ref)
        rows[name]["volumes"].append({"family": fam, "level": level, "seed": seed, "score": own,
                                      "loss": base - own, "loss_at_reference_range": base - at_ref,
                                      "range": [float(out.min()), float(out.max())]})
        line.append(f"{name} {own:.4f} ({base - own:+.4f}, at ref range {base - at_ref:+.4f})")
    print("\n   ".join(line), flush=True)
for name, r in rows.items():
    r["worst_loss"] = max(v["loss"] for v in r["volumes"])
    r["worst_loss_at_reference_range"] = max(v["loss_at_reference_range"] for v in r["volumes"])
    print(f"{name:30s} worst loss {r['worst_loss']:+.4f} (at the reference's range {r['worst_loss_at_reference_range']:+.4f})")
json.dump(rows, open(sys.argv[2], "w"), indent=1)
