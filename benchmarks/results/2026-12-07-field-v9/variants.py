"""Output-guard variants (removal floors) on cached raw predictions (cache_raw.py). Usage: [PREFIX=line|case|syn] variants.py MODEL RAW.npz [variant ...]"""
import sys
from pathlib import Path
import numpy as np
from impeccable.benchmarks import field as fb
from impeccable.core.amplitude import volume_stats
from impeccable.core.band_guard import guard_sections
from impeccable.core.signal_recovery import recover_sections
from impeccable.core.removal_floor import floor_sections
from impeccable.core.calibration import AmplitudeFit, inline_sums
from impeccable.core.model_io import ModelIO
from impeccable.core.card import read_card as load_card
from impeccable.data.scoring import score_volumes

io = ModelIO.from_card(load_card(Path(sys.argv[1])))
data = np.load(sys.argv[2])

def core(p, s):
    return guard_sections(recover_sections(p, s), s)

V = {"core": core}
for db in (-20, -16, -13, -10, -7):
    V[f"floor{db}"] = (lambda d: lambda p, s: guard_sections(floor_sections(recover_sections(p, s), s, d), s))(db)
names = sys.argv[3:] or list(V)

def finish(vol, pred, v):
    stats = volume_stats(vol)
    unit = io.normalize(vol, stats)
    p = V[v](pred, unit)
    fit = AmplitudeFit.from_sums(inline_sums(vol, p, stats), stats)
    return fit.apply(vol, p, stats)

import os
keys = [k.rsplit("/", 1)[0] for k in data.files if k.endswith("/raw") and k.startswith(os.environ.get("PREFIX", ""))]
summary = {v: {"gain": [], "beat": 0, "n": 0, "syn": [], "clean": []} for v in names}
for key in keys:
    vol, pred = data[key + "/in"], data[key + "/raw"]
    dt = float(data[key + "/dt"]) if key + "/dt" in data.files else 4.0
    parts = key.split("/")
    if parts[0] == "line":
        for v in names:
            f = fb.damage_figures(vol, finish(vol, pred, v), dt)
            print(f"{key:28s} {v:10s} removed {f['removed_pct']:5.1f}% lf {f['low_freq_ratio']:.2f} maxband {f['max_band_ratio']:.2f} "
                  f"ssim {f['ssim_out_vs_in']:.3f} coh {f['lateral_coherence_removed']:.2f}", flush=True)
    elif parts[0] == "case":
        clean = data[f"clean/{parts[1]}"]
        bp = fb.bandpass_denoiser(vol, dt)
        b = (fb.snr_db(clean, bp), fb.ssim_vs(clean, bp))
        inp = fb.snr_db(clean, vol)
        line = f"{key:30s} in {inp:+5.1f} bp {b[0]:+5.1f}/{b[1]:.3f} |"
        for v in names:
            o = finish(vol, pred, v)
            m = (fb.snr_db(clean, o), fb.ssim_vs(clean, o))
            summary[v]["gain"].append(m[0] - inp); summary[v]["n"] += 1
            ok = m[0] > b[0] and m[1] > b[1]
            summary[v]["beat"] += int(ok)
            line += f" {v} {m[0]:+5.1f}/{m[1]:.3f}{'' if ok else '*'}"
        print(line, flush=True)
    elif parts[0] == "syn":
        clean = data[f"synclean/{parts[1]}/{parts[2]}"]
        line = f"{key:28s} noisy {score_volumes(clean, vol):.4f} |"
        for v in names:
            sc = score_volumes(clean, finish(vol, pred, v))
            (summary[v]["clean"] if parts[3] == "clean" else summary[v]["syn"]).append(sc)
            line += f" {v} {sc:.4f}"
        print(line, flush=True)
for v in names:
    s = summary[v]
    if s["n"]:
        print(f"{v:10s} mean gain {np.mean(s['gain']):+.2f} dB, beats band-pass {s['beat']}/{s['n']}"
              + (f"; synthetic mean {np.mean(s['syn']):.4f}, clean-in min {min(s['clean']):.4f}" if s['syn'] else ""))
