"""Field-like training sections: what real post-stack data do that the synthetic families a and b never do.

Families a and b (:mod:`impeccable.data.families`) give full-length 1259-sample sections with the challenge's
noise. Real lines have top mutes and quiet zones, a few hundred to a few thousand samples, land-like and
marine-like spectra, erratic traces, spikes, bursts, linear and dipping coherent noise, swell, acquisition
footprint, random noise of any colour, AGC'd or true-amplitude gains, and sometimes no noise at all. This
module turns one noisy/clean section pair of a family into such a section, so that the network learns them
(issue 25, deliver 4). It is torch-free numpy; :class:`impeccable.train.dataset.SectionDataset` calls it.

Everything works in one set of units: the clean section is first mapped onto the noisy input's units by a
least-squares gain and offset (the families' noisy volumes live on their own affine scale), so that the
target is reachable from the input (DESIGN §3): the returned ``clean`` is what a perfect denoiser would
output in the input's units.

Every draw comes from the ``rng`` the caller passes, so a training key fixes the section exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FieldMix:
    """How often each field-like trait is drawn (probabilities per section).

    Attributes:
        field_share: Sections that get field-like traits at all; the rest keep the family's section as is
            (only rescaled to the input's units).
        crop_share: Sections cut to a random length and width (a short line, a small survey).
    """

    field_share: float = 0.6
    crop_share: float = 0.5


def in_input_units(noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, float]:
    """The clean section on the noisy section's amplitude scale (least squares gain and offset), and the offset.

    Args:
        noisy: ``(traces, samples)`` float32.
        clean: Same shape.

    Returns:
        ``(clean_in_noisy_units, offset)``; ``noisy - clean_in_noisy_units`` is then the noise alone.
    """
    c = clean.astype(np.float64)
    n = noisy.astype(np.float64)
    cm, nm = c.mean(), n.mean()
    var = ((c - cm) ** 2).mean()
    gain = ((c - cm) * (n - nm)).mean() / var if var > 0 else 1.0
    offset = nm - gain * cm
    return (gain * c + offset).astype(np.float32), float(offset)


def field_section(noisy: np.ndarray, clean: np.ndarray, rng: np.random.Generator,
                  mix: FieldMix = FieldMix()) -> tuple[np.ndarray, np.ndarray]:
    """One field-like training pair from a family's section pair.

    Args:
        noisy: ``(traces, samples)`` float32, the family's noisy section (any affine scale).
        clean: Same shape, its clean section (any affine scale).
        rng: Source of every draw.
        mix: How often each trait is drawn.

    Returns:
        ``(noisy, clean)`` in one set of units, each ``(traces', samples')`` float32 (possibly shorter or
        longer than the input: stretched in time, cut to a random size).
    """
    clean_u, offset = in_input_units(noisy, clean)
    signal = clean_u - np.float32(offset)
    noise = noisy - clean_u
    if rng.random() < mix.field_share:
        signal, noise = _field_traits(signal, noise, rng)
    if rng.random() < mix.crop_share:
        signal, noise = _random_crop(signal, noise, rng)
    # The data's level: zero-mean like most field data, or on the family's offset (the robust scaling must
    # find the level either way).
    level = np.float32(offset if rng.random() < 0.5 else 0.0)
    return signal + noise + level, signal + level


def _field_traits(s: np.ndarray, n: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stretch, extra noise kinds, mutes and quiet zones, gains: each drawn or not."""
    # Land-like (lower, narrower band) to marine-like (higher) spectra: stretch time by 0.4-1.7. Below 0.6 the
    # families' 5-37 Hz band reaches 60-90 Hz at 4 ms, where processed stacks still hold signal (v7, trained
    # down to 0.6, removed what its stacks held above 50-60 Hz: Alaska, F3).
    if rng.random() < 0.7:
        s, n = _stretch(s, n, float(np.exp(rng.uniform(np.log(0.4), np.log(1.7)))))
    # The family's noise at its own frequencies: on a real stack the signal may sit two or three times lower in
    # frequency than noise of the family's kind (family a's 20-70 Hz streaks on Penobscot's 3-20 Hz signal, where
    # v12 took signal and left the noise; session 19), while stretching both together keeps their ratio fixed.
    if rng.random() < 0.4:
        n = _noise_stretch(n, float(np.exp(rng.uniform(np.log(0.4), np.log(2.0)))), rng)
    # The family's noise sits in a fixed layout under the seafloor: reversed in time or across traces, it is
    # noise at any depth and no longer lined up with the structures it was made beside.
    if rng.random() < 0.5:
        n = n[:, ::-1] if rng.random() < 0.5 else n[::-1, :]
    sigma = float(np.std(s)) or 1.0
    if rng.random() < 0.6:  # added to the signal: the target keeps it
        s = s + _fine_layers(s, rng, sigma)
    # The family's own noise at any level, sometimes none (then only the field kinds below).
    n = n * np.float32(0.0 if rng.random() < 0.15 else np.exp(rng.uniform(np.log(0.05), np.log(2.0))))
    kinds = (_coloured_noise, _erratic_traces, _spikes, _bursts, _linear_noise, _swell, _footprint)
    for kind in kinds:
        if rng.random() < 0.3:
            n = n + kind(s, rng, sigma)
    dead = None
    if rng.random() < 0.15:
        dead = rng.random(s.shape[0]) < rng.uniform(0.01, 0.08)
    if rng.random() < 0.3:
        s = _quiet_zone(s, rng)
    if rng.random() < 0.35:
        keep = _top_mute(s.shape, rng)
        s, n = s * keep, n * keep
    if rng.random() < 0.35:
        gain = _agc_gain(s + n, rng) if rng.random() < 0.5 else _decay_gain(s.shape, rng)
        s, n = s * gain, n * gain
    if dead is not None:  # dead traces stay dead: zero in and zero out (the runtime writes them as zero)
        s, n = s.copy(), n.copy()
        s[dead], n[dead] = 0.0, 0.0
    return s.astype(np.float32), n.astype(np.float32)


def _stretch(s: np.ndarray, n: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Both sections resampled in time by ``factor`` (> 1: longer, lower frequencies), linear interpolation."""
    return _resample_time(s, factor), _resample_time(n, factor)


def _resample_time(a: np.ndarray, factor: float) -> np.ndarray:
    """``(traces, samples)`` resampled in time by ``factor`` (at least 32 samples), linear interpolation."""
    length = a.shape[1]
    new = max(32, int(round(length * factor)))
    pos = np.minimum(np.arange(new, dtype=np.float64) / factor, length - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, length - 1)
    w = (pos - i0).astype(np.float32)
    return a[:, i0] * (1 - w) + a[:, i1] * w


def _noise_stretch(n: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """The noise alone stretched in time by ``factor``, back to its own length: a random stretch of the longer
    result, or the shorter one followed by its mirror images (no jump where they meet)."""
    length = n.shape[1]
    stretched = _resample_time(n, factor)
    if stretched.shape[1] >= length:
        start = int(rng.integers(0, stretched.shape[1] - length + 1))
        return np.ascontiguousarray(stretched[:, start:start + length])
    pair = np.concatenate([stretched, stretched[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.tile(pair, (1, -(-length // pair.shape[1])))[:, :length])


def _fine_layers(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Thin beds: laterally continuous reflections of a higher band than the families', part of the signal.

    Processed stacks hold fine, continuous layering up to 60-100 Hz at 4 ms; the families' wavelets are broader.
    Without such sections the network took fine reflectors for noise (v6: Penobscot's removed part had a lateral
    coherence of 0.96). A sparse reflectivity series convolved with a Ricker wavelet of peak 0.06-0.22 cycles
    per sample (15-55 Hz at 4 ms), followed across the section with a dip and a smooth wander, cut by up to
    three faults (a throw of 2-20 samples over 1-4 traces: v9 removed Penobscot's reflectors where a fault zone
    breaks them), its amplitude varying slowly along both axes.

    Stack-look traits (v13: v12 still took 6 % of Penobscot, reflector energy at an anticline's crest that has
    the local coherence and strength of family a's streak noise): half the draws fold the layers (an anticline
    or syncline of 5-60 samples, its relief growing with depth, as structure does), half give single
    reflectors bright segments (x1.5-4 over 20-150 traces, following the layer, as a gas sand or a tuning
    zone does), and the layers' strength reaches twice the family's signal, so that strong, long, conformal
    reflectors are learnt as signal. Family a's streaks stay what they are: 8-22 traces of correlation, not
    following the layering.
    """
    traces, samples = s.shape
    reflectivity = rng.laplace(size=samples) * (rng.random(samples) < rng.uniform(0.05, 0.4))
    peak = rng.uniform(0.06, 0.22)
    t = np.arange(-int(1.5 / peak), int(1.5 / peak) + 1, dtype=np.float64)
    arg = (np.pi * peak * t) ** 2
    trace = np.convolve(reflectivity, (1 - 2 * arg) * np.exp(-arg), mode="same")
    x = np.arange(traces, dtype=np.float64)
    knots = np.linspace(0, max(traces - 1, 1), int(rng.integers(2, 8)))
    shift = rng.uniform(-1.0, 1.0) * (x - traces / 2) + np.interp(x, knots, rng.uniform(-6, 6, knots.size))
    for _ in range(int(rng.integers(0, 4))):
        at, width = rng.uniform(0, traces), rng.uniform(1, 4)
        shift += rng.choice((-1.0, 1.0)) * rng.uniform(2, 20) * np.clip((x - at) / width + 0.5, 0.0, 1.0)
    depth = np.arange(samples, dtype=np.float64)[None, :]
    fold = np.zeros((traces, 1))
    if rng.random() < 0.5:  # an anticline (negative: shallower at the crest) or a syncline
        centre, half = rng.uniform(0, traces), rng.uniform(0.1, 0.6) * traces + 2
        relief = rng.choice((-1.0, 1.0)) * rng.uniform(5, 60)
        fold = (relief * np.exp(-((x - centre) / half) ** 2))[:, None]
    growth = rng.uniform(0.2, 1.0)  # the fold's relief at the top over its relief at the bottom
    pos = depth - shift[:, None] - fold * (growth + (1 - growth) * depth / max(samples - 1, 1))
    layers = np.interp(pos.ravel(), np.arange(samples), trace, left=0.0, right=0.0).reshape(traces, samples)
    if rng.random() < 0.5:  # bright segments: single reflectors stronger over a lateral stretch, along the layer
        bright = np.ones_like(layers)
        for _ in range(int(rng.integers(1, 6))):
            tc, tw = rng.uniform(0, samples), rng.uniform(3, 20)
            xc, xw = rng.uniform(0, traces), rng.uniform(20, 150)
            bright += (rng.uniform(0.5, 3.0) * np.exp(-((pos - tc) / tw) ** 2)
                       * np.exp(-((x - xc) / xw) ** 2)[:, None])
        layers *= bright
    lateral = np.interp(x, knots, rng.uniform(0.5, 1.5, knots.size))
    tk = np.linspace(0, samples - 1, int(rng.integers(2, 6)))
    along = np.interp(np.arange(samples), tk, rng.uniform(0.0, 1.5, tk.size))
    layers *= lateral[:, None] * along[None, :]
    std = float(layers.std()) or 1.0
    strength = float(np.exp(rng.uniform(np.log(0.2), np.log(2.0))))
    return (layers * (sigma * strength / std)).astype(np.float32)


def _band_noise(shape: tuple[int, int], rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Gaussian noise band-passed to ``[low, high]`` cycles per sample, unit standard deviation."""
    white = rng.standard_normal(shape).astype(np.float32)
    spec = np.fft.rfft(white, axis=-1)
    f = np.fft.rfftfreq(shape[-1])
    taper = np.clip(np.minimum((f - low) / max(low * 0.5, 1e-3), (high - f) / max(high * 0.2, 1e-3)), 0, 1)
    out = np.fft.irfft(spec * taper, n=shape[-1], axis=-1).astype(np.float32)
    return out / np.float32(out.std() or 1.0)


def _coloured_noise(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Random noise of a field-like spectrum (a band anywhere from 1 to 100 Hz at 4 ms), any level."""
    low = rng.uniform(0.004, 0.08)
    high = min(0.48, low + rng.uniform(0.03, 0.3))
    return _band_noise(s.shape, rng, low, high) * np.float32(sigma * np.exp(rng.uniform(np.log(0.1), np.log(1.5))))


def _erratic_traces(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A few traces of strong noise along their whole length (bad geophones, string-like traces)."""
    out = np.zeros_like(s)
    bad = np.flatnonzero(rng.random(s.shape[0]) < rng.uniform(0.01, 0.06))
    if bad.size:
        noise = _band_noise((bad.size, s.shape[1]), rng, rng.uniform(0.005, 0.05), rng.uniform(0.1, 0.45))
        out[bad] = noise * np.float32(sigma * rng.uniform(2.0, 15.0))
    return out


def _spikes(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Isolated samples of very large amplitude, either sign."""
    out = np.zeros_like(s)
    count = max(1, int(s.size * rng.uniform(1e-5, 5e-4)))
    r, c = rng.integers(0, s.shape[0], count), rng.integers(0, s.shape[1], count)
    out[r, c] = (rng.choice((-1.0, 1.0), count) * sigma * rng.uniform(5.0, 50.0, count)).astype(np.float32)
    return out


def _bursts(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Short windows of strong oscillation on a few neighbouring traces."""
    out = np.zeros_like(s)
    for _ in range(int(rng.integers(1, 6))):
        t0, length = int(rng.integers(0, s.shape[1])), int(rng.integers(10, 80))
        x0, width = int(rng.integers(0, s.shape[0])), int(rng.integers(1, 6))
        t = np.arange(length, dtype=np.float32)
        wave = np.sin(2 * np.pi * rng.uniform(0.02, 0.2) * t) * np.hanning(length).astype(np.float32)
        seg = out[x0:x0 + width, t0:t0 + length]
        seg += wave[: seg.shape[1]] * np.float32(sigma * rng.uniform(3.0, 20.0))
    return out


def _linear_noise(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Linear, dipping coherent events (ground roll, guided waves, side-swipe): ``w(t - t0 - p * x)``."""
    traces, samples = s.shape
    x = np.arange(traces, dtype=np.float32)[:, None]
    t = np.arange(samples, dtype=np.float32)[None, :]
    out = np.zeros_like(s)
    for _ in range(int(rng.integers(1, 5))):
        slope = rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 8.0)  # samples per trace: steep against reflectors
        t0 = rng.uniform(-abs(slope) * traces, samples)  # some events cross the section, some only graze it
        freq = rng.uniform(0.01, 0.08)
        tau = t - t0 - slope * x
        width = rng.uniform(20, 150)
        out += (np.cos(2 * np.pi * freq * tau) * np.exp(-(tau / width) ** 2)).astype(np.float32)
    return out * np.float32(sigma * rng.uniform(0.3, 3.0))


def _swell(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Swell: strong very-low-frequency noise on groups of neighbouring traces, smooth across them."""
    traces, samples = s.shape
    base = _band_noise((1, samples), rng, 0.002, rng.uniform(0.008, 0.02))
    envelope = np.zeros(traces, dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        c, w = rng.uniform(0, traces), rng.uniform(3, max(4, traces / 4))
        envelope += np.exp(-((np.arange(traces) - c) / w) ** 2).astype(np.float32)
    shift = rng.integers(0, samples, traces)
    rows = np.stack([np.roll(base[0], int(k)) for k in shift])
    return rows * envelope[:, None] * np.float32(sigma * rng.uniform(1.0, 6.0))


def _footprint(s: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Acquisition footprint: the signal's amplitude striped with a period of a few traces (an imprint)."""
    period = rng.uniform(3, 16)
    stripes = np.cos(2 * np.pi * np.arange(s.shape[0]) / period + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return s * stripes[:, None] * np.float32(rng.uniform(0.1, 0.5))


def _quiet_zone(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A depth window where the signal is faint (a transparent layer, a salt body): noise stays, signal drops."""
    samples = s.shape[1]
    t0, length = int(rng.integers(0, samples)), int(rng.integers(samples // 10, samples // 2 + 2))
    ramp = np.ones(samples, dtype=np.float32)
    t = np.arange(samples)
    inside = (t >= t0) & (t < t0 + length)
    ramp[inside] = rng.uniform(0.0, 0.3)
    ramp = np.convolve(ramp, np.hanning(21) / np.hanning(21).sum(), mode="same").astype(np.float32)
    return s * ramp[None, :]


def _top_mute(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A top mute: zero above a time that varies linearly across traces, with a short taper."""
    traces, samples = shape
    start = rng.uniform(0.02, 0.4) * samples
    end = start + rng.uniform(-0.2, 0.2) * samples
    mute = np.linspace(start, end, traces, dtype=np.float32)[:, None]
    t = np.arange(samples, dtype=np.float32)[None, :]
    return np.clip((t - mute) / rng.uniform(1, 20), 0.0, 1.0).astype(np.float32)


def _agc_gain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Automatic gain control: one over the running RMS of the noisy trace (window 40-250 samples)."""
    from scipy.ndimage import uniform_filter1d

    window = int(rng.integers(40, 250))
    rms = np.sqrt(uniform_filter1d(x.astype(np.float32) ** 2, window, axis=-1))
    floor = np.float32(max(float(rms.mean()) * 0.05, 1e-12))
    return (np.float32(rms.mean()) / np.maximum(rms, floor)).astype(np.float32)


def _decay_gain(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """True-amplitude look: amplitudes falling with time as ``(t / t_ref) ** -p`` (spherical divergence)."""
    t = np.arange(1, shape[1] + 1, dtype=np.float32)
    p = rng.uniform(0.5, 1.8)
    g = (t / np.float32(shape[1] * 0.2)) ** np.float32(-p)
    return np.broadcast_to(np.minimum(g, np.float32(8.0)), shape).astype(np.float32)


def _random_crop(s: np.ndarray, n: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random part of the section: 32 traces to all, 128 samples to all (log-uniform lengths)."""
    traces, samples = s.shape
    rows = int(np.exp(rng.uniform(np.log(min(32, traces)), np.log(traces)))) if traces > 32 else traces
    cols = int(np.exp(rng.uniform(np.log(min(128, samples)), np.log(samples)))) if samples > 128 else samples
    r0 = int(rng.integers(0, traces - rows + 1))
    c0 = int(rng.integers(0, samples - cols + 1))
    return s[r0:r0 + rows, c0:c0 + cols], n[r0:r0 + rows, c0:c0 + cols]
