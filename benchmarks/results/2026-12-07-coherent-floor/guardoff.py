import sys; mode = sys.argv[1]; sys.argv = ["x", "coh3"]
exec(open("/work/runs/fexp/harness.py").read().split("den = fb.reference_denoiser")[0])
ident = lambda output, source, *a, **k: output
if "norec" in mode: og.recover_sections = ident
if "nofloor" in mode: og.floor_sections = ident
if "noband" in mode: og.guard_sections = ident
den = fb.reference_denoiser(Path("/work/runs/v12"))
for line in fb.load_lines():
    clean, _ = fb.quiet_stretch(line.volume)
    for kind in fb.NOISE_KINDS:
        noisy = fb.add_noise(clean, kind, 0)
        est = den(noisy, line.interval_ms)
        print(f"{mode} {line.name} {kind}: {fb.snr_db(clean, est):+.2f} dB {fb.ssim_vs(clean, est):.3f}", flush=True)
