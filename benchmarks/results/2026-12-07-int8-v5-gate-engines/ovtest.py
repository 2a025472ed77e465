"""OpenVINO INT8 with float islands in f32 vs bf16, beside OpenVINO bf16 and fp32 on the float graph (v5):
engine time per call (4 images, 320 x 1280) and the gate's measure on held-out volumes outside the gate."""
import json, statistics, sys, time
from pathlib import Path
import numpy as np
import openvino as ov
import onnx
from impeccable.core.model_io import ModelIO
from impeccable.core.amplitude import volume_stats
from impeccable.core.tiling import predict_sections
from impeccable.data.families import synthesize_family_pair
from impeccable.data.scoring import score_volumes
from impeccable.export.onnx_export import metadata

fp32, int8 = Path(sys.argv[1]), Path(sys.argv[2])
io = ModelIO.from_card(json.loads(metadata(onnx.load(str(fp32)))["card"]))
core = ov.Core()
variants = {"fp32": (fp32, "f32"), "bf16": (fp32, "bf16"), "int8/f32-islands": (int8, "f32"),
            "int8/bf16-islands": (int8, "bf16")}
vols = []
for fam, seed, level in (("b", 900001, "strong"), ("a", 900001, "strong"), ("b", 900002, "strong")):
    clean, noisy = synthesize_family_pair(fam, 0, seed, (8, 300, 1259), level)
    vols.append((f"{fam} {level} {seed}", clean, io.normalize(noisy, volume_stats(noisy))))
x = np.random.default_rng(0).random((4, 1, *io.window), dtype=np.float32)
rows = {}
for name, (path, hint) in variants.items():
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                     "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    run = lambda a: req.infer({0: np.ascontiguousarray(a)})[0].copy()
    run(x)
    times = []
    for _ in range(5):
        t0 = time.perf_counter(); run(x); times.append(time.perf_counter() - t0)
    scores = [score_volumes(c, predict_sections(s, run, io.window, tta=True, batch=4, pad_value=io.pad_value))
              for _, c, s in vols]
    rows[name] = {"p50_ms_per_4_images": 1000 * statistics.median(times), "scores": scores}
    print(f"{name:20s} p50 {rows[name]['p50_ms_per_4_images']:7.0f} ms / 4 images   " +
          "  ".join(f"{v[0]} {s:.4f}" for v, s in zip(vols, scores)), flush=True)
ref = rows["fp32"]["scores"]
for name, r in rows.items():
    print(f"{name:20s} speed vs fp32 {rows['fp32']['p50_ms_per_4_images'] / r['p50_ms_per_4_images']:.2f}x  "
          f"vs bf16 {rows['bf16']['p50_ms_per_4_images'] / r['p50_ms_per_4_images']:.2f}x  worst loss "
          f"{max(a - b for a, b in zip(ref, r['scores'])):+.4f}")
json.dump(rows, open(sys.argv[3], "w"), indent=1)
