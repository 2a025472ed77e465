"""Stack-like sections from an impedance model (not the training generator, not the dev lines), with a clean
truth: fed alone, and with light noise. python stacklook.py VARIANT (card | conf) [n]"""
import sys, os; variant = sys.argv[1]; n_sections = int(sys.argv[2]) if len(sys.argv) > 2 else 12; sys.argv = ["x", "card"]
src = open("/work/runs/fexp/harness.py").read()
exec(src.split("den = fb.reference_denoiser")[0])
from scipy.ndimage import gaussian_filter1d, map_coordinates
from scipy.signal import fftconvolve
MODELS = {"card": "/work/runs/v12", "conf": "/work/runs/v12conf"}
den = fb.reference_denoiser(Path(os.environ.get("MODEL", MODELS[variant])))

def section(seed, traces=240, samples=900):
    rng = np.random.default_rng(seed)
    depth = samples + 400
    # log-impedance: a blocky random walk (layers of 2-40 samples) plus fine AR(1) texture
    z = np.zeros(depth)
    i = 0
    while i < depth:
        k = int(rng.integers(2, 40)); z[i:i + k] = rng.normal(0, 1); i += k
    z = np.cumsum(z * 0.05) + gaussian_filter1d(rng.normal(0, 0.3, depth), 1.0)
    # structure: folds growing with depth, a dip, one fault or none, thickness changes
    x = np.arange(traces)[:, None]; t = np.arange(samples)[None, :] + 200.0
    lam, amp = rng.uniform(80, 400), rng.uniform(2, 25)
    warp = amp * (t / (samples + 200)) * np.sin(2 * np.pi * x / lam + rng.uniform(0, 6.3)) + rng.uniform(-0.3, 0.3) * x
    warp = warp + t * 0.05 * np.sin(2 * np.pi * x / rng.uniform(200, 800))
    if rng.random() < 0.6:
        xf, throw = rng.uniform(0.2, 0.8) * traces, rng.uniform(3, 25)
        warp = warp + throw * (x - 0.4 * (t - 200) / samples * 30 > xf)
    pos = np.clip(t + warp, 0, depth - 2)
    zz = map_coordinates(z, [pos.ravel()], order=1).reshape(traces, samples)
    refl = np.diff(zz, axis=1, prepend=zz[:, :1])
    from scipy.ndimage import gaussian_filter
    refl = refl * np.exp(0.5 * gaussian_filter(rng.normal(size=refl.shape), (25, 8)) / 0.05 * 0.1)  # lateral amplitude change
    if rng.random() < 0.5:  # a chaotic zone (mass transport, a channel belt): short, broken events
        t0, h = int(rng.integers(100, samples - 250)), int(rng.integers(80, 200))
        scale = refl.std()
        refl[:, t0:t0 + h] = 0.0
        for _ in range(int(h * traces / 60)):  # short reflector segments, 8-40 traces, any dip up to 1.5 samples/trace
            x0, length, tt, dip = int(rng.integers(0, traces)), int(rng.integers(8, 41)), rng.uniform(0, h), rng.uniform(-1.5, 1.5)
            xs = np.arange(x0, min(traces, x0 + length)); ts = np.round(t0 + tt + dip * (xs - x0)).astype(int)
            ok = (ts >= t0) & (ts < t0 + h)
            refl[xs[ok], ts[ok]] += rng.normal() * 3 * scale * np.hanning(len(xs) + 2)[1:-1][ok]
    # wavelet: Ricker 12-35 Hz (land-like to marine-like) at 4 ms
    f0 = rng.uniform(12, 35); tw = np.arange(-40, 41) * 0.004
    w = (1 - 2 * (np.pi * f0 * tw) ** 2) * np.exp(-(np.pi * f0 * tw) ** 2)
    sec = fftconvolve(refl, w[None, :], mode="same", axes=1)
    if rng.random() < 0.5:  # true-amplitude decay, else balanced
        sec = sec * np.exp(-np.arange(samples) / rng.uniform(300, 900))[None, :]
    # processing residue: faint band-limited random noise, -30 dB
    from impeccable.data import synth_field as sf
    sec = sec / sec.std()
    sec = sec + sf._band_noise(sec.shape, rng, 0.04, 0.24) * 0.03
    return sec.astype(np.float32)[None]

rows = []
for seed in range(n_sections):
    clean = section(1000 + seed)
    out = den(clean, 4.0)
    removed = float(np.sum((clean - out) ** 2) / np.sum(clean ** 2))
    s_alone = fb.ssim_vs(clean, out)
    rng = np.random.default_rng(seed)
    from impeccable.data import synth_field as sf
    level = float(os.environ.get("NOISE", "0.3"))
    noisy = clean + sf._band_noise(clean.shape[1:], rng, 0.04, 0.24)[None] * np.float32(level * clean.std())
    est = den(noisy, 4.0)
    rows.append((removed, s_alone, fb.snr_db(clean, noisy), fb.snr_db(clean, est), fb.ssim_vs(clean, noisy), fb.ssim_vs(clean, est)))
    print(f"{variant} {seed}: alone removed {100*removed:.1f} % SSIM {s_alone:.3f}; light noise {rows[-1][2]:+.1f} -> {rows[-1][3]:+.1f} dB, SSIM {rows[-1][4]:.3f} -> {rows[-1][5]:.3f}", flush=True)
r = np.array(rows)
print(f"SUMMARY {variant}: alone removed {100*r[:,0].mean():.1f} % (max {100*r[:,0].max():.1f}), SSIM mean {r[:,1].mean():.4f} min {r[:,1].min():.4f}; "
      f"light: gain {np.mean(r[:,3]-r[:,2]):+.2f} dB, SSIM {r[:,4].mean():.3f} -> {r[:,5].mean():.3f}, worse on {int(np.sum(r[:,5] < r[:,4]))}")
