"""Is the removed strip at traces 250-320 of Penobscot + family-a the geology's or the tiles'? Shift the section."""
import sys
from pathlib import Path
import numpy as np, torch
from impeccable.benchmarks import field as fb
torch.set_num_threads(1)
line = [l for l in fb.load_lines() if l.name == "penobscot"][0]
clean, _ = fb.quiet_stretch(line.volume)
noisy = fb.add_noise(clean, "family-a", 0)
den = fb.reference_denoiser(Path(sys.argv[1]))
for shift in (0, 40, 100):
    x = noisy[:, shift:]
    r = x - den(x, line.interval_ms)
    e = (r[0] ** 2).mean(axis=1)  # removed energy per trace
    prof = [float(e[max(0, a - shift):max(0, b - shift)].mean()) if b - shift > 0 else float('nan')
            for a, b in ((150, 230), (230, 260), (260, 290), (290, 320), (320, 360), (360, 440), (440, 520))]
    print(f"shift {shift:3d} traces (tiles now start at original traces {[s + shift for s in (0, 256, 280)]}):",
          " ".join(f"{v:.3g}" for v in prof), f"snr {fb.snr_db(clean[:, shift:], x - r):+.2f}", flush=True)
print("columns: removed energy per trace over original traces 150-230 230-260 260-290 290-320 320-360 360-440 440-520")
