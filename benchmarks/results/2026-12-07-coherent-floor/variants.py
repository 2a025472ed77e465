import numpy as np
from impeccable.core.removal_floor import floor_sections as card
from impeccable.core.signal_recovery import FLOOR, RADIUS, local_mean, trace_level


def _coh(r, radius):
    """Local lateral coherence of r: neighbouring-trace correlation over the window, in [-1, 1], shape of r."""
    a, b = r[:-1], r[1:]
    num = local_mean(a * b, radius)
    den = np.sqrt(local_mean(a * a, radius) * local_mean(b * b, radius)) + 1e-30
    c = num / den
    return np.concatenate([c, c[-1:]], axis=0) * 0.5 + np.concatenate([c[:1], c], axis=0) * 0.5


def _generic(output, source, radius, tau_db_fn, p=2.0):
    """The removal floor with a threshold ``tau_db_fn(removed, output, radius)`` (dB) per sample."""
    out = np.empty(output.shape, dtype=np.float32)
    for i in range(out.shape[0]):
        y = output[i].astype(np.float64)
        x = source[i].astype(np.float64)
        s = y - trace_level(y)
        r = x - y
        rho = local_mean(r * r, radius) / (local_mean(s * s, radius) + FLOOR * float(np.mean(s * s)) + 1e-30)
        tau = 10.0 ** (tau_db_fn(r, y, radius) / 10.0)
        w = rho ** p / (rho ** p + tau ** p)
        out[i] = x - w * r
    return out


def same(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, y, rad: floor_db)


def coh5(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, y, rad: -13 + 8 * np.clip(_coh(r, rad), 0, 1))


def coh9(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, y, rad: -13 + 4 * np.clip(_coh(r, rad), 0, 1))


def coh3(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, y, rad: -13 + 10 * np.clip(_coh(r, rad), 0, 1))


def soft5(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, y, rad: -13 + 8 * np.clip(_coh(r, rad), 0, 1), p=1.0)


# ---- session 18: the raise only where the removed part runs parallel to the output's events ----------------

def _slopes(sec, radius, scale):
    """Structure-tensor event slope of a (traces, samples) array over the floor's window, in model samples per
    trace (``scale``: data samples per model sample, so one dip reads the same at 2 ms and at 4 ms)."""
    gx = np.gradient(sec, axis=0)
    gt = np.gradient(sec, axis=1) * scale
    jxx, jtt, jxt = (local_mean(a, radius) for a in (gx * gx, gt * gt, gx * gt))
    theta = 0.5 * np.arctan2(2 * jxt, jxx - jtt)  # direction of the dominant gradient, normal to the events
    nx, nt = np.cos(theta), np.sin(theta)
    return np.clip(-nx / np.where(np.abs(nt) < 1e-6, 1e-6, nt), -5, 5)


def _conforming(raise_db, width, per_model_sample=True):
    """tau_dB = floor + raise * clip(coherence) * exp(-((slope(removed) - slope(output)) / width)^2)."""
    def floor(output, source, floor_db, radius=RADIUS, *_):
        scale = radius[1] / RADIUS[1] if per_model_sample else 1.0

        def tau(r, y, rad):
            conform = np.exp(-((_slopes(r, rad, scale) - _slopes(y, rad, scale)) / width) ** 2)
            return -13 + raise_db * np.clip(_coh(r, rad), 0, 1) * conform
        return _generic(output, source, radius, tau)
    return floor


conf10 = _conforming(10, 0.3, per_model_sample=False)  # slopes in data samples: 2 ms and 4 ms disagree
conf10t = _conforming(10, 0.6)
conf14t = _conforming(14, 0.6)
