"""v11's raw network on two sections of four training volumes: MSE, the leak term, the noise. Usage: leakprobe.py (from the repo root, runs/v11 present)."""
import numpy as np, torch
from pathlib import Path
from impeccable.core.amplitude import ROBUST, volume_stats
from impeccable.data.synth_field import in_input_units
from impeccable.models.checkpoint import load_model
from impeccable.train.losses import signal_leakage
import torch.nn.functional as F
torch.set_num_threads(2)
d = Path("runs/v11/synthetic")
model, card = load_model(Path("runs/v11"))
for vid in ["syn-0003", "syn-0001", "syn-0010", "syn-0020"]:
    noisy = np.load(next(d.glob(f"{vid}-*-noisy.npy"))); clean = np.load(next(d.glob(f"{vid}-*-clean.npy")))
    st = volume_stats(noisy)
    xs, ys = [], []
    for i in (30, 90):
        n, c = noisy[i], clean[i]
        cu, _ = in_input_units(n, c)
        off, g = ROBUST.affine(st)
        xs.append(ROBUST.normalize(n, st)[:, :1248]); ys.append(((cu - off) * g + 0.5)[:, :1248])
    x = torch.from_numpy(np.stack(xs)[:, None].astype(np.float32)); y = torch.from_numpy(np.stack(ys)[:, None].astype(np.float32))
    with torch.no_grad():
        p = model(x)
    mse = float(F.mse_loss(p, y)); leak = float(signal_leakage(p, x, y, 0.5)); noise = float(F.mse_loss(x, y))
    print(vid, f"noise {noise:.2e} mse {mse:.2e} leak {leak:.2e} signal {float(((y-0.5)**2).mean()):.2e} leak_if_identity {float(signal_leakage(x, x, y, 0.5)):.1e}", flush=True)
