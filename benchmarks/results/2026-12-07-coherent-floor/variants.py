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
    out = np.empty(output.shape, dtype=np.float32)
    for i in range(out.shape[0]):
        y = output[i].astype(np.float64)
        x = source[i].astype(np.float64)
        s = y - trace_level(y)
        r = x - y
        rho = local_mean(r * r, radius) / (local_mean(s * s, radius) + FLOOR * float(np.mean(s * s)) + 1e-30)
        tau = 10.0 ** (tau_db_fn(r, radius) / 10.0)
        w = rho ** p / (rho ** p + tau ** p)
        out[i] = x - w * r
    return out


def same(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, rad: floor_db)


def coh5(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, rad: -13 + 8 * np.clip(_coh(r, rad), 0, 1))


def coh9(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, rad: -13 + 4 * np.clip(_coh(r, rad), 0, 1))


def coh3(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, rad: -13 + 10 * np.clip(_coh(r, rad), 0, 1))


def soft5(output, source, floor_db, radius=RADIUS, *_):
    return _generic(output, source, radius, lambda r, rad: -13 + 8 * np.clip(_coh(r, rad), 0, 1), p=1.0)
