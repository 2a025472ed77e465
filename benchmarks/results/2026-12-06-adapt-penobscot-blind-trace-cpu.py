"""One-off: blind-trace adaptation (5 min) on the same random+erratic line; adapted model scored on held-out traces."""
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
from impeccable.benchmarks import adapt as b
from impeccable.runtime.volumes import open_reader
from impeccable.train.adapt import AdaptConfig, adapt
from impeccable.models import DEFAULT_MODEL_DIR
r = open_reader(b.FIELD, segy=b.SEGY); clean = r.read(); r.close()
noisy = b.add_noise(clean, "random+erratic", 0.0, 0.04, 4.0, 2026)
out = {}
with tempfile.TemporaryDirectory(prefix="adapt-bt-") as tmp:
    tmp = Path(tmp); b.write_segy(tmp / "noisy.sgy", noisy)
    t0 = time.perf_counter()
    res = adapt(AdaptConfig(out=Path("/tmp/adapt_bench/keep/bt"), adapt=tmp / "noisy.sgy", iline_byte=189, xline_byte=193,
                            holdout=0.25, max_minutes=float(sys.argv[1]), steps_per_epoch=int(sys.argv[2]), mask="blind-trace",
                            synthetic_dir=tmp / "synthetic", progress=False, val_volumes=0))
    wall = time.perf_counter() - t0
held = (slice(225, 375), 0)
y = b.denoise(noisy, Path("/tmp/adapt_bench/keep/bt"))
out = {"mask": "blind-trace", "steps": res.step, "stopped": res.stopped, "adapt_wall_s": round(wall, 1),
       "snr_db": b.snr_db(clean[held], y[held]), "ssim": b.ssim(clean[held], y[held]), "qc": res.qc}
Path("/tmp/adapt_bench/bt.json").write_text(json.dumps(out, indent=1))
print(json.dumps({k: v for k, v in out.items() if k != "qc"}))
