"""Guard variants on cached raw predictions (cache_raw.py). Usage: variants.py MODEL RAW.npz [variant ...]"""
import sys
from pathlib import Path
import numpy as np
from scipy import ndimage
from impeccable.benchmarks import field as fb
from impeccable.core.amplitude import volume_stats
from impeccable.core.band_guard import guard_sections
from impeccable.core.signal_recovery import recover_sections
from impeccable.core.calibration import AmplitudeFit, inline_sums
from impeccable.core.model_io import ModelIO
from impeccable.core.card import read_card as load_card
from impeccable.data.scoring import score_volumes

io = ModelIO.from_card(load_card(Path(sys.argv[1])))
data = np.load(sys.argv[2])

def tri(x, r):
    size = (2 * r[0] + 1, 2 * r[1] + 1)
    return ndimage.uniform_filter(ndimage.uniform_filter(x, size, mode="reflect"), size, mode="reflect")

def rec(p, s, r=(5, 20), lateral=0, floor=0.05, wmax=1.0, median=0):
    out = np.array(p, dtype=np.float32, copy=True)
    for i in range(out.shape[0]):
        y = out[i].astype(np.float64)
        sig = y - np.median(y, axis=-1, keepdims=True)
        res = s[i].astype(np.float64) - y
        a, b = sig, res
        if lateral:
            a = ndimage.uniform_filter1d(sig, 2 * lateral + 1, axis=0, mode="reflect")
            b = ndimage.uniform_filter1d(res, 2 * lateral + 1, axis=0, mode="reflect")
        if median:
            a = ndimage.median_filter(sig, size=(2 * median + 1, 1), mode="reflect")
            b = ndimage.median_filter(res, size=(2 * median + 1, 1), mode="reflect")
        w = np.clip(tri(a * b, r) / (tri(sig * sig, r) + floor * np.mean(sig * sig) + 1e-30), 0, wmax)
        out[i] = (y + w * sig).astype(np.float32)
    return out

V = {
    "rec-med1": lambda p, s: guard_sections(rec(p, s, median=1), s),
    "rec-med2": lambda p, s: guard_sections(rec(p, s, median=2), s),
    "rec-med2-w05": lambda p, s: guard_sections(rec(p, s, median=2, wmax=0.5), s),
    "core": lambda p, s: guard_sections(recover_sections(p, s), s),
    "med-w05": lambda p, s: guard_sections(rec(p, s, median=2, wmax=0.5), s),
    "med-10x40": lambda p, s: guard_sections(rec(p, s, (10, 40), median=2), s),
    "med-f03": lambda p, s: guard_sections(rec(p, s, median=2, floor=0.3), s),
    "med-3x10": lambda p, s: guard_sections(rec(p, s, (3, 10), median=2), s),
    "band": lambda p, s: guard_sections(p, s),
    "rec": lambda p, s: guard_sections(rec(p, s), s),
    "rec-lat1": lambda p, s: guard_sections(rec(p, s, lateral=1), s),
    "rec-lat2": lambda p, s: guard_sections(rec(p, s, lateral=2), s),
    "rec-lat1-3x10": lambda p, s: guard_sections(rec(p, s, (3, 10), lateral=1), s),
    "rec-lat1-w05": lambda p, s: guard_sections(rec(p, s, lateral=1, wmax=0.5), s),
}
names = sys.argv[3:] or list(V)

def finish(vol, pred, v):
    stats = volume_stats(vol)
    unit = io.normalize(vol, stats)
    p = V[v](pred, unit)
    fit = AmplitudeFit.from_sums(inline_sums(vol, p, stats), stats)
    return fit.apply(vol, p, stats)

keys = sorted({k.rsplit("/", 1)[0] for k in data.files if k.endswith("/raw")})
summary = {v: {"gain": [], "beat": 0, "n": 0} for v in names}
for key in keys:
    vol, pred = data[key + "/in"], data[key + "/raw"]
    parts = key.split("/")
    if parts[0] == "line":
        for v in names:
            f = fb.damage_figures(vol, finish(vol, pred, v), 4.0)
            print(f"{key:28s} {v:14s} removed {f['removed_pct']:5.1f}% lf {f['low_freq_ratio']:.2f} maxband {f['max_band_ratio']:.2f} "
                  f"ssim {f['ssim_out_vs_in']:.3f} coh {f['lateral_coherence_removed']:.2f}", flush=True)
    elif parts[0] == "case":
        clean = data[f"clean/{parts[1]}"]
        bp = fb.bandpass_denoiser(vol, 4.0)
        b = (fb.snr_db(clean, bp), fb.ssim_vs(clean, bp))
        inp = fb.snr_db(clean, vol)
        line = f"{key:28s} in {inp:+5.1f} bp {b[0]:+5.1f}/{b[1]:.3f} |"
        for v in names:
            o = finish(vol, pred, v)
            m = (fb.snr_db(clean, o), fb.ssim_vs(clean, o))
            summary[v]["gain"].append(m[0] - inp); summary[v]["n"] += 1
            summary[v]["beat"] += int(m[0] > b[0] and m[1] > b[1])
            line += f" {v} {m[0]:+5.1f}/{m[1]:.3f}"
        print(line, flush=True)
    elif parts[0] == "syn":
        clean = data[f"synclean/{parts[1]}/{parts[2]}"]
        line = f"{key:28s} noisy {score_volumes(clean, vol):.4f} |"
        for v in names:
            line += f" {v} {score_volumes(clean, finish(vol, pred, v)):.4f}"
        print(line, flush=True)
for v in names:
    if summary[v]["n"]:
        print(f"{v:14s} mean gain {np.mean(summary[v]['gain']):+.2f} dB, beats band-pass {summary[v]['beat']}/{summary[v]['n']}")
