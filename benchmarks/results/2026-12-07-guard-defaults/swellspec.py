import sys; sys.argv = ["x", "card"]
exec(open("/work/runs/fexp/harness.py").read().split("den = fb.reference_denoiser")[0])
import os
den = fb.reference_denoiser(Path(os.environ.get("MODEL", "/work/runs/v12")))
def spec(a):
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    return np.mean(np.abs(np.fft.rfft(a * np.hanning(a.shape[-1]), axis=-1)) ** 2, axis=0)
for line in fb.load_lines():
    if line.name == "f3": continue
    clean, _ = fb.quiet_stretch(line.volume)
    for kind in ("swell", "family-a"):
        noisy = fb.add_noise(clean, kind, 0)
        est = den(noisy, line.interval_ms)
        bp = fb.bandpass_denoiser(noisy, line.interval_ms)
        f = np.fft.rfftfreq(clean.shape[-1], line.interval_ms / 1000)
        bands = [(0, 3), (3, 6), (6, 10), (10, 20), (20, 40), (40, 70), (70, 126)]
        se, sb, sc, sn = spec(est - clean), spec(bp - clean), spec(clean), spec(noisy - clean)
        row = lambda s: " ".join(f"{10*np.log10(s[(f>=a)&(f<b)].sum()/sc.sum()+1e-12):6.1f}" for a, b in bands)
        print(f"{line.name} {kind} bands {bands}")
        print("  clean  ", row(sc)); print("  noise  ", row(sn)); print("  model err", row(se)); print("  bp err   ", row(sb))
