"""Synthetic seismic pairs that look like the Image Impeccable challenge's data.

The clean volume follows the recipe of synthoseis, the generator behind the challenge's clean targets
(``/work/shared/research/seismic-data.md`` §1.1, §3.1): a layered log-impedance model (packages of beds
2-12 samples thick, sand/shale contrasts, lateral facies change) seen through folding, regional dip,
differential thickening and normal faults; an optional salt stock (bright top, no internal layering); a water
column whose bottom, the seafloor, is the strongest reflector; Laplacian white noise added to the
reflectivity at 7.5-17.5 dB; a zero-phase Butterworth band-pass at dt = 4 ms whose high cut falls with depth;
scaled to std 100.

The noise reconstructs what ThinkOnward added (§1.4, §3.2): nothing in the water column, fine shallow
cross-hatching, concentric arcs ("smiles") at mid depth, laterally coherent sub-horizontal streaks that grow
with depth and end at a sharp curved lower edge at 70-88 % of the trace, band-limited like the signal, plus a
weak broadband floor. The noisy volume is on its own affine scale: ``noisy = a * (clean + n) + b`` with
``a`` in [0.15, 0.3] and ``b`` in [200, 250], as in the challenge (noisy mean ~223, std ~24).

Volumes are built in slabs of a few inlines with float32 work arrays, so memory stays near the two output
volumes; a full (300, 300, 1259) pair takes a few tens of seconds on two cores.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, signal

from impeccable.core.amplitude import to_uint8  # the one uint8 scaling (the scorer's)
from impeccable.core.errors import InputError

DT = 0.004
"""Sample interval in seconds (the challenge's 4 ms)."""
SAMPLES_PER_TRACE = 2.5
"""Lateral-to-vertical aspect: one trace (12.5 m) spans about 2.5 samples (4 ms two-way time at 2.5 km/s is
5 m); dips, fault planes and circular noise wavefronts use it to look isotropic in physical space."""
REFERENCE_SAMPLES = 1259
"""Trace length of the challenge's volumes; depths (seafloor, noise edge) scale with ``nt / 1259``."""
CLEAN_STD = 100.0
"""Std of every clean volume (synthoseis' ``_scale_seismic``)."""
NOISE_LEVELS: dict[str, float] = {"light": 0.26, "moderate": 0.44, "strong": 0.58}
"""Named noise levels (noise RMS / clean RMS), calibrated on the challenge's metric (noisy vs clean). Full size
(300, 300, 1259), 8 seeds: "moderate" scores 0.901 median (0.865-0.928), "strong" 0.850 (0.813-0.896);
(64, 64, 1259), 10 seeds: 0.907 and 0.872 (smaller volumes score slightly higher at one level).
"light" (the lightest tail of the per-volume draw): (32, 128, 1259), seeds 900001-4: 0.950 (0.943-0.959)."""
TARGET_SCORE = (0.82, 0.905, 0.95)
"""(min, mode, max) of the triangular law of the noisy-vs-clean score drawn per volume when no level is given
(median ~0.894); the level that gives it is then solved for that volume."""
MIN_SHAPE = (8, 8, 32)

_SLAB_VOXELS = 3_000_000  # voxels per slab of inlines: work arrays of ~12 MB stay cache-friendly


def synthesize_pair(seed: int, shape: tuple[int, int, int] = (300, 300, 1259),
                    noise_level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Make one synthetic (clean, noisy) pair.

    Args:
        seed: Non-negative seed; the pair is a deterministic function of ``(seed, shape, noise_level)``.
            The geology and the noise pattern depend on ``(seed, shape)`` only, so two levels of one seed
            share both and differ only in the noise amplitude.
        shape: ``(inline, crossline, sample)``; each lateral axis at least 8, at least 32 samples. Depths
            scale with ``sample / 1259``; lateral features are placed inside the volume.
        noise_level: Physical meaning: the RMS of the added noise ``n`` over the whole volume (water column
            and all) divided by the RMS of the clean volume (std 100), both before the affine rescale; so
            0.5 means a noise RMS of 50 clean units, concentrated between the seafloor and the curved lower
            edge where it locally exceeds the signal. ``NOISE_LEVELS`` holds calibrated names. None draws a
            target noisy-vs-clean challenge score per volume from ``TARGET_SCORE`` (0.82-0.95, median
            ~0.894) and solves the level that gives it on that volume (scores of a fixed level vary by
            about +-0.03 between volumes).

    Returns:
        ``(clean, noisy)``, each ``(inline, crossline, sample)`` float32. ``clean`` has mean ~0 and std 100;
        ``noisy = a * (clean + n) + b`` with ``a`` in [0.15, 0.3], ``b`` in [200, 250], ``n`` exactly zero
        above the seafloor.

    Raises:
        InputError: A negative seed, a too small shape, or a negative / non-finite noise level.
    """
    shape = _check_shape(shape)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("synthetic seed is not a non-negative integer", received=seed, expected="0, 1, 2, ...")
    plan = _draw_plan(int(seed), shape)
    level = resolve_noise_level(noise_level)
    target = None if level is not None else float(plan.level_rng.triangular(*TARGET_SCORE))
    return _render(plan, level, target)


def resolve_noise_level(value: str | float | None) -> float | None:
    """Turn ``"moderate"``/``"strong"``/a number/None into a level (None stays None: drawn per volume).

    Raises:
        InputError: An unknown name, a negative or non-finite number.
    """
    if value is None or isinstance(value, (int, float)):
        level = value
    elif value in NOISE_LEVELS:
        level = NOISE_LEVELS[value]
    else:
        try:
            level = float(value)
        except ValueError:
            level = math.nan
        if not math.isfinite(level):
            raise InputError("unknown noise level", received=repr(value),
                             expected=f"a number >= 0 or one of {sorted(NOISE_LEVELS)}")
    if level is not None and not (math.isfinite(level) and level >= 0):
        raise InputError("noise level is not a finite number >= 0", received=level,
                         expected=f"e.g. {NOISE_LEVELS['moderate']} (moderate)")
    return None if level is None else float(level)


def pair_score(clean: np.ndarray, noisy: np.ndarray) -> float:
    """The challenge score of ``noisy`` against ``clean`` (both ``(inline, crossline, sample)``), cheaply.

    Same numbers as :func:`impeccable.data.scoring.score_volumes`, but only the six scoring sections are
    cast to float64 and uint8 (with each volume's own min and max), not the whole volume.
    """
    from impeccable.data.scoring import score_scoring_sections

    return score_scoring_sections(clean, noisy, (float(clean.min()), float(clean.max())),
                                  (float(noisy.min()), float(noisy.max())))


# --------------------------------------------------------------------------------------------------------
# Drawing the model: every random choice of a volume, as small 1-D/2-D arrays and scalars


@dataclass
class _Fault:
    """A normal fault: a plane through (x0, y0, t0) with unit normal (nx, ny) and dip slope ``k`` (traces of
    lateral shift per sample), throw ``throw`` samples tapered along strike (Gaussian ``sigma``) and upward
    to zero at ``t_tip``."""

    x0: float
    y0: float
    t0: float
    nx: float
    ny: float
    k: float
    throw: float
    sigma: float
    t_tip: float
    ramp: float


@dataclass
class _Salt:
    """A salt stock centred at (cx, cy): radius ``radius[t]`` (traces) times an azimuthal factor."""

    cx: float
    cy: float
    radius: np.ndarray
    h2: tuple[float, float]
    h3: tuple[float, float]
    t_top: int
    ln_imp: float


@dataclass
class _Surface:
    """A noise event: a surface t(x, y) of band-limited spikes (streak, or one ring of an arc family)."""

    kind: str
    amp: float
    params: tuple


@dataclass
class _Plan:
    shape: tuple[int, int, int]
    seed: int
    level_rng: np.random.Generator
    # geology
    a0: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    phi1: np.ndarray
    phi2: np.ndarray
    faults: list[_Fault]
    g0: int
    table: np.ndarray  # (n, 4): ln impedance, its step to the next sample, facies deviations 1 and 2
    w1: np.ndarray
    w2: np.ndarray
    t_wb: np.ndarray
    ln_water: float
    salt: _Salt | None
    snr_db: float
    # wavelet (frequency responses on the rfft grid) and its depth blend
    nfft: int
    h_shallow: np.ndarray
    h_deep: np.ndarray
    blend: np.ndarray
    # noise
    t_edge: np.ndarray
    edge_width: float
    below_edge: float
    rise: tuple[float, float]
    p_streak: float
    h_noise: np.ndarray
    wx: np.ndarray
    wy: np.ndarray
    zfield: np.ndarray
    w_field: float
    surfaces: list[_Surface]
    patches: list[np.ndarray]
    hatch: list[tuple[float, float, float, np.ndarray, np.ndarray]]
    hatch_len: float
    hatch_amp: float
    floor: float
    affine: tuple[float, float]
    extra: dict = field(default_factory=dict)


def _check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        dims = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        dims = ()
    if len(dims) != 3 or any(d < m for d, m in zip(dims, MIN_SHAPE)):
        raise InputError("synthetic volume shape is too small or not 3-D", received=tuple(shape) if dims else shape,
                         expected=f"(inline >= {MIN_SHAPE[0]}, crossline >= {MIN_SHAPE[1]}, sample >= {MIN_SHAPE[2]})")
    return dims  # type: ignore[return-value]


def _field2d(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A smooth Gaussian random field of unit std and correlation length ``sigma`` (cells), float64.

    Built on a coarse padded grid (so that small volumes get the statistics of a crop of a large one) and
    interpolated, which keeps the cost independent of ``sigma``.
    """
    step = max(1.0, sigma / 3.0)
    sig_c = sigma / step
    pad = int(math.ceil(4 * sig_c)) + 2
    coarse = [int(math.ceil((n - 1) / step)) + 1 + 2 * pad for n in shape]
    white = rng.standard_normal(coarse)
    # Unit variance: a 2-D Gaussian of width s passes 1 / (4 pi s^2) of white-noise variance.
    smooth = ndimage.gaussian_filter(white, sig_c, mode="wrap") * (2.0 * math.sqrt(math.pi) * sig_c)
    grid = np.meshgrid(*[pad + np.arange(n) / step for n in shape], indexing="ij")
    return ndimage.map_coordinates(smooth, grid, order=3, mode="nearest")


def _gauss_bumps(rng: np.random.Generator, shape: tuple[int, int], count: int, amp: tuple[float, float],
                 sigma: tuple[float, float]) -> np.ndarray:
    """Sum of ``count`` Gaussian bumps of random sign (FaultSeg3D-style folds), float64 (inline, crossline)."""
    x = np.arange(shape[0])[:, None]
    y = np.arange(shape[1])[None, :]
    out = np.zeros(shape)
    for _ in range(count):
        cx, cy = rng.uniform(-0.2, 1.2) * shape[0], rng.uniform(-0.2, 1.2) * shape[1]
        s = rng.uniform(*sigma)
        out += rng.choice([-1, 1]) * rng.uniform(*amp) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    return out


def _butter_power(nfft: int, low: float, high: float, order: int = 4) -> np.ndarray:
    """|H(f)|^2 of a Butterworth band-pass on the rfft grid: the zero-phase response of ``sosfiltfilt``."""
    nyq = 0.5 / DT
    high = min(high, 0.95 * nyq)
    sos = signal.butter(order, [low, high], btype="band", fs=1.0 / DT, output="sos")
    _, h = signal.sosfreqz(sos, worN=sfft.rfftfreq(nfft, DT), fs=1.0 / DT)
    return (np.abs(h) ** 2).astype(np.float32)


def _draw_plan(seed: int, shape: tuple[int, int, int]) -> _Plan:
    """Every random choice of one volume (everything but the per-slab white noises)."""
    il, xl, nt = shape
    streams = np.random.SeedSequence((seed, 0xC0FFEE)).spawn(5)
    geo, strat, salt_rng, noise, misc = (np.random.default_rng(s) for s in streams)
    ts = nt / REFERENCE_SAMPLES  # depth scale
    width = float(max(il, xl))
    lat = (il, xl)
    t = np.arange(nt, dtype=np.float64)

    # Seafloor: 150-280 samples (full size) with gentle relief and slope.
    sf_base = geo.uniform(150, 280) * ts
    t_wb = (sf_base + geo.uniform(5, 40) * ts * _field2d(geo, lat, geo.uniform(60, 160) * width / 300)
            + geo.uniform(-0.12, 0.12) * (np.arange(il)[:, None] - il / 2)
            + geo.uniform(-0.12, 0.12) * (np.arange(xl)[None, :] - xl / 2))
    t_wb = np.clip(t_wb, 0.06 * nt, 0.4 * nt)

    # Geologic time u(x, y, t) = t + a0 + a1 * phi1(t) + a2 * phi2(t): regional dip and long folds (a0),
    # folds growing with depth (a1, FaultSeg3D's 1.5 t/T factor), differential thickening (a2).
    xs = np.arange(il)[:, None] - il / 2
    ys = np.arange(xl)[None, :] - xl / 2
    dipx, dipy = geo.uniform(-0.25, 0.25, size=2) * geo.uniform(0, 1)
    a0 = dipx * xs + dipy * ys + geo.uniform(0, 25) * ts * _field2d(geo, lat, geo.uniform(80, 200) * width / 300)
    a1 = _gauss_bumps(geo, lat, int(geo.integers(1, 5)), (10 * ts, 70 * ts), (0.1 * width, 0.5 * width))
    a2 = geo.uniform(5, 30) * ts * _field2d(geo, lat, geo.uniform(40, 120) * width / 300)
    phi1 = 1.5 * t / nt
    phase = geo.uniform(0, 2 * np.pi)
    cycles = geo.uniform(0.5, 2.0)
    phi2 = np.sin(2 * np.pi * cycles * t / nt + phase)
    # Keep du/dt > ~0.35 so that no bed inverts.
    slope = 1.5 / nt * np.abs(a1).max() + 2 * np.pi * cycles / nt * np.abs(a2).max()
    if slope > 0.65:
        a1 *= 0.65 / slope
        a2 *= 0.65 / slope

    # Normal faults: dip 62-82 degrees, throw 5-30 samples, dying out along strike and upward.
    faults = []
    n_faults = int(geo.choice([0, 1, 2, 3, 4, 5, 6], p=[0.1, 0.15, 0.2, 0.2, 0.15, 0.1, 0.1]))
    for _ in range(n_faults):
        strike = geo.uniform(0, 2 * np.pi)
        dip = np.deg2rad(geo.uniform(62, 82))
        t_tip = float(np.clip(geo.uniform(-0.1, 0.5) * nt, t_wb.max() + 10 * ts, 0.8 * nt))
        faults.append(_Fault(x0=geo.uniform(0.1, 0.9) * il, y0=geo.uniform(0.1, 0.9) * xl,
                             t0=geo.uniform(0.3, 0.8) * nt, nx=math.cos(strike), ny=math.sin(strike),
                             k=1.0 / (SAMPLES_PER_TRACE * math.tan(dip)), throw=geo.uniform(5, 30) * max(ts, 0.4),
                             sigma=geo.uniform(0.3, 1.0) * width, t_tip=t_tip,
                             ramp=geo.uniform(60, 250) * ts + 4))

    # Stratigraphy on the geologic axis: packages of beds with their own thickness range, contrast and sand.
    reach = (np.abs(a0).max() + np.abs(a1).max() * 1.5 + np.abs(a2).max()
             + sum(f.throw for f in faults) + 4)
    g0 = int(math.floor(-reach))
    n_g = int(math.ceil(nt + 2 * reach)) + 4
    ln_imp, dev1, dev2 = _stratigraphy(strat, n_g, g0, t_wb.mean(), nt)
    table = np.stack([ln_imp, np.append(np.diff(ln_imp), 0.0), dev1, dev2], axis=1).astype(np.float32)
    w1 = _field2d(strat, lat, strat.uniform(30, 120) * width / 300)
    w2 = _field2d(strat, lat, strat.uniform(15, 60) * width / 300)
    # Water vs the youngest sediment: the seafloor contrast (r ~ 0.17-0.3) beats every bed (r ~ 0.01-0.08).
    ln_water = float(ln_imp[int(np.clip(t_wb.mean() - g0, 0, n_g - 1))] - strat.uniform(0.35, 0.6))

    salt = _draw_salt(salt_rng, shape, t_wb, ln_imp, g0) if salt_rng.random() < 0.35 else None

    # Wavelet: synthoseis' band (low 3-6 Hz, high 20-35 Hz); the deep high cut is 60-80 % of the shallow.
    nfft = sfft.next_fast_len(nt + max(128, nt // 4), real=True)
    low, high = misc.uniform(3, 6), misc.uniform(24, 38)
    h_shallow = _butter_power(nfft, low, high)
    h_deep = _butter_power(nfft, low, high * misc.uniform(0.6, 0.8))
    blend = np.clip((t - t_wb.mean()) / (nt - t_wb.mean()), 0, 1).astype(np.float32)
    snr_db = float(np.clip(misc.triangular(7.5, 12.5, 17.5), 7.5, 17.5))

    noise_part = _draw_noise(noise, shape, t_wb, nfft)
    a = misc.uniform(0.15, 0.3)
    b = misc.uniform(200, 250)
    return _Plan(shape=shape, seed=seed, level_rng=np.random.default_rng((seed, 0x1E7E1)), a0=a0.astype(np.float32),
                 a1=a1.astype(np.float32), a2=a2.astype(np.float32), phi1=phi1.astype(np.float32),
                 phi2=phi2.astype(np.float32), faults=faults, g0=g0, table=table, w1=w1.astype(np.float32),
                 w2=w2.astype(np.float32), t_wb=t_wb.astype(np.float32), ln_water=ln_water, salt=salt,
                 snr_db=snr_db, nfft=nfft, h_shallow=h_shallow, h_deep=h_deep, blend=blend,
                 affine=(a, b), extra={"wb_median": float(np.median(t_wb)),
                                       "span_median": float(np.median(noise_part["t_edge"] - t_wb))},
                 **noise_part)


def _stratigraphy(rng: np.random.Generator, n_g: int, g0: int, sf: float, nt: int):
    """1-D log-impedance, per sample of the geologic axis, and two facies deviation series (float64)."""
    ln_imp = np.empty(n_g)
    dev1 = np.empty(n_g)
    dev2 = np.empty(n_g)
    pos = 0
    while pos < n_g:
        pkg_end = pos + int(rng.uniform(60, 300))
        tmin = rng.uniform(2, 5)
        tmax = rng.uniform(tmin + 2, 12)
        quiet = rng.random() < 0.15
        contrast = rng.uniform(0.004, 0.012) if quiet else rng.uniform(0.02, 0.1)
        sand_frac = rng.uniform(0.05, 0.25)
        sand_off = rng.uniform(-0.15, 0.15) if not quiet else 0.0
        value = 0.0
        while pos < min(pkg_end, n_g):
            th = int(round(rng.uniform(tmin, tmax)))
            end = min(pos + max(th, 2), n_g)
            if rng.random() < sand_frac:
                layer = sand_off + rng.normal(0, contrast / 2)
            else:
                value = 0.5 * value + rng.normal(0, contrast)  # mild persistence between shale beds
                layer = value
            ln_imp[pos:end] = layer
            dev1[pos:end] = rng.normal(0, 0.6 * contrast)
            dev2[pos:end] = rng.normal(0, 0.4 * contrast)
            pos = end
    # Compaction trend: ~2.9 (seafloor mud) to ~8 (deep) km/s*g/cc.
    g = np.arange(n_g) + g0
    depth = np.clip((g - sf) / nt, 0, None)
    ln_imp += math.log(2.9) + (math.log(rng.uniform(7, 9)) - math.log(2.9)) * depth ** 0.6
    return ln_imp, dev1, dev2


def _draw_salt(rng: np.random.Generator, shape: tuple[int, int, int], t_wb: np.ndarray, ln_imp: np.ndarray,
               g0: int) -> _Salt:
    """A salt stock: rounded crest, radius 7-30 % of the width, irregular outline, halite impedance."""
    il, xl, nt = shape
    width = max(il, xl)
    r_max = rng.uniform(0.07, 0.3) * width
    t_top = int(rng.uniform(t_wb.max() + 0.08 * nt, 0.55 * nt))
    crest = rng.uniform(0.5, 1.5) * r_max * SAMPLES_PER_TRACE
    t = np.arange(nt, dtype=np.float64)
    prof = np.sqrt(np.clip((t - t_top) / crest, 0, 1))
    neck_at = rng.uniform(0.6, 1.2) * nt
    prof *= 1 - rng.uniform(0, 0.45) * np.exp(-((t - neck_at) / (0.15 * nt)) ** 2)
    prof *= 1 + 0.15 * np.sin(2 * np.pi * t / rng.uniform(0.3, 0.8) / nt + rng.uniform(0, 6.3))
    radius = (r_max * prof).astype(np.float32)
    top_sed = ln_imp[int(np.clip(t_top - g0, 0, len(ln_imp) - 1))]
    return _Salt(cx=rng.uniform(0.2, 0.8) * il, cy=rng.uniform(0.2, 0.8) * xl, radius=radius,
                 h2=(rng.uniform(0, 0.15), rng.uniform(0, 6.3)), h3=(rng.uniform(0, 0.1), rng.uniform(0, 6.3)),
                 t_top=t_top, ln_imp=float(max(top_sed + rng.uniform(0.25, 0.5), math.log(9.5))))


def _draw_noise(rng: np.random.Generator, shape: tuple[int, int, int], t_wb: np.ndarray, nfft: int) -> dict:
    """The noise model's random choices: zone, band, streak field, surfaces (streaks, arcs), hatch."""
    il, xl, nt = shape
    ts = nt / REFERENCE_SAMPLES
    width = max(il, xl)
    x = np.arange(il)[:, None]
    y = np.arange(xl)[None, :]

    # The curved lower edge: a big arc (usually a smile, deepest at its centre) at 70-88 % of the trace.
    ex, ey = rng.uniform(-0.3, 1.3) * il, rng.uniform(-0.3, 1.3) * xl
    r_edge = rng.uniform(500, 1800) * ts
    rho = np.hypot(x - ex, y - ey) * SAMPLES_PER_TRACE * ts
    sag = r_edge - np.sqrt(np.clip(r_edge ** 2 - rho ** 2, 0, None))
    sign = 1.0 if rng.random() < 0.75 else -1.0
    limit = 0.1 * nt  # soft saturation keeps the edge curved (no clipped flat stretch) within 70-88 %
    base = rng.uniform(0.8, 0.86) * nt if sign > 0 else rng.uniform(0.7, 0.76) * nt
    t_edge = base - sign * limit * np.tanh(sag / limit)
    t_edge = np.maximum(t_edge, t_wb + 0.25 * nt)

    # Same band as the signal (the challenge's noise peaks near 27 Hz inside the 5-37 Hz signal band).
    lo, hi = rng.uniform(6, 10), rng.uniform(28, 38)
    h_noise = _butter_power(nfft, lo, hi)

    # Laterally correlated streak field: coarse white noise spread by Gaussian rows (Wx Z Wy^T), sigma 8-22
    # traces, so each band-passed wiggle is a sub-horizontal streak tens of traces long.
    sig = rng.uniform(8, 22)
    wx = _gauss_rows(il, sig)
    wy = _gauss_rows(xl, sig)
    # Spread along crossline once here ((coarse inline, crossline, sample), ~35 MB at full size); each slab
    # then needs one small matrix product along inline.
    zfield = np.matmul(wy, rng.standard_normal((wx.shape[1], wy.shape[1], nt), dtype=np.float32))

    span = t_edge - t_wb
    surfaces: list[_Surface] = []
    patches = [_field2d(rng, (il, xl), rng.uniform(15, 50) * width / 300).astype(np.float32) for _ in range(6)]
    # Sub-horizontal streak surfaces, denser and stronger towards the edge, partly following its curve.
    n_streak = int(rng.uniform(40, 80) * max(ts, 0.25))
    for _ in range(n_streak):
        z = rng.uniform(0, 1) ** 0.5
        bend = rng.uniform(0.3, 1.0)
        tilt = rng.uniform(-0.04, 0.04, size=2)
        params = (z, bend, tilt[0], tilt[1], int(rng.integers(len(patches))), rng.uniform(-0.6, 0.6))
        surfaces.append(_Surface("streak", float(rng.choice([-1, 1]) * rng.uniform(1.0, 3.0)), params))
    # Arc families: concentric lower half-shells ("smiles") at mid depth, plus one or two giant arcs.
    for _ in range(int(rng.integers(3, 10))):
        cx, cy = rng.uniform(-0.1, 1.1) * il, rng.uniform(-0.1, 1.1) * xl
        t0 = float(rng.uniform(0.1, 0.6) * (np.median(span)) + np.median(t_wb))
        r0 = rng.uniform(20, 250) * ts
        dr = rng.uniform(6, 20) * max(ts, 0.3)
        power = rng.uniform(1, 4)
        amp = rng.uniform(1.5, 3.5)
        for j in range(int(rng.integers(3, 10))):
            surfaces.append(_Surface("arc", float(rng.choice([-1, 1]) * amp * rng.uniform(0.5, 1.0)),
                                     (cx, cy, t0, r0 + j * dr + rng.uniform(-2, 2), power)))
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = rng.uniform(0, 1) * il, rng.uniform(0, 1) * xl
        r0 = rng.uniform(300, 1000) * ts
        t0 = float(rng.uniform(0.6, 0.85) * nt - r0)
        for j in range(int(rng.integers(1, 4))):
            surfaces.append(_Surface("arc", float(rng.choice([-1, 1]) * rng.uniform(1.5, 3.0)),
                                     (cx, cy, t0, r0 + j * rng.uniform(12, 40), rng.uniform(1.5, 3))))

    # Shallow cross-hatch: two plane-wave families dipping 12-28 degrees (physical), a higher band, fading
    # with depth below the seafloor.
    hatch = []
    h_hatch = _butter_power(nfft, rng.uniform(22, 30), rng.uniform(48, 60))
    for sgn in (-1, 1):
        az = rng.uniform(0, 2 * np.pi)
        p = math.tan(math.radians(rng.uniform(12, 28))) * SAMPLES_PER_TRACE * sgn
        dx, dy = p * math.cos(az), p * math.sin(az)
        offs = max(0.0, dx * (il - 1)) + max(0.0, dy * (xl - 1))  # keeps t - dx*x - dy*y + offs >= 0
        n_ser = int(nt + abs(dx) * il + abs(dy) * xl + 4)
        spikes = rng.standard_normal(n_ser) * (rng.random(n_ser) < 0.35)
        series = _filter_1d(spikes, h_hatch, nfft)
        # Patches, not endless planes: a smooth field switches each family on and off laterally.
        patch = _field2d(rng, (il, xl), rng.uniform(20, 50) * width / 300) + rng.uniform(0.0, 0.6)
        hatch.append((dx, dy, offs, series.astype(np.float32), np.maximum(patch, 0).astype(np.float32)))
    return dict(t_edge=t_edge.astype(np.float32), edge_width=float(rng.uniform(6, 20) * max(ts, 0.3)),
                below_edge=float(rng.uniform(0.0, 0.05)), rise=(float(rng.uniform(0, 6)), float(rng.uniform(4, 12))),
                p_streak=float(rng.choice([1.5, 2.0, 2.5, 3.0])), h_noise=h_noise, wx=wx, wy=wy,
                zfield=zfield.reshape(wx.shape[1], -1), w_field=float(rng.uniform(0.3, 0.6)), surfaces=surfaces,
                patches=patches, hatch=hatch, hatch_len=float(rng.uniform(60, 200) * ts),
                hatch_amp=float(rng.uniform(0.03, 0.07)), floor=float(rng.uniform(0.01, 0.03)))


def _filter_1d(x: np.ndarray, power_nfft: np.ndarray, nfft: int) -> np.ndarray:
    """Band-limit a 1-D series with a response given on an ``nfft`` grid (interpolated to the series')."""
    n = sfft.next_fast_len(len(x) + 128, real=True)
    f_src = sfft.rfftfreq(nfft, DT)
    f_dst = sfft.rfftfreq(n, DT)
    h = np.interp(f_dst, f_src, power_nfft)
    out = sfft.irfft(sfft.rfft(x, n) * h, n)[: len(x)]
    return out / (out.std() + 1e-12)


def _gauss_rows(n: int, sigma: float) -> np.ndarray:
    """(n, m) float32 interpolation rows from m coarse nodes (spacing sigma) with unit-sum-of-squares rows."""
    nodes = np.arange(-2 * sigma, n + 2 * sigma, sigma)
    w = np.exp(-0.5 * ((np.arange(n)[:, None] - nodes[None, :]) / sigma) ** 2)
    w /= np.sqrt((w ** 2).sum(axis=1, keepdims=True))
    return w.astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# Rendering, slab by slab of inlines


def _workers() -> int:
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _render(plan: _Plan, level: float | None, target_score: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Build both volumes: reflectivity, then in-target noise + wavelet and the noise, then the scales.

    ``level`` is the noise RMS / clean RMS; when it is None, the level that gives ``target_score`` is solved.
    """
    il, xl, nt = plan.shape
    slab = max(1, _SLAB_VOXELS // (xl * nt))
    slabs = [(i0, min(il, i0 + slab)) for i0 in range(0, il, slab)]
    t = np.arange(nt, dtype=np.float32)
    clean = np.empty(plan.shape, dtype=np.float32)
    noisy = np.empty(plan.shape, dtype=np.float32)
    workers = _workers()

    # Pass 1: reflectivity, and its std below the seafloor (synthoseis' reference for the in-target S/N).
    sumsq, count = 0.0, 0
    k_sf = min(nt, int(math.ceil(float(plan.t_wb.max()))) + 2)
    for i0, i1 in slabs:
        r = _reflectivity(plan, i0, i1, t)
        clean[i0:i1] = r
        deep = r[..., k_sf:]
        sumsq += float(np.vdot(deep, deep))
        below = t[None, None, :k_sf] > plan.t_wb[i0:i1, :, None] + 1
        sumsq += float(np.sum(np.square(r[..., :k_sf], dtype=np.float32), where=below))
        count += deep.size + int(below.sum())
    sigma_in = math.sqrt(sumsq / max(count, 1)) / 10 ** (plan.snr_db / 20)

    # The broadband floor is set against the band-limited noise's RMS, measured on a pilot slab.
    mid = slabs[len(slabs) // 2]
    pilot = _noise_slab(plan, *mid, t, np.random.default_rng((plan.seed, 0xF100)), 0.0, workers)
    live = pilot[pilot != 0]
    floor_amp = plan.floor * float(np.sqrt(np.mean(np.square(live)))) if live.size else 0.0
    del pilot, live

    # Pass 2: in-target Laplacian noise + band-pass (high cut falling with depth); the raw noise.
    c_sum = c_sq = n_sq = 0.0
    for i0, i1 in slabs:
        rng = np.random.default_rng((plan.seed, 0xB10C, i0))
        r = clean[i0:i1]
        r += _laplace(rng, r.shape, sigma_in)
        spec = sfft.rfft(r, n=plan.nfft, axis=-1, workers=workers)
        shallow = sfft.irfft(spec * plan.h_shallow, n=plan.nfft, axis=-1, workers=workers)[..., :nt]
        deep = sfft.irfft(spec * plan.h_deep, n=plan.nfft, axis=-1, workers=workers)[..., :nt]
        del spec
        deep -= shallow
        deep *= plan.blend
        shallow += deep
        clean[i0:i1] = shallow
        c_sum += float(shallow.sum(dtype=np.float64))
        c_sq += float(np.vdot(shallow, shallow))
        n = _noise_slab(plan, i0, i1, t, rng, floor_amp, workers)
        noisy[i0:i1] = n
        n_sq += float(np.vdot(n, n))

    size = clean.size
    c_std = math.sqrt(max(c_sq / size - (c_sum / size) ** 2, 1e-30))
    kc = np.float32(CLEAN_STD / c_std)
    for i0, i1 in slabs:
        clean[i0:i1] *= kc
    n_rms = math.sqrt(n_sq / size)
    unit = CLEAN_STD / n_rms if n_rms > 0 else 0.0  # noise gain per unit of level
    if level is None:
        level = _solve_level(clean, noisy, unit, float(target_score), slabs)
    kn = np.float32(level * unit)
    a, b = (np.float32(v) for v in plan.affine)
    # Pass 3: the noisy volume, on its own affine amplitude scale.
    for i0, i1 in slabs:
        c = clean[i0:i1]
        n = noisy[i0:i1]
        n *= kn
        n += c
        n *= a
        n += b
    return clean, noisy


def _solve_level(clean: np.ndarray, noise: np.ndarray, unit: float, target: float,
                 slabs: list[tuple[int, int]]) -> float:
    """The noise level whose noisy-vs-clean challenge score is ``target`` (both volumes canonical float32).

    The score is invariant to the noisy volume's affine scale, so ``clean + k * noise`` stands for it. One
    pass over the slabs gets the volume's min and max for a grid of levels (the uint8 mapping needs them);
    the six scoring sections are then scored along a bisection of that grid and two secant steps.
    """
    from impeccable.data.scoring import section_indices, section_ssim, trimmed_mean

    grid = np.geomspace(0.08, 2.0, 12)
    gains = (grid * unit).astype(np.float32)
    lows = np.full(len(grid), np.inf)
    highs = np.full(len(grid), -np.inf)
    for i0, i1 in slabs:
        c, n = clean[i0:i1], noise[i0:i1]
        tmp = np.empty_like(c)
        for j, g in enumerate(gains):
            np.multiply(n, g, out=tmp)
            tmp += c
            lows[j] = min(lows[j], float(tmp.min()))
            highs[j] = max(highs[j], float(tmp.max()))
    il, xl, _ = clean.shape
    cuts = [(i, slice(None)) for i in section_indices(il)] + [(slice(None), x) for x in section_indices(xl)]
    sections = [(clean[cut].astype(np.float64), noise[cut].astype(np.float64)) for cut in cuts]
    c_lo, c_hi = float(clean.min()), float(clean.max())
    truth = [to_uint8(c, c_lo, c_hi) for c, _ in sections]
    log_grid = np.log(grid)

    def score(log_level: float) -> float:
        # Between grid levels the volume's min / max are interpolated (exact at the grid points).
        lo = float(np.interp(log_level, log_grid, lows))
        hi = float(np.interp(log_level, log_grid, highs))
        gain = math.exp(log_level) * unit
        return trimmed_mean([section_ssim(t, to_uint8(c + gain * n, lo, hi)) for t, (c, n) in zip(truth, sections)])

    # The score falls with the level: bisect the grid for a bracket, then two secant (regula falsi) steps.
    lo_i, hi_i = 0, len(grid) - 1
    s_lo, s_hi = score(log_grid[lo_i]), score(log_grid[hi_i])
    if target >= s_lo:
        return float(grid[lo_i])
    if target <= s_hi:
        return float(grid[hi_i])
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        s_mid = score(log_grid[mid])
        if s_mid > target:
            lo_i, s_lo = mid, s_mid
        else:
            hi_i, s_hi = mid, s_mid
    x_lo, x_hi = log_grid[lo_i], log_grid[hi_i]
    x = x_lo
    for _ in range(2):
        x = x_lo + (s_lo - target) / (s_lo - s_hi) * (x_hi - x_lo)
        s_x = score(x)
        if s_x > target:
            x_lo, s_lo = x, s_x
        else:
            x_hi, s_hi = x, s_x
    return float(math.exp(x))


def _laplace(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Laplacian white noise (|x| exponential, random sign, as synthoseis), float32, inverse-CDF sampled."""
    u = rng.random(shape, dtype=np.float32)
    u -= 0.5
    sign = np.sign(u)
    np.abs(u, out=u)
    np.minimum(u, np.float32(0.4999999), out=u)
    u *= -2.0
    np.log1p(u, out=u)
    u *= sign
    u *= np.float32(-std / math.sqrt(2.0))
    return u


def _reflectivity(plan: _Plan, i0: int, i1: int, t: np.ndarray) -> np.ndarray:
    """Normal-incidence reflectivity ``0.5 * d ln(Vp rho) / dt`` of inlines i0:i1, (sl, crossline, sample) float32."""
    il, xl, nt = plan.shape
    x = np.arange(i0, i1, dtype=np.float32)[:, None]
    y = np.arange(xl, dtype=np.float32)[None, :]
    u = t + plan.a0[i0:i1, :, None]
    u += plan.a1[i0:i1, :, None] * plan.phi1
    u += plan.a2[i0:i1, :, None] * plan.phi2
    for f in plan.faults:
        k0 = int(max(0, math.floor(f.t_tip)))
        if k0 >= nt:
            continue
        tt = t[k0:]
        across = (x - f.x0) * f.nx + (y - f.y0) * f.ny
        along = (y - f.y0) * f.nx - (x - f.x0) * f.ny
        throw = (f.throw * np.exp(-0.5 * (along / f.sigma) ** 2)).astype(np.float32)
        # Hanging wall = the side the plane dips towards (d > 0); it moves down, so it shows younger beds.
        d = across[:, :, None] - (tt - f.t0) * np.float32(f.k)
        d *= 2.0
        d += 0.5
        np.clip(d, 0.0, 1.0, out=d)  # half-trace ramp across the plane: no staircase aliasing
        d *= throw[:, :, None]
        d *= _smoothstep((tt - f.t_tip) / f.ramp).astype(np.float32)
        u[..., k0:] -= d
    g = u
    g -= np.float32(plan.g0)
    np.clip(g, 0.0, np.float32(len(plan.table) - 1.001), out=g)
    idx = g.astype(np.int32)
    g -= idx  # fraction
    rows = np.take(plan.table, idx, axis=0)  # ~3x faster than fancy indexing here
    del idx
    ln = rows[..., 0]
    ln += g * rows[..., 1]
    ln += plan.w1[i0:i1, :, None] * rows[..., 2]
    ln += plan.w2[i0:i1, :, None] * rows[..., 3]
    ln = np.ascontiguousarray(ln)
    del rows, g, u
    if plan.salt is not None:
        _insert_salt(plan.salt, ln, i0, i1)
    k_sf = min(nt, int(math.ceil(float(plan.t_wb[i0:i1].max()))) + 2)
    water = np.clip(t[:k_sf] - plan.t_wb[i0:i1, :, None] + 0.5, 0.0, 1.0)
    top = ln[..., :k_sf]
    top -= plan.ln_water
    top *= water
    top += plan.ln_water
    r = np.empty_like(ln)
    np.subtract(ln[..., 1:], ln[..., :-1], out=r[..., 1:])
    r[..., 0] = 0.0
    r *= 0.5
    return r


def _insert_salt(salt: _Salt, ln: np.ndarray, i0: int, i1: int) -> None:
    """Replace the impedance inside the salt stock (a soft one-trace boundary avoids jagged flanks)."""
    reach = float(salt.radius.max()) * (1 + salt.h2[0] + salt.h3[0]) + 2
    lo, hi = max(i0, int(salt.cx - reach)), min(i1, int(math.ceil(salt.cx + reach)) + 1)
    y_lo, y_hi = max(0, int(salt.cy - reach)), min(ln.shape[1], int(math.ceil(salt.cy + reach)) + 1)
    if lo >= hi or y_lo >= y_hi or salt.t_top >= ln.shape[2]:
        return
    x = np.arange(lo, hi, dtype=np.float32)[:, None] - salt.cx
    y = np.arange(y_lo, y_hi, dtype=np.float32)[None, :] - salt.cy
    theta = np.arctan2(y, x)
    shape = 1 + salt.h2[0] * np.cos(2 * (theta - salt.h2[1])) + salt.h3[0] * np.cos(3 * (theta - salt.h3[1]))
    rn = (np.hypot(x, y) / shape).astype(np.float32)
    inside = np.clip(salt.radius[salt.t_top:] - rn[:, :, None] + 0.5, 0.0, 1.0)
    box = ln[lo - i0:hi - i0, y_lo:y_hi, salt.t_top:]
    box += inside * (np.float32(salt.ln_imp) - box)


def _noise_slab(plan: _Plan, i0: int, i1: int, t: np.ndarray, rng: np.random.Generator, floor_amp: float,
                workers: int) -> np.ndarray:
    """The unscaled added noise of inlines i0:i1, (sl, crossline, sample) float32, zero above the seafloor."""
    il, xl, nt = plan.shape
    sl = i1 - i0
    twb = plan.t_wb[i0:i1]
    ted = plan.t_edge[i0:i1]
    x = np.arange(i0, i1, dtype=np.float32)[:, None]
    y = np.arange(xl, dtype=np.float32)[None, :]

    # Depth weight of the streaks: ((t - seafloor) / (edge - seafloor))^p, strongest just above the edge.
    z = t - twb[:, :, None]
    z *= (1.0 / (ted - twb))[:, :, None]
    np.clip(z, 0.0, 1.0, out=z)
    env = _power(z, plan.p_streak)
    del z
    buf = (plan.wx[i0:i1] @ plan.zfield).reshape(sl, xl, nt)
    buf *= env
    buf *= np.float32(plan.w_field)
    del env

    flat = buf.reshape(-1)
    base = ((np.arange(sl)[:, None] * xl + np.arange(xl)[None, :]) * nt).astype(np.int64)
    span = ted - twb
    for s in plan.surfaces:
        tk, amp = _surface(plan, s, x, y, twb, span)
        if tk is None:
            continue
        ok = (tk >= 0) & (tk < nt - 1) & (amp != 0)
        if not ok.any():
            continue
        tk, amp, b = tk[ok], amp[ok], base[ok]
        k = np.floor(tk)
        frac = (tk - k).astype(np.float32)
        pos = b + k.astype(np.int64)
        flat[pos] += amp * (1 - frac)
        flat[pos + 1] += amp * frac

    spec = sfft.rfft(buf, n=plan.nfft, axis=-1, workers=workers)
    spec *= plan.h_noise
    buf = sfft.irfft(spec, n=plan.nfft, axis=-1, workers=workers)[..., :nt]
    del spec
    buf = np.ascontiguousarray(buf)
    _add_hatch(plan, buf, x, y, twb, t)
    if floor_amp > 0:
        # Uniform white of the same std: as flat a spectrum as Gaussian, several times cheaper to draw.
        white = rng.random(buf.shape, dtype=np.float32)
        white -= 0.5
        white *= np.float32(floor_amp * math.sqrt(12.0))
        buf += white
        del white
    _gate(plan, buf, twb, ted, t)
    return buf


def _power(z: np.ndarray, p: float) -> np.ndarray:
    """z ** p for p in {1.5, 2, 2.5, 3} with multiplications and sqrt (a generic pow is ~10x slower)."""
    out = z * z if p >= 2 else z.copy()
    if p >= 3:
        out *= z
    if p in (1.5, 2.5):
        out *= np.sqrt(z)
    return out


def _surface(plan: _Plan, s: _Surface, x: np.ndarray, y: np.ndarray, twb: np.ndarray, span: np.ndarray):
    """A noise event's time t(x, y) and amplitude on the slab's traces (float32 2-D), or (None, None)."""
    il, xl, nt = plan.shape
    if s.kind == "streak":
        z, bend, tx, ty, patch, bias = s.params
        flat_t = plan.extra["wb_median"] + z * plan.extra["span_median"]
        tk = bend * (twb + z * span) + (1 - bend) * flat_t + tx * (x - il / 2) + ty * (y - xl / 2)
        amp = s.amp * z ** plan.p_streak * np.maximum(plan.patches[patch][int(x[0, 0]):int(x[-1, 0]) + 1] + bias, 0)
        return tk, amp.astype(np.float32)
    cx, cy, t0, radius, power = s.params
    half = radius / SAMPLES_PER_TRACE + 1  # the shell's lateral half-width in traces
    if float(x[-1, 0]) < cx - half or float(x[0, 0]) > cx + half:
        return None, None  # the shell misses this slab of inlines
    c2 = 1 - ((np.hypot(x - cx, y - cy) * SAMPLES_PER_TRACE) / radius) ** 2
    c2 = np.clip(c2, 0, None)
    tk = t0 + radius * np.sqrt(c2)  # lower half-shell: a "smile"
    depth = np.clip((tk - twb) / span, 0, 1)
    amp = s.amp * c2 ** (power / 2) * depth * (c2 > 0)
    return tk, amp.astype(np.float32)


def _add_hatch(plan: _Plan, buf: np.ndarray, x: np.ndarray, y: np.ndarray, twb: np.ndarray, t: np.ndarray) -> None:
    """Shallow cross-hatch: plane waves (prefiltered 1-D series) fading over ``hatch_len`` below the seafloor."""
    nt = buf.shape[-1]
    k0 = int(math.floor(float(twb.min())))
    k1 = min(nt, int(math.ceil(float(twb.max()) + 3 * plan.hatch_len)))
    if k1 <= k0:
        return
    tt = t[k0:k1]
    fade = np.exp(-np.clip(tt - twb[:, :, None], 0, None) / np.float32(plan.hatch_len))
    i0 = int(x[0, 0])
    for dx, dy, offs, series, patch in plan.hatch:
        s = tt - (dx * x + dy * y + (-offs)).astype(np.float32)[:, :, None]
        np.clip(s, 0, len(series) - 1.001, out=s)
        k = s.astype(np.int32)
        s -= k
        val = series[k]
        val += s * (series[k + 1] - val)
        val *= patch[i0:i0 + x.shape[0], :, None] * np.float32(plan.hatch_amp)
        val *= fade
        buf[..., k0:k1] += val


def _gate(plan: _Plan, buf: np.ndarray, twb: np.ndarray, ted: np.ndarray, t: np.ndarray) -> None:
    """Depth envelope: 0 above the seafloor, a short rise below it, a sharp taper at the curved edge."""
    nt = buf.shape[-1]
    d0, d1 = plan.rise
    ks = max(0, int(math.floor(float(twb.min()))))
    ke = min(nt, int(math.ceil(float(twb.max()) + d0 + d1)) + 1)
    buf[..., :ks] = 0.0
    buf[..., ks:ke] *= _smoothstep((t[ks:ke] - twb[:, :, None] - d0) / d1)
    w = plan.edge_width
    kk0 = max(ke, int(math.floor(float(ted.min()) - w)))
    kk1 = min(nt, int(math.ceil(float(ted.max()) + w)) + 1)
    if kk1 > kk0:
        buf[..., kk0:kk1] *= 1 - (1 - plan.below_edge) * _smoothstep((t[kk0:kk1] - ted[:, :, None] + w / 2) / w)
    buf[..., max(kk1, ke):] *= plan.below_edge


# The challenge-layout writer moved to impeccable.data.challenge_layout; its names stay importable from here.
_LAYOUT_NAMES = ("volume_ids", "volume_seed", "write_challenge_layout")


def __getattr__(name: str):
    # lazy (PEP 562): challenge_layout imports this module, so a top-level import here would be a loop
    if name in _LAYOUT_NAMES:
        from impeccable.data import challenge_layout

        return getattr(challenge_layout, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
