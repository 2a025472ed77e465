"""v12 with the card's removal floor changed: Penobscot fed alone, and its family-a and swell cases (issue 25's lost ones)."""
import json, shutil, sys
from pathlib import Path
import numpy as np, torch
from impeccable.benchmarks import field as fb
torch.set_num_threads(1)
src = Path("runs/v12")
line = [l for l in fb.load_lines() if l.name == "penobscot"][0]
clean, _ = fb.quiet_stretch(line.volume)
cases = {k: fb.add_noise(clean, k, 0) for k in ("family-a", "swell", "linear")}
for db in [float(a) for a in sys.argv[1:]]:
    m = Path(f"runs/floor/v12_{db:g}")
    if not m.exists():
        m.mkdir()
        for f in ("model.safetensors",):
            (m / f).symlink_to(src / f)
        card = json.loads((src / "model.json").read_text())
        def patch(d):
            for k, v in d.items():
                if k == "removal_floor_db":
                    d[k] = db
                elif isinstance(v, dict):
                    patch(v)
        patch(card)
        (m / "model.json").write_text(json.dumps(card, indent=1))
    den = fb.reference_denoiser(m)
    out = den(line.volume, line.interval_ms)
    fig = fb.damage_figures(line.volume, out, line.interval_ms)
    row = f"floor {db:+.0f} dB: penobscot alone removed {fig['removed_pct']:.1f} % SSIM {fig['ssim_out_vs_in']:.3f};"
    for k, noisy in cases.items():
        est = den(noisy, line.interval_ms)
        row += f" {k} {fb.snr_db(clean, est):+.1f} dB {fb.ssim_vs(clean, est):.3f};"
    print(row, flush=True)
