"""input | output | removed (one clip per section) for three stack-look sections with light noise, the shipped card."""
import sys, os; sys.argv = ["x", "conf", "0"]
src = open("/work/runs/fexp/stacklook.py").read().split("rows = []")[0]
exec(src)
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
from impeccable.data import synth_field as sf
fig, ax = plt.subplots(3, 3, figsize=(13, 14))
for row, seed in zip(ax, (1, 6, 10)):
    clean = section(1000 + seed)
    rng = np.random.default_rng(seed)
    noisy = clean + sf._band_noise(clean.shape[1:], rng, 0.04, 0.24)[None] * np.float32(0.3 * clean.std())
    out = den(noisy, 4.0); c = np.percentile(np.abs(noisy), 99)
    for a, im, t in zip(row, (noisy[0], out[0], (noisy - out)[0]), ("input (light noise)", "output", "removed")):
        a.imshow(im.T, cmap="gray", vmin=-c, vmax=c, aspect="auto"); a.set_title(f"section {1000 + seed}: {t}")
plt.tight_layout(); plt.savefig(sys.argv[0] if False else "/work/runs/fexp/stacklook-shipped.png", dpi=45)
