"""Validation volume syn-0003 (family b, held out from v11's training) denoised whole, scored whole."""
import sys
from pathlib import Path
import numpy as np, torch
from impeccable.benchmarks import field as fb
from impeccable.data.scoring import score_volumes
torch.set_num_threads(1)
model = Path(sys.argv[1])
d = Path("runs/v11/synthetic")  # the run's synthetic cache
for vid in sys.argv[2:]:
    noisy = np.load(next(d.glob(f"{vid}-*-noisy.npy")))
    clean = np.load(next(d.glob(f"{vid}-*-clean.npy")))
    den = fb.reference_denoiser(model)(noisy, 4.0)
    print(vid, model.name, f"noisy {score_volumes(clean, noisy):.4f} -> {score_volumes(clean, den):.4f}; clean-in "
          f"{score_volumes(clean, fb.reference_denoiser(model)(clean, 4.0)):.4f}", flush=True)
