import sys, os; variant = sys.argv[1]; sys.argv = ["x", "card"]
src = open("/work/runs/fexp/harness.py").read()
exec(src.split("den = fb.reference_denoiser")[0])
from scipy.signal import butter, sosfiltfilt
_band = og.guard_sections
LOW = float(os.environ.get("LOW", "3"))
def lowcut(output, source):
    out = output
    sos = butter(4, LOW, "highpass", fs=250.0, output="sos")
    level = out.mean(axis=-1, keepdims=True)
    return _band((sosfiltfilt(sos, out - level, axis=-1, padtype="even") + level).astype(np.float32), source)
TAU = float(os.environ.get("TAU", "-10"))
def adaptive(output, source):
    sos = butter(4, LOW, "highpass", fs=250.0, output="sos")
    level = output.mean(axis=-1, keepdims=True)
    high = sosfiltfilt(sos, output - level, axis=-1, padtype="even")
    low = (output - level) - high
    rho = np.mean(low ** 2, axis=-1, keepdims=True) / (np.mean(high ** 2, axis=-1, keepdims=True) + 1e-30)
    tau = 10 ** (TAU / 10)
    w = rho ** 2 / (rho ** 2 + tau ** 2)
    return _band((output - w * low).astype(np.float32), source)
if variant == "lowcut":
    og.guard_sections = lowcut
if variant == "adaptive":
    og.guard_sections = adaptive
exec("den = fb.reference_denoiser" + src.split("den = fb.reference_denoiser")[1])
