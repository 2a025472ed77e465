"""Does the removed part follow the output's structure (reflector energy taken) or cross it (noise)?
Structure-tensor slopes (samples per trace) of the output and of the removed part, compared where the removed
part has energy. Penobscot and F3 fed alone (removed = reflector energy) vs family a / b (removed = noise)."""
import sys
import numpy as np
from scipy.ndimage import gaussian_filter
import impeccable
from impeccable.benchmarks.field import load_lines
from impeccable.data.families import synthesize_family_pair

MODEL = sys.argv[1] if len(sys.argv) > 1 else "/work/main/models/unetpp-v2s-synth"


def slopes(sec, sig=(3.0, 6.0)):
    """sec (traces, samples): local slope dt/dx (samples per trace) and a linearity 0..1."""
    gx = np.gradient(sec, axis=0)
    gt = np.gradient(sec, axis=1)
    jxx, jtt, jxt = (gaussian_filter(a, sig) for a in (gx * gx, gt * gt, gx * gt))
    # the gradient is normal to the event: event slope p = -gx/gt along the dominant normal
    lam_d = np.sqrt((jxx - jtt) ** 2 + 4 * jxt ** 2)
    l1, l2 = (jxx + jtt + lam_d) / 2, (jxx + jtt - lam_d) / 2
    theta = 0.5 * np.arctan2(2 * jxt, jxx - jtt)  # angle of the dominant gradient from the x axis
    nx, nt = np.cos(theta), np.sin(theta)
    p = -nx / np.where(np.abs(nt) < 1e-6, 1e-6, nt)
    lin = (l1 - l2) / (l1 + l2 + 1e-20)
    return np.clip(p, -5, 5), lin


def figures(name, inp, out):
    rem = inp - out
    r = []
    for a, b in zip(out, rem):
        po, lo = slopes(a)
        pr, lr = slopes(b)
        w = gaussian_filter(b * b, (3, 6))
        w = w / w.sum()
        d = np.abs(pr - po)
        r.append(((w * d).sum(), (w * (d < 0.25)).sum(), (w * lo).sum(), (w * lr).sum()))
    r = np.mean(r, axis=0)
    e = float((rem ** 2).sum() / (inp ** 2).sum())
    print(f"{name:28s} removed {100*e:5.1f} %  |slope diff| {r[0]:.3f} s/tr, share within 0.25: {r[1]:.2f}, "
          f"output linearity {r[2]:.2f}, removed linearity {r[3]:.2f}", flush=True)


for line in (load_lines() if len(sys.argv) < 3 else []):
    if line.name.lower().startswith(("penob", "f3", "alaska")):
        out = impeccable.denoise(line.volume, model=MODEL, engine="openvino", views="inline", time_axis=2,
                                 sample_interval=line.interval_ms, progress=False)
        figures(line.name + " fed alone", line.volume, out)
for fam, seed, level in (("a", 900003, "moderate"), ("a", 900001, "moderate"), ("b", 900002, "moderate")):
    clean, noisy = synthesize_family_pair(fam, 0, seed, (8, 300, 1259), level)
    out = impeccable.denoise(noisy, model=MODEL, engine="openvino", views="inline", time_axis=2, progress=False)
    figures(f"{fam} {seed} {level}", noisy[:3], out[:3])
    figures(f"{fam} {seed} true noise", noisy[:3], clean[:3])
