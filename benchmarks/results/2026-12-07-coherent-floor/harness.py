"""Field benchmark on v12 with the network's outputs cached on disk, so output-guard variants cost no inference.

python harness.py VARIANT [seeds]   (VARIANT: a name in variants.py; MODEL=DIR picks the model directory)
"""
import hashlib, json, sys, time
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(2)
import impeccable.train.validate as val
import impeccable.core.output_guard as og
from impeccable.benchmarks import field as fb

CACHE = Path("/work/runs/fexp/cache")
_orig_runner = val.torch_runner

def _key(a):
    return hashlib.sha1(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()).hexdigest()

def cached_runner(model, device="cpu", autocast_dtype=None):
    inner = _orig_runner(model, device, autocast_dtype)
    def run_batch(images):
        f = CACHE / (_key(images) + ".npy")
        if f.exists():
            return np.load(f)
        out = inner(images)
        np.save(f, out)
        return out
    return run_batch
val.torch_runner = cached_runner

def memo(fn, tag):
    def g(volume, interval_ms):
        f = CACHE / f"{tag}-{_key(volume)}-{interval_ms:g}.npy"
        if f.exists():
            return np.load(f)
        out = fn(volume, interval_ms)
        np.save(f, out)
        return out
    return g
fb.bandpass_denoiser = memo(fb.bandpass_denoiser, "bp")
fb.fx_denoiser = memo(fb.fx_denoiser, "fx")
fb.picture = lambda *a, **k: None

sys.path.insert(0, "/work/runs/fexp")
import variants
name = sys.argv[1]
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
og.floor_sections = getattr(variants, name)
import os
den = fb.reference_denoiser(Path(os.environ.get("MODEL", "/work/runs/v12")))  # MODEL=DIR: another card (session 19)
t0 = time.time()
res = fb.run(den, fb.DEFAULT_FIELD, Path(f"/work/runs/fexp/out-{name}-{seeds}"), seeds=seeds, log=lambda s: print(s, flush=True))
Path(f"/work/runs/fexp/{name}-{seeds}.json").write_text(json.dumps(res, indent=1))
s = res["summary"]
lost = [f"{c['line']}/{c['noise']}/{c['seed']}" for c in res["cases"]
        if not (c["model"]["snr_db"] > c["bandpass"]["snr_db"] and c["model"]["ssim"] > c["bandpass"]["ssim"])]
print(f"SUMMARY {name}: mean gain {s['mean_snr_gain_db']:+.3f} dB, beats bp {s['beats_bandpass_snr_and_ssim']}/{s['cases']}, lost {lost}; {time.time()-t0:.0f}s")
