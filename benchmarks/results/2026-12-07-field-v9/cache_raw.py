"""Cache one model's raw predictions (section gain applied, no output guard), in model units, for the field lines, the cases and (--synthetic) the held-out synthetic volumes: usage cache_raw.py MODEL OUT.npz [THREADS] [--synthetic]"""
import sys
from pathlib import Path
import numpy as np
import torch
from impeccable.benchmarks import field as fb
from impeccable.core.amplitude import volume_stats
from impeccable.core.model_io import ModelIO
from impeccable.core.tiling import predict_sections
from impeccable.models.checkpoint import load_model
from impeccable.train.validate import torch_runner
from impeccable.data.families import synthesize_family_pair

torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
model, card = load_model(model_dir)
io = ModelIO.from_card(card)
run = torch_runner(model.float().eval(), "cpu", None)
store = {}
def raw(key, volume, interval_ms):
    stats = volume_stats(volume)
    with torch.inference_mode():
        pred = predict_sections(io.normalize(volume, stats), run, io.window, True, 4, pad_value=io.pad_value,
                                resampling=io.resampling(interval_ms), guard=None, gain=io.section_gain)
    store[key + "/in"] = volume
    store[key + "/dt"] = np.float32(interval_ms)
    store[key + "/raw"] = pred
    np.savez(out, **store)
    print(key, flush=True)
for line in fb.load_lines():
    raw(f"line/{line.name}", line.volume, line.interval_ms)
    clean, first = fb.quiet_stretch(line.volume)
    store[f"clean/{line.name}"] = clean
    for kind in fb.NOISE_KINDS:
        raw(f"case/{line.name}/{kind}", fb.add_noise(clean, kind, 0), line.interval_ms)
if "--synthetic" in sys.argv:
    for family in ("a", "b"):
        for seed in (900001, 900002):
            for level in ("light", "strong"):
                clean, noisy = synthesize_family_pair(family, 0, seed, (8, 300, 1259), level)
                store[f"synclean/{family}/{seed}"] = clean
                raw(f"syn/{family}/{seed}/{level}", noisy, 4.0)
            raw(f"syn/{family}/{seed}/clean", clean, 4.0)
