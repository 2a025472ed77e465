"""Held-out synthetic volumes through the runtime's math (benchmarks.field.reference_denoiser: section gain, output
guard, amplitude fit, flip TTA): families a and b, seeds 900001-2, light and strong noise, and each clean volume fed
back (clean-in). Usage: synthetic.py MODEL [THREADS]"""
import sys
from pathlib import Path

import torch

from impeccable.benchmarks import field as fb
from impeccable.data.families import synthesize_family_pair
from impeccable.data.scoring import score_volumes

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
denoise = fb.reference_denoiser(Path(sys.argv[1]))
for family in ("a", "b"):
    for seed in (900001, 900002):
        for level in ("light", "strong"):
            clean, noisy = synthesize_family_pair(family, 0, seed, (8, 300, 1259), level)
            print(f"{family} {seed} {level:6s} noisy {score_volumes(clean, noisy):.4f} -> denoised "
                  f"{score_volumes(clean, denoise(noisy, 4.0)):.4f}", flush=True)
        print(f"{family} {seed} clean-in {score_volumes(clean, denoise(clean, 4.0)):.4f}", flush=True)
