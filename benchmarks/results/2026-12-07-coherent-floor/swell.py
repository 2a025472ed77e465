import sys; sys.argv = ["x", sys.argv[1]]
exec(open("/work/runs/fexp/harness.py").read().split("den = fb.reference_denoiser")[0])
den = fb.reference_denoiser(Path("/work/runs/v12"))
for line in fb.load_lines():
    if line.name == "f3": continue
    clean, _ = fb.quiet_stretch(line.volume)
    for kind in ("swell", "family-a"):
        noisy = fb.add_noise(clean, kind, 0)
        est = den(noisy, line.interval_ms); bp = fb.bandpass_denoiser(noisy, line.interval_ms)
        f, a_n = fb.spectrum(noisy - clean, line.interval_ms)
        _, a_m = fb.spectrum(est - clean, line.interval_ms)
        _, a_b = fb.spectrum(bp - clean, line.interval_ms)
        _, a_c = fb.spectrum(clean, line.interval_ms)
        print(line.name, kind, "shape", clean.shape, "dt", line.interval_ms)
        for lo, hi in [(0, 2), (2, 5), (5, 8), (8, 15), (15, 30), (30, 60), (60, 125)]:
            m = (f >= lo) & (f < hi)
            e = lambda a: float(np.sum(a[m] ** 2))
            print(f"  {lo:3d}-{hi:3d} Hz: clean {e(a_c):9.3g} noise {e(a_n):9.3g} err model {e(a_m):9.3g} err bp {e(a_b):9.3g}")
