import sys; sys.argv = ["x", "same"]
exec(open("/work/runs/fexp/harness.py").read().split("den = fb.reference_denoiser")[0])
from impeccable.core.removal_floor import lateral_coherence, floor_sections
from impeccable.core.signal_recovery import FLOOR, local_mean, trace_level
from impeccable.data.families import synthesize_family_pair
TAG = [""]
EDGES = [-1, 0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01]
def capture(output, source, floor_db, radius, *a):
    for i in range(output.shape[0]):
        y = output[i].astype(np.float64); r = source[i].astype(np.float64) - y; s = y - trace_level(y)
        rho = local_mean(r * r, radius) / (local_mean(s * s, radius) + FLOOR * float(np.mean(s * s)) + 1e-30)
        c = lateral_coherence(r, radius)
        e = r * r
        h, _ = np.histogram(c, EDGES, weights=e)
        # energy share by coherence bin, and median rho (dB) in that bin
        row = " ".join(f"{x/e.sum():.2f}" for x in h)
        print(f"{TAG[0]:32s} sec{i} energy by c {row}  mean rho {10*np.log10(np.sum(rho*e)/e.sum()):.1f} dB", flush=True)
        break
    return floor_sections(output, source, floor_db, radius)
og.floor_sections = capture
den = fb.reference_denoiser(Path("/work/runs/v12"))
print("bins", EDGES)
for line in fb.load_lines():
    TAG[0] = line.name + " alone"; den(line.volume, line.interval_ms)
    clean, _ = fb.quiet_stretch(line.volume)
    for kind in fb.NOISE_KINDS:
        TAG[0] = f"{line.name} {kind}"; den(fb.add_noise(clean, kind, 0), line.interval_ms)
for family in ("a", "b"):
    clean, noisy = synthesize_family_pair(family, 0, 900001, (8, 300, 1259), "light")
    TAG[0] = f"syn {family} light"; den(noisy[:2], 4.0)
    TAG[0] = f"syn {family} clean"; den(clean[:2], 4.0)
