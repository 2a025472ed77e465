"""The removal floor: where what the model removes is weak against the signal around it, the input is kept.

A processed stack still holds a little noise, and a denoiser trained to take noise away takes that too; but a
processor judges a stack fed alone by whether it comes back unchanged, and in the removed part (``input -
output``) a faint, incoherent, widespread residue is both the least useful removal (it buys little signal-to-noise
ratio) and the riskiest (faint reflectors and fine texture look the same to the network). The floor weighs the
removal by the local ratio of the removed part's power to the output's, ``rho``, over the signal-recovery window
(:data:`impeccable.core.signal_recovery.RADIUS`; the guard runs at the model's interval, so the window is the same
time span at any data interval):

    output' = input - w * removed,    w = rho^2 / (rho^2 + tau^2)

so where the removed part is ``tau`` of the local output's power (the card's ``floor_db``, e.g. -13 dB) half of
it is applied, well below it almost none, and where the model finds real noise (rho near or above 1: the
semi-synthetic field cases, the challenge's noise, erratic traces, swell) all of it. The ratio's denominator is
floored by a share of the section's mean output power (as recovery's): in a quiet zone or a muted top, where the
output is next to nothing, the removed part is judged against the section's signal instead (noise the quiet zone
makes plain is removed, a faint residue as harmless there as anywhere is kept). Time
processing's TFDN (time-frequency noise attenuation) works the same way: only what stands out is touched.

**The floor can rise where the removed part is laterally coherent** (``removal_floor_coherence_db``, 0 unless the
card or the run says): ``tau`` in dB is ``floor_db + coherence_db * clip(c, 0, 1)``, ``c`` the removed part's local
correlation between neighbouring traces over the same window. What a network takes from a processed stack is
reflector energy it mistook for noise, and that lines up from trace to trace (Penobscot fed alone: coherence
0.97), while random and erratic noise does not (about 0); coherent noise worth removing (swell, ground roll,
linear noise) is strong, so it stays well above even the raised floor. With v12 (-13 dB, +10 dB for a coherent
removal) Penobscot fed alone lost 1.9 % of its energy instead of 6.4 %, and the semi-synthetic cases gained more
(+6.11 dB against +6.00); but the challenge's own noise (family a's weak coherent streaks) is kept as well, so
the raise everywhere is no card default; the conforming raise below is (benchmarks/results/2026-12-07-coherent-floor/).

**The raise can be kept to removal that follows the output's structure** (``removal_floor_conformity``, a slope
width in model samples per trace, 0 unless the card says): the raise is multiplied by
``exp(-((p_removed - p_output) / width)^2)``, ``p`` the structure-tensor slope of the removed part and of the output
over the same window. Reflector energy a network takes from a stack runs parallel to the events it kept; what it
removes from the challenge's data mostly crosses them. On v12 (width 0.6, raise 10 dB, through the product):
Penobscot fed alone 0.981, the semi-synthetic cases +6.15 dB with 12 of 15 won, at a quarter of the plain raise's
average cost on the 32 held-out synthetic volumes (benchmarks/results/2026-12-07-coherent-floor/). Slopes are
counted in the model's samples (the guard runs at its interval), so a dip reads the same at 2 ms and 4 ms.

Field-ready cards ask for the floor with ``output_guard: {..., "removal_floor_db": -13}`` and, from session 19 (the
shipped card and new cards), for the conforming raise with ``"removal_floor_coherence_db": 10`` and
``"removal_floor_conformity": 0.6``;
:mod:`impeccable.core.output_guard` applies it after signal recovery and before the band guard, in every driver.
"""
from __future__ import annotations

import numpy as np

from impeccable.core.signal_recovery import FLOOR, RADIUS, local_mean, trace_level


def lateral_coherence(removed: np.ndarray, radius: tuple[int, int] = RADIUS) -> np.ndarray:
    """The local correlation in ``[-1, 1]`` between neighbouring traces of a ``(traces, samples)`` float64 array.

    Each pair of neighbouring traces gets the windowed correlation ``<a b> / sqrt(<a a> <b b>)``; a trace takes
    the mean of its two pairs (one at the section's edges). A single trace gets 0 (nothing to line up with).
    """
    if removed.shape[0] < 2:
        return np.zeros(removed.shape)
    a, b = removed[:-1], removed[1:]
    # the box filters' rounding can leave a power a hair under zero: clipped before the root
    power = np.maximum(local_mean(a * a, radius) * local_mean(b * b, radius), 0.0)
    pair = local_mean(a * b, radius) / (np.sqrt(power) + 1e-30)
    return 0.5 * (np.concatenate([pair, pair[-1:]]) + np.concatenate([pair[:1], pair]))


def event_slope(section: np.ndarray, radius: tuple[int, int]) -> np.ndarray:
    """The local slope of the events of a ``(traces, samples)`` float64 section at the model's interval, in samples
    per trace.

    From the structure tensor (products of the gradients averaged over the window): the dominant gradient is
    normal to the events. Clipped to +-5 (steeper is no reflector at the model's sampling).
    """
    gx = np.gradient(section, axis=0)
    gt = np.gradient(section, axis=1)
    jxx, jtt, jxt = (local_mean(a, radius) for a in (gx * gx, gt * gt, gx * gt))
    theta = 0.5 * np.arctan2(2.0 * jxt, jxx - jtt)
    nx, nt = np.cos(theta), np.sin(theta)
    return np.clip(-nx / np.where(np.abs(nt) < 1e-6, 1e-6, nt), -5.0, 5.0)


def floor_weights(output: np.ndarray, source: np.ndarray, floor_db: float,
                  radius: tuple[int, int] = RADIUS, coherence_db: float = 0.0, conformity: float = 0.0) -> np.ndarray:
    """The share in ``[0, 1]`` of the removed part that is applied, for one ``(traces, samples)`` section.

    Args:
        output: ``(traces, samples)`` denoised section.
        source: Same shape, the section as the model saw it (same units as ``output``).
        floor_db: The removed part's local power over the output's at which half of it is applied (dB).
        radius: Half-width of the local window in traces and samples.
        coherence_db: How far the floor rises where the removed part is fully coherent laterally (dB, >= 0).
        conformity: With ``coherence_db``: the slope width (model samples per trace) over which the raise fades
            where the removed part's events cross the output's (0: the raise everywhere it is coherent).

    Returns:
        ``(traces, samples)`` float64 weights.
    """
    y = output.astype(np.float64)
    s = y - trace_level(y)
    r = source.astype(np.float64) - y
    rho = local_mean(r * r, radius) / (local_mean(s * s, radius) + FLOOR * float(np.mean(s * s)) + 1e-30)
    tau_db = floor_db
    if coherence_db:
        share = np.clip(lateral_coherence(r, radius), 0.0, 1.0)
        if conformity:
            apart = event_slope(r, radius) - event_slope(y, radius)
            share = share * np.exp(-(apart / conformity) ** 2)
        tau_db = floor_db + coherence_db * share
    tau2 = 10.0 ** (2.0 * np.asarray(tau_db) / 10.0)
    return rho * rho / (rho * rho + tau2)


def floor_sections(output: np.ndarray, source: np.ndarray, floor_db: float,
                   radius: tuple[int, int] = RADIUS, coherence_db: float = 0.0, conformity: float = 0.0) -> np.ndarray:
    """Sections with the model's weak removal left out (module notes).

    Args:
        output: ``(n, traces, samples)`` float32 denoised sections.
        source: Same shape, the sections as the model saw them (same units as ``output``).
        floor_db: See :func:`floor_weights`.
        radius: Half-width of the local window in traces and samples.
        coherence_db, conformity: See :func:`floor_weights`.

    Returns:
        ``(n, traces, samples)`` float32.
    """
    if output.shape != source.shape:
        raise ValueError(f"output {output.shape} and input {source.shape} differ in shape")
    out = np.empty(output.shape, dtype=np.float32)
    for i in range(out.shape[0]):
        w = floor_weights(output[i], source[i], floor_db, radius, coherence_db, conformity)
        x = np.asarray(source[i], dtype=np.float64)
        out[i] = x - w * (x - np.asarray(output[i], dtype=np.float64))
    return out
