"""Family B: a second synthetic recipe, written independently of :mod:`impeccable.data.synth` (family A).

A model trained on one generator learns that generator's habits; issue 16 found the shipped model harming
data from a recipe it never saw. Family B therefore draws everything differently, so that a mixture of A and
B covers more of what real post-stack data does:

* **Reflectivity** is the vertical derivative of a log-impedance column defined on a relative geologic time
  ``tau``: blocky layers (gamma-distributed thickness), sparse Laplacian steps, thin beds (opposite steps 1-3
  samples apart), lateral facies change (a second column blended by a smooth map), sinuous channels (bodies
  with a meandering centre line and a lens-shaped cross-section), an optional water column above a seafloor
  surface, and an optional salt body (constant impedance, so no reflectivity inside and a strong top).
* **Structure** maps each voxel to ``tau``: a regional dip plane, folds (smooth 2-D surfaces whose amplitude
  grows with depth) and 0-4 planar faults of random strike and dip, normal or reverse, with a throw that
  tapers along strike.
* **Wavelet** per volume: Ricker, Ormsby (trapezoid spectrum) or minimum phase (the cepstral minimum-phase
  version of a band-pass amplitude spectrum), with a random constant phase for the zero-phase ones; the
  dominant frequency falls with time (three bands blended by depth, a time-variant convolution).
* **Amplitude**: decay with time (exponential or spherical-divergence-like), then optionally a gain (``t^k``
  or an AGC with a random window and strength); the volume is then put on a random scale (std from 0.3 to
  3000, log-uniform) with, in 40 % of volumes, a DC offset (real data is not min-max scaled).
* **Noise** (sum of a random subset, each with its own time envelope): band-limited random noise at several
  lateral scales, coherent dipping linear noise, swell (low-frequency high-amplitude bursts on patches of
  traces), arcs (migration smiles and diffraction hyperbolas), spikes and bursts (isolated very large
  samples), acquisition footprint (periodic stripes along inline or crossline, additive and multiplicative).

``noisy = clean + level * std(clean) * n`` with ``rms(n) = 1`` (a few spikes on top); ``level = 0`` returns
``noisy`` equal to ``clean``. Geology and noise pattern depend on ``(seed, shape)`` only, the level only scales
the noise. A named level (``TARGET_SCORES_B``) or a drawn one is a target noisy-vs-clean challenge score, and
the level that gives it is solved on each volume (Brent's method on the score of the six scoring sections).

Measured (``python -m impeccable.data.synth_b IL,XL,T SEEDS``, scored with
:func:`impeccable.data.scoring.score_volumes`):

* (64, 64, 1259), 16 seeds: light 0.950, moderate 0.900, strong 0.860 on every volume (noise/clean RMS median
  0.26, 0.42, 0.55; ranges 0.16-0.44, 0.25-0.94, 0.32-1.46: a fixed level would spread the score widely);
  drawn, 40 seeds: 5 noise-free, the others in 0.80-0.97 (quartiles of all 40: 0.843 / 0.900 / 0.930).
* (128, 128, 1259), 8 seeds: the same three targets on every volume (RMS median 0.33, 0.53, 0.69); drawn:
  median 0.942, 2 of 8 noise-free. 3-4.3 s CPU per volume.
* (300, 300, 1259): 14-23 s CPU per volume (one core), peak memory 3.9 GB.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from impeccable.core.errors import InputError

DT = 0.004
"""Sample interval in seconds (the challenge's 4 ms)."""
MIN_SHAPE = (8, 8, 32)
TARGET_SCORES_B: dict[str, float] = {"light": 0.95, "moderate": 0.90, "strong": 0.86}
"""Named noise levels as the noisy-vs-clean challenge score they give (family A's are about the same: light
~0.95, moderate ~0.90, strong ~0.85); the level that gives it is solved per volume, because a fixed level's
score spreads widely across family B's noise mixtures (at (64, 64, 1259), 16 seeds, a fixed level 0.45 gave
0.761-0.949)."""
DRAWN_SCORE = (0.80, 0.97)
"""Range of the target score drawn (uniformly) per volume when no level is given, besides ``P_ZERO``."""
P_ZERO = 0.1
"""Probability that a volume drawn without a level has no noise at all (the model must leave it alone)."""
LEVEL_BOUNDS = (0.01, 10.0)
"""Search range of the solved level; a target beyond it gets the bound (e.g. a target of 0.99 on a volume whose
noise is mostly spikes)."""

_SLAB_VOXELS = 2_000_000  # voxels per slab of inlines: keeps the FFT work arrays near 16 MB


def resolve_noise_level_b(value: str | float | None) -> tuple[float | None, float | None]:
    """``(level, target score)`` of a family-B noise level: a number is a level, a name a target, None draws.

    Returns:
        ``(level, None)`` for a number, ``(None, TARGET_SCORES_B[name])`` for a name, ``(None, None)`` for None.

    Raises:
        InputError: An unknown name, a negative or non-finite number.
    """
    if value is None:
        return None, None
    if isinstance(value, str) and value in TARGET_SCORES_B:
        return None, TARGET_SCORES_B[value]
    try:
        level = float(value)
    except (TypeError, ValueError):
        raise InputError("unknown noise level", received=repr(value),
                         expected=f"a number >= 0 or one of {sorted(TARGET_SCORES_B)}") from None
    if not (math.isfinite(level) and level >= 0):
        raise InputError("noise level is not a finite number >= 0", received=value,
                         expected="e.g. 0.4, or light / moderate / strong")
    return level, None


def synthesize_pair_b(seed: int, shape: tuple[int, int, int] = (300, 300, 1259),
                      noise_level: float | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Make one family-B synthetic (clean, noisy) pair (same convention as ``synthesize_pair``).

    Args:
        seed: Non-negative seed; the pair is a deterministic function of ``(seed, shape, noise_level)``.
            Geology and noise pattern depend on ``(seed, shape)`` only.
        shape: ``(inline, crossline, sample)``; each lateral axis at least 8, at least 32 samples.
        noise_level: A number: ``level`` in ``noisy = clean + level * std(clean) * n`` (``rms(n) = 1``; 0 gives
            ``noisy`` equal to ``clean``). A name of ``TARGET_SCORES_B``: the level whose noisy-vs-clean
            challenge score is that target, solved on this volume. None: no noise with probability ``P_ZERO``,
            else a target drawn uniformly in ``DRAWN_SCORE``, solved likewise.

    Returns:
        ``(clean, noisy)``, each ``(inline, crossline, sample)`` float32, in the same (random) units: the
        clean volume's std is drawn in 0.3-3000 and its mean is 0 or a DC offset.

    Raises:
        InputError: A negative seed, a too small shape, or a bad noise level.
    """
    shape = _check_shape(shape)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError("synthetic seed is not a non-negative integer", received=seed, expected="0, 1, 2, ...")
    level, target = resolve_noise_level_b(noise_level)
    root = np.random.SeedSequence((int(seed), 0xB, *shape))
    geo_ss, noise_ss, level_ss = root.spawn(3)
    if level is None and target is None:
        lrng = np.random.default_rng(level_ss)
        if lrng.random() < P_ZERO:
            level = 0.0
        else:
            target = float(lrng.uniform(*DRAWN_SCORE))
    clean = _clean_volume(np.random.default_rng(geo_ss), shape)
    if level == 0.0:
        return clean, clean.copy()
    noise = _noise_volume(np.random.default_rng(noise_ss), shape, clean)
    noise *= np.float32(float(clean.std()))
    if level is None:
        level = _solve_level(clean, noise, target)
    noise *= np.float32(level)
    noise += clean
    return clean, noise


def _solve_level(clean: np.ndarray, noise: np.ndarray, target: float) -> float:
    """The level ``l`` at which ``clean + l * noise`` scores ``target`` against ``clean`` (challenge formula)."""
    from scipy.optimize import brentq

    from impeccable.data.scoring import section_indices, section_ssim, trimmed_mean

    il, xl, _ = clean.shape
    cuts = [(i, slice(None)) for i in section_indices(il)] + [(slice(None), x) for x in section_indices(xl)]

    def to_uint8(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return ((np.asarray(v, np.float64) - lo) / (hi - lo) * 255.0).astype(np.uint8)

    c_lo, c_hi = float(clean.min()), float(clean.max())
    truth = [to_uint8(clean[c], c_lo, c_hi) for c in cuts]
    step = max(1, _SLAB_VOXELS // clean[0].size)
    buf = np.empty((step, *clean.shape[1:]), np.float32)

    def gap(log_level: float) -> float:
        scale = np.float32(math.exp(log_level))
        lo, hi = math.inf, -math.inf
        for i0 in range(0, il, step):  # the noisy volume's min and max without allocating it
            n = min(step, il - i0)
            np.multiply(noise[i0:i0 + n], scale, out=buf[:n])
            buf[:n] += clean[i0:i0 + n]
            lo, hi = min(lo, float(buf[:n].min())), max(hi, float(buf[:n].max()))
        noisy = [clean[c] + scale * noise[c] for c in cuts]
        return trimmed_mean([section_ssim(t, to_uint8(v, lo, hi)) for t, v in zip(truth, noisy)]) - target

    # Each evaluation costs a pass over the volume, so bracket the root from a typical level by doublings
    # (the score falls with the level) and let Brent's method close a factor-2 bracket.
    lo_bound, hi_bound = math.log(LEVEL_BOUNDS[0]), math.log(LEVEL_BOUNDS[1])
    x = math.log(0.45)
    g = gap(x)
    stride = math.log(2.0) if g > 0 else -math.log(2.0)
    while True:
        x_next = min(max(x + stride, lo_bound), hi_bound)
        g_next = gap(x_next)
        if (g_next > 0) != (g > 0) or g_next == 0:
            break
        if x_next in (lo_bound, hi_bound):
            return math.exp(x_next)  # the target lies beyond the search range
        x, g = x_next, g_next
    a, b = sorted((x, x_next))
    return math.exp(brentq(gap, a, b, xtol=0.01))


# --------------------------------------------------------------------------------------------------------
# Clean volume


def _check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        il, xl, nt = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InputError("synthetic shape is not 3 integers", received=shape,
                         expected="(inline, crossline, sample)") from None
    if min(il, xl) < MIN_SHAPE[0] or nt < MIN_SHAPE[2]:
        raise InputError("synthetic volume shape is too small", received=(il, xl, nt),
                         expected=f"inline and crossline >= {MIN_SHAPE[0]}, sample >= {MIN_SHAPE[2]}")
    return il, xl, nt


def _smooth_map(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std smooth 2-D field with correlation length ``scale`` traces (float32)."""
    pad = int(2 * scale) + 2
    f = rng.standard_normal((shape[0] + 2 * pad, shape[1] + 2 * pad)).astype(np.float32)
    f = ndimage.gaussian_filter(f, scale, mode="wrap")[pad:pad + shape[0], pad:pad + shape[1]]
    f -= f.mean()
    return f / max(float(f.std()), 1e-6)


def _log_column(rng: np.random.Generator, n: int, fine: int) -> np.ndarray:
    """Log-impedance column on ``n`` fine steps (``fine`` per sample): blocks, sparse steps, thin beds."""
    mean_thick = rng.uniform(2.0, 14.0) * fine
    thick = rng.gamma(rng.uniform(1.0, 3.0), 1.0, size=n // 2 + 16)
    thick = np.maximum(1, np.round(thick / thick.mean() * mean_thick)).astype(int)
    edges = np.cumsum(thick)
    edges = edges[edges < n]
    steps = np.zeros(n, np.float64)
    steps[edges] = rng.laplace(0.0, 1.0, edges.size) * rng.uniform(0.5, 1.5)
    # Sparse spikes: the Laplacian steps of a reflectivity that is mostly zero.
    sparse = rng.random(n) < rng.uniform(0.0, 0.05) / fine
    steps[sparse] += rng.laplace(0.0, rng.uniform(0.3, 1.0), int(sparse.sum()))
    # Thin beds: an up step and a down step 1-3 samples apart (tuning below the wavelet's resolution).
    nthin = rng.integers(0, max(2, n // (fine * 40)))
    pos = rng.integers(0, n - 4 * fine, nthin)
    amp = rng.laplace(0.0, 1.0, nthin)
    steps[pos] += amp
    steps[np.minimum(pos + rng.integers(1, 4, nthin) * fine, n - 1)] -= amp
    # A slow compaction trend plus mean reversion keeps the column bounded.
    col = np.cumsum(steps) * 0.1
    trend = np.linspace(0.0, rng.uniform(0.0, 1.0), n)
    col -= ndimage.uniform_filter1d(col, size=max(3, 80 * fine), mode="nearest")
    return (col + trend).astype(np.float32)


class _Geology:
    """Everything drawn for the clean volume; ``log_impedance(i0, i1)`` renders a slab of inlines."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int]) -> None:
        il, xl, nt = shape
        self.shape = shape
        lat = max(il, xl)
        scale_t = nt / 1259.0
        # Structure: tau(x, y, t) = t - dip - fold * growth(t) - fault throws.
        dip_x, dip_y = rng.normal(0.0, 0.15, 2)
        fold_amp = rng.uniform(0.0, 80.0) * scale_t
        self.fold = (_smooth_map(rng, (il, xl), rng.uniform(0.1, 0.4) * lat) * fold_amp
                     + _smooth_map(rng, (il, xl), rng.uniform(0.05, 0.15) * lat) * fold_amp * 0.3)
        self.growth_pow = rng.uniform(1.0, 2.5)  # >= 1: tau stays monotonic in t near the top
        ii, xx = np.meshgrid(np.arange(il, dtype=np.float32), np.arange(xl, dtype=np.float32), indexing="ij")
        self.dip = (dip_x * (ii - il / 2) + dip_y * (xx - xl / 2)).astype(np.float32)
        self.faults = []
        for _ in range(rng.integers(0, 5)):
            strike = rng.uniform(0, np.pi)
            normal = rng.random() < 0.65
            dips = rng.choice([-1, 1])
            # side > 0 is the hanging wall when the plane dips toward +n (slope > 0), the footwall otherwise;
            # a normal fault drops the hanging wall (tau = t - throw there).
            self.faults.append(dict(
                nx=np.cos(strike), ny=np.sin(strike), x0=rng.uniform(0.2, 0.8) * il, y0=rng.uniform(0.2, 0.8) * xl,
                # Lateral traces per sample of depth: 0.05-0.3 is a 50-80 degree plane (12.5 m traces, 5 m samples).
                slope=rng.uniform(0.05, 0.3) * dips,
                throw=rng.uniform(5.0, 50.0) * scale_t * (1 if normal else -1) * dips,
                length=rng.uniform(0.5, 2.0) * lat, t0=rng.uniform(0.0, 0.5) * nt))
        span = abs(dip_x) * il + abs(dip_y) * xl + 4 * fold_amp + sum(abs(f["throw"]) for f in self.faults) + 8
        self.fine = 4
        self.tau0 = -span
        n = int((nt + 2 * span) * self.fine) + 8
        self.col = _log_column(rng, n, self.fine)
        self.col2 = _log_column(rng, n, self.fine)
        self.facies = np.clip(0.5 + 0.4 * _smooth_map(rng, (il, xl), rng.uniform(0.1, 0.5) * lat), 0, 1)
        self.facies *= rng.uniform(0.0, 1.0)
        # Channels: sinuous bodies at a given tau, lens-shaped in cross-section.
        self.channels = []
        for _ in range(rng.integers(0, 4)):
            ang = rng.uniform(0, np.pi)
            self.channels.append(dict(
                ca=np.cos(ang), sa=np.sin(ang), c0=rng.uniform(0.2, 0.8) * lat,
                amp=rng.uniform(0.05, 0.2) * lat, wl=rng.uniform(0.3, 1.0) * lat, ph=rng.uniform(0, 2 * np.pi),
                width=rng.uniform(2.0, 0.06 * lat + 3), depth=rng.uniform(3.0, 12.0) * scale_t + 1,
                tau=rng.uniform(0.2, 0.9) * nt, dz=rng.choice([-1, 1]) * rng.uniform(0.3, 1.0)))
        # Water column above a smooth seafloor.
        self.water = None
        if rng.random() < 0.5:
            wb = rng.uniform(0.03, 0.2) * nt + _smooth_map(rng, (il, xl), 0.3 * lat) * rng.uniform(0, 0.02) * nt
            self.water = (np.maximum(wb, 2).astype(np.float32), float(self.col.min() - rng.uniform(0.5, 1.5)))
        # Salt: a dome-topped stock of constant (high) impedance.
        self.salt = None
        if rng.random() < 0.3:
            self.salt = dict(x0=rng.uniform(0.25, 0.75) * il, y0=rng.uniform(0.25, 0.75) * xl,
                             r0=rng.uniform(0.15, 0.4) * lat, top=rng.uniform(0.3, 0.6) * nt,
                             h=rng.uniform(0.1, 0.3) * nt, base=rng.uniform(0.8, 1.1) * nt,
                             z=float(self.col.max() + rng.uniform(0.5, 1.5)))
        self.ii, self.xx = ii, xx

    def log_impedance(self, i0: int, i1: int) -> np.ndarray:
        """Log impedance of inlines ``i0:i1``, ``(i1 - i0, crossline, sample)`` float32."""
        il, xl, nt = self.shape
        t = np.arange(nt, dtype=np.float32)
        growth = (t / nt) ** self.growth_pow
        tau = t[None, None, :] - self.dip[i0:i1, :, None] - self.fold[i0:i1, :, None] * growth[None, None, :]
        x = self.ii[i0:i1, :, None]
        y = self.xx[i0:i1, :, None]
        for f in self.faults:
            along = -(x - f["x0"]) * f["ny"] + (y - f["y0"]) * f["nx"]
            side = (x - f["x0"]) * f["nx"] + (y - f["y0"]) * f["ny"] - f["slope"] * (t - f["t0"])
            taper = np.clip(1.0 - (2 * along / f["length"]) ** 2, 0.0, 1.0)
            tau = tau - (side > 0) * (f["throw"] * taper)
        idx = np.clip(((tau - self.tau0) * self.fine).astype(np.int32), 0, self.col.size - 1)
        z = self.col[idx]
        fac = self.facies[i0:i1, :, None]
        z += fac * (self.col2[idx] - z)
        for c in self.channels:
            u = x * c["ca"] + y * c["sa"]
            v = -x * c["sa"] + y * c["ca"]
            d = np.abs(v - c["c0"] - c["amp"] * np.sin(2 * np.pi * u / c["wl"] + c["ph"])) / c["width"]
            lens = c["depth"] * np.sqrt(np.clip(1.0 - d * d, 0.0, 1.0))
            inside = (tau > c["tau"] - lens) & (tau < c["tau"]) & (lens > 0)
            z = np.where(inside, z + c["dz"], z)
        if self.salt is not None:
            s = self.salt
            r = np.sqrt((x - s["x0"]) ** 2 + (y - s["y0"]) ** 2) / s["r0"]
            top = s["top"] + s["h"] * r * r
            inside = (r < 1.0) & (t > top) & (t < s["base"])
            z = np.where(inside, np.float32(s["z"]), z)
        if self.water is not None:
            wb, zw = self.water
            z = np.where(t[None, None, :] < wb[i0:i1, :, None], np.float32(zw), z)
        return z.astype(np.float32, copy=False)


def _band_spectra(rng: np.random.Generator, nt: int, nfft: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Three wavelet spectra (rfft, complex64) of falling dominant frequency and their depth weights."""
    f = sfft.rfftfreq(nfft, DT)
    kind = rng.choice(["ricker", "ormsby", "minphase"])
    f_top = rng.uniform(18.0, 45.0)
    f_bot = f_top * rng.uniform(0.4, 0.85)
    phase = np.deg2rad(rng.uniform(-40, 40)) if rng.random() < 0.5 else 0.0
    spectra = []
    for fd in np.geomspace(f_top, f_bot, 3):
        if kind == "ricker":
            amp = (f / fd) ** 2 * np.exp(1.0 - (f / fd) ** 2)
        else:
            f1, f2, f3, f4 = fd * np.array([0.2, 0.5, 1.5, 2.3]) * rng.uniform(0.9, 1.1, 4)
            amp = np.clip(np.minimum((f - f1) / max(f2 - f1, 1e-3), (f4 - f) / max(f4 - f3, 1e-3)), 0.0, 1.0)
        if kind == "minphase":
            # Cepstral folding turns |W| into the causal minimum-phase wavelet of the same amplitude spectrum.
            cep = sfft.irfft(np.log(np.maximum(amp, 1e-3)), n=nfft)
            fold = np.zeros(nfft)
            fold[0] = cep[0]
            fold[1:nfft // 2] = 2 * cep[1:nfft // 2]
            fold[nfft // 2] = cep[nfft // 2]
            spec = np.exp(sfft.rfft(fold))
        else:
            spec = amp * np.exp(1j * phase * np.sign(f))
        spectra.append(spec.astype(np.complex64))
    # Triangular partition of unity over three depth centres.
    t = np.linspace(0.0, 1.0, nt)
    centres = np.array([0.0, 0.5, 1.0])
    w = np.clip(1.0 - np.abs(t[None, :] - centres[:, None]) / 0.5, 0.0, 1.0)
    return spectra, (w / w.sum(axis=0)).astype(np.float32)


def _clean_volume(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """The clean volume, ``(inline, crossline, sample)`` float32, on its random scale and offset."""
    il, xl, nt = shape
    geo = _Geology(rng, shape)
    nfft = sfft.next_fast_len(nt + 128, real=True)
    spectra, weights = _band_spectra(rng, nt, nfft)
    t = np.arange(nt, dtype=np.float32) / nt
    if rng.random() < 0.5:
        decay = np.exp(-rng.uniform(0.0, 3.0) * t)
    else:
        decay = 1.0 / (1.0 + rng.uniform(0.0, 20.0) * t) ** rng.uniform(0.5, 1.5)
    gain_kind = rng.choice(["none", "tpow", "agc"], p=[0.4, 0.3, 0.3])
    if gain_kind == "tpow":
        decay = decay * (0.05 + t) ** rng.uniform(0.3, 1.5)
    decay = decay.astype(np.float32)
    agc_win, agc_p = int(rng.uniform(0.03, 0.2) * nt) + 3, rng.uniform(0.5, 1.0)
    out = np.empty(shape, np.float32)
    step = max(1, _SLAB_VOXELS // (xl * nt))
    for i0 in range(0, il, step):
        i1 = min(il, i0 + step)
        z = geo.log_impedance(i0, i1)
        r = np.zeros_like(z)
        r[..., :-1] = np.diff(z, axis=-1)
        spec = sfft.rfft(r, n=nfft, axis=-1)
        slab = np.zeros(z.shape, np.float32)
        for k, w_spec in enumerate(spectra):
            slab += sfft.irfft(spec * w_spec, n=nfft, axis=-1)[..., :nt].astype(np.float32) * weights[k]
        slab *= decay
        out[i0:i1] = slab
    if gain_kind == "agc":
        power = ndimage.uniform_filter1d(out * out, agc_win, axis=-1, mode="nearest")
        # The running sum can dip a hair below zero; the floor also keeps silent (water) samples finite.
        np.maximum(power, np.float32(1e-6) * float(power.mean()) + np.float32(1e-30), out=power)
        out /= power ** np.float32(agc_p / 2)
    std = float(out.std()) or 1.0
    scale = float(np.exp(rng.uniform(np.log(0.3), np.log(3000.0))))
    offset = rng.uniform(-2.0, 2.0) * scale if rng.random() < 0.4 else 0.0
    out *= np.float32(scale / std)
    out += np.float32(offset)
    return out


# --------------------------------------------------------------------------------------------------------
# Noise


def _unit(v: np.ndarray) -> np.ndarray:
    flat = v.reshape(-1)
    rms = math.sqrt(max(float(np.dot(flat, flat)), 0.0) / max(flat.size, 1))
    if rms > 0:
        v *= np.float32(1.0 / rms)
    return v


def _bandpass_t(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Smooth band-pass along the last axis (in place), ``lo``-``hi`` Hz at dt = 4 ms."""
    nt = v.shape[-1]
    nfft = sfft.next_fast_len(nt, real=True)
    f = sfft.rfftfreq(nfft, DT)
    h = (1.0 / (1.0 + (lo / np.maximum(f, 1e-3)) ** 8)) / (1.0 + (f / hi) ** 8)
    h = h.astype(np.float32)
    step = max(1, _SLAB_VOXELS // max(1, v[0].size))
    for i0 in range(0, v.shape[0], step):
        v[i0:i0 + step] = sfft.irfft(sfft.rfft(v[i0:i0 + step], n=nfft, axis=-1) * h, n=nfft, axis=-1)[..., :nt]
    return v


def _envelope(rng: np.random.Generator, nt: int) -> np.ndarray:
    """A random smooth time envelope (float32, max 1): rising, falling, or a window at some depth."""
    t = np.linspace(0.0, 1.0, nt, dtype=np.float32)
    kind = rng.integers(0, 3)
    if kind == 0:
        e = t ** rng.uniform(0.3, 2.0)
    elif kind == 1:
        e = np.exp(-rng.uniform(0.5, 4.0) * t)
    else:
        e = np.exp(-0.5 * ((t - rng.uniform(0.2, 0.9)) / rng.uniform(0.1, 0.4)) ** 2)
    return (0.15 + e / e.max()).astype(np.float32)


def _random_noise(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Band-limited random noise at two lateral scales."""
    out = np.zeros(shape, np.float32)
    for sigma in rng.choice([0.0, 0.7, 2.0, 5.0], size=2, replace=False):
        n = rng.standard_normal(shape, dtype=np.float32)
        if sigma > 0:
            for ax in (0, 1):
                ndimage.gaussian_filter1d(n, sigma, axis=ax, output=n, mode="reflect")
        out += _unit(n) * np.float32(rng.uniform(0.3, 1.0))
    lo = rng.uniform(2.0, 12.0)
    return _bandpass_t(out, lo, rng.uniform(lo + 15.0, 110.0))


def _linear_noise(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Coherent dipping linear events: a few band-limited 1-D signals swept across the volume."""
    il, xl, nt = shape
    out = np.zeros(shape, np.float32)
    ii = np.arange(il, dtype=np.float32)[:, None, None]
    xx = np.arange(xl, dtype=np.float32)[None, :, None]
    t = np.arange(nt, dtype=np.float32)[None, None, :]
    for _ in range(rng.integers(1, 4)):
        p, q = rng.uniform(-3.0, 3.0, 2) * rng.choice([0.2, 1.0])
        span = int(abs(p) * il + abs(q) * xl + nt) + 4
        sig = _bandpass_t(rng.standard_normal((1, span)).astype(np.float32), rng.uniform(3, 10), rng.uniform(20, 60))[0]
        sig *= (rng.random(span) < rng.uniform(0.05, 0.5)).astype(np.float32).cumsum() % 2  # on/off trains
        sig = ndimage.gaussian_filter1d(sig, 1.0)
        off = abs(p) * il + abs(q) * xl
        amp = np.float32(rng.uniform(0.5, 1.0))
        step = max(1, _SLAB_VOXELS // (xl * nt))
        for i0 in range(0, il, step):  # slabs: the index array would otherwise be as large as the volume
            idx = (t - p * ii[i0:i0 + step] - q * xx + off).astype(np.int32) % span
            out[i0:i0 + step] += sig[idx] * amp
    return out


def _swell(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Swell: low-frequency, high-amplitude bursts on patches of traces."""
    il, xl, nt = shape
    mask = _smooth_map(rng, (il, xl), rng.uniform(1.0, 4.0)) > rng.uniform(1.0, 2.0)
    out = np.zeros(shape, np.float32)
    if not mask.any():
        mask[rng.integers(0, il), rng.integers(0, xl)] = True
    k = int(mask.sum())
    tr = rng.standard_normal((k, nt)).astype(np.float32)
    tr = _bandpass_t(tr[None], 0.5, rng.uniform(3.0, 8.0))[0]
    t = np.linspace(0.0, 1.0, nt, dtype=np.float32)
    win = np.exp(-0.5 * ((t - rng.uniform(0.0, 1.0)) / rng.uniform(0.1, 0.5)) ** 2)
    out[mask] = tr * win
    return out


def _arcs(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Migration smiles and diffraction hyperbolas, each a short pulse along a curved surface."""
    il, xl, nt = shape
    out = np.zeros(shape, np.float32)
    for _ in range(rng.integers(3, 25)):
        x0, y0, t0 = rng.uniform(0, il), rng.uniform(0, xl), rng.uniform(0.15, 0.95) * nt
        r = rng.uniform(5.0, 0.5 * max(il, xl) + 5)
        a0, a1 = int(max(0, x0 - r)), int(min(il, x0 + r + 1))
        b0, b1 = int(max(0, y0 - r)), int(min(xl, y0 + r + 1))
        if a1 <= a0 or b1 <= b0:
            continue
        d2 = ((np.arange(a0, a1)[:, None] - x0) ** 2 + (np.arange(b0, b1)[None, :] - y0) ** 2).astype(np.float32)
        inside = d2 < r * r
        stretch = rng.uniform(1.0, 4.0)  # samples per trace of the arc's slope scale
        if rng.random() < 0.6:
            tc = t0 - stretch * (r - np.sqrt(np.maximum(r * r - d2, 0.0)))  # smile: ends rise
        else:
            tc = np.sqrt(t0 ** 2 + stretch ** 2 * d2)  # diffraction: ends sink
        width = rng.uniform(1.5, 4.0)
        amp = np.float32(rng.uniform(0.5, 1.0))
        # Only the samples within 4 widths of the arc: one voxel per trace and offset, written by indexing.
        a, b = np.nonzero(inside & (tc >= -4 * width) & (tc < nt + 4 * width))
        tca = tc[a, b]
        base = np.round(tca).astype(np.int64)
        for k in range(-int(4 * width) - 1, int(4 * width) + 2):
            idx = base + k
            ok = (idx >= 0) & (idx < nt)
            arg = (idx[ok] - tca[ok]) / width
            out[a[ok] + a0, b[ok] + b0, idx[ok]] += (1.0 - arg * arg) * np.exp(-0.5 * arg * arg) * amp
    return out


def _footprint(rng: np.random.Generator, shape: tuple[int, int, int], clean: np.ndarray) -> np.ndarray:
    """Acquisition footprint: periodic stripes along inline or crossline, additive and multiplicative."""
    il, xl, nt = shape
    axis = int(rng.integers(0, 2))
    n = shape[axis]
    period = rng.uniform(3.0, 12.0)
    pat = np.cos(2 * np.pi * np.arange(n) / period + rng.uniform(0, 2 * np.pi))
    pat = np.sign(pat) * np.abs(pat) ** rng.uniform(0.3, 1.0)
    pat = pat.astype(np.float32)
    other = shape[1 - axis]
    field = _bandpass_t(rng.standard_normal((1, other, nt)).astype(np.float32), 2.0, rng.uniform(15, 50))[0]
    field = ndimage.gaussian_filter1d(field, rng.uniform(2, 10), axis=0)
    pshape = (n, 1, 1) if axis == 0 else (1, n, 1)
    fshape = (1, other, nt) if axis == 0 else (other, 1, nt)
    out = _unit(pat.reshape(pshape) * _unit(field).reshape(fshape))
    mean, gain = np.float32(clean.mean()), np.float32(rng.uniform(0.5, 2.0) / (float(clean.std()) or 1.0))
    pat3 = pat.reshape(pshape)
    step = max(1, _SLAB_VOXELS // (xl * nt))
    for i0 in range(0, il, step):  # the multiplicative part (stripes of the signal's own gain), in slabs
        p_slab = pat3 if axis == 1 else pat3[i0:i0 + step]
        out[i0:i0 + step] += p_slab * ((clean[i0:i0 + step] - mean) * gain)
    return out


def _noise_volume(rng: np.random.Generator, shape: tuple[int, int, int], clean: np.ndarray) -> np.ndarray:
    """Unit-RMS noise ``(inline, crossline, sample)`` float32, plus spikes on top."""
    il, xl, nt = shape
    parts = [(_random_noise, 1.0, 1.0)]
    for fn, p, w in ((_linear_noise, 0.5, 0.6), (_swell, 0.35, 0.8), (_arcs, 0.45, 0.7), (_footprint, 0.3, 0.5)):
        if rng.random() < p:
            parts.append((fn, 1.0, w))
    total = np.zeros(shape, np.float32)
    for fn, _, w in parts:
        part = fn(rng, shape, clean) if fn is _footprint else fn(rng, shape)
        part = _unit(part)
        part *= _envelope(rng, nt)
        part *= np.float32(w * rng.uniform(0.4, 1.0))
        total += part
        del part
    # Lateral amplitude variation: noise is rarely stationary across a survey.
    total *= (1.0 + 0.4 * np.clip(_smooth_map(rng, (il, xl), 0.2 * max(il, xl)), -2, 2))[..., None]
    total = _unit(total)
    if rng.random() < 0.4:
        k = int(rng.integers(1, 12))
        ai, bi, ti = rng.integers(0, il, k), rng.integers(0, xl, k), rng.integers(0, nt, k)
        total[ai, bi, ti] += rng.choice([-1, 1], k) * rng.uniform(4.0, 15.0, k)
        for a, b, s in zip(ai[: k // 2], bi[: k // 2], ti[: k // 2]):
            ln = int(rng.integers(5, 40))
            total[a, b, s:s + ln] += rng.standard_normal(min(ln, nt - s)).astype(np.float32) * 6.0
    return total


def _calibrate(seeds: range, shape: tuple[int, int, int]) -> None:
    """Print the score, solved level and time per named level and for drawn levels.

    ``python -m impeccable.data.synth_b [IL,XL,T] [SEEDS]`` (default 64,64,1259 and 12 seeds).
    """
    import time

    from impeccable.data.scoring import score_volumes

    for name in [*TARGET_SCORES_B, None]:
        scores, levels, secs = [], [], []
        for s in seeds:
            t0 = time.perf_counter()
            clean, noisy = synthesize_pair_b(s, shape, name)
            secs.append(time.perf_counter() - t0)
            scores.append(score_volumes(clean, noisy))
            levels.append(float(np.sqrt(np.mean(np.square(noisy - clean, dtype=np.float64)))) / float(clean.std()))
        q = np.percentile(scores, [0, 10, 50, 90, 100])
        print(f"{name or 'drawn':9s}: score median {q[2]:.3f}, p10-p90 {q[1]:.3f}-{q[3]:.3f}, range {q[0]:.3f}-"
              f"{q[4]:.3f}; noise/clean rms {np.median(levels):.2f} ({min(levels):.2f}-{max(levels):.2f}), "
              f"{sum(v == 0 for v in levels)} noise-free; {np.mean(secs):.2f} s/volume")


if __name__ == "__main__":
    import sys

    _shape = tuple(int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "64,64,1259").split(","))
    _calibrate(range(int(sys.argv[2]) if len(sys.argv) > 2 else 12), _shape)
