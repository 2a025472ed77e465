"""The removal floor: where what the model removes is weak against the signal around it, the input is kept.

A processed stack still holds a little noise, and a denoiser trained to take noise away takes that too; but a
processor judges a stack fed alone by whether it comes back unchanged, and in the removed part (``input -
output``) a faint, incoherent, widespread residue is both the least useful removal (it buys little signal-to-noise
ratio) and the riskiest (faint reflectors and fine texture look the same to the network). The floor weighs the
removal by the local ratio of the removed part's power to the output's, ``rho``, over the signal-recovery window
(:data:`impeccable.core.signal_recovery.RADIUS`, the same time span at any interval):

    output' = input - w * removed,    w = rho^2 / (rho^2 + tau^2)

so where the removed part is ``tau`` of the local output's power (the card's ``floor_db``, e.g. -13 dB) half of
it is applied, well below it almost none, and where the model finds real noise (rho near or above 1: the
semi-synthetic field cases, the challenge's noise, erratic traces, swell) all of it. The ratio's denominator is
floored by a share of the section's mean output power (as recovery's): in a quiet zone or a muted top, where the
output is next to nothing, the removed part is judged against the section's signal instead (noise the quiet zone
makes plain is removed, a faint residue as harmless there as anywhere is kept). Time
processing's TFDN (time-frequency noise attenuation) works the same way: only what stands out is touched.

Field-ready cards ask for it with ``output_guard: {..., "removal_floor_db": -13}``; :mod:`impeccable.core.output_guard`
applies it after signal recovery and before the band guard, in every driver.
"""
from __future__ import annotations

import numpy as np

from impeccable.core.signal_recovery import FLOOR, RADIUS, local_mean, trace_level


def floor_weights(output: np.ndarray, source: np.ndarray, floor_db: float,
                  radius: tuple[int, int] = RADIUS) -> np.ndarray:
    """The share in ``[0, 1]`` of the removed part that is applied, for one ``(traces, samples)`` section.

    Args:
        output: ``(traces, samples)`` denoised section.
        source: Same shape, the section as the model saw it (same units as ``output``).
        floor_db: The removed part's local power over the output's at which half of it is applied (dB).
        radius: Half-width of the local window in traces and samples.

    Returns:
        ``(traces, samples)`` float64 weights.
    """
    y = output.astype(np.float64)
    s = y - trace_level(y)
    r = source.astype(np.float64) - y
    rho = local_mean(r * r, radius) / (local_mean(s * s, radius) + FLOOR * float(np.mean(s * s)) + 1e-30)
    tau2 = 10.0 ** (2.0 * floor_db / 10.0)
    return rho * rho / (rho * rho + tau2)


def floor_sections(output: np.ndarray, source: np.ndarray, floor_db: float,
                   radius: tuple[int, int] = RADIUS) -> np.ndarray:
    """Sections with the model's weak removal left out (module notes).

    Args:
        output: ``(n, traces, samples)`` float32 denoised sections.
        source: Same shape, the sections as the model saw them (same units as ``output``).
        floor_db: See :func:`floor_weights`.
        radius: Half-width of the local window in traces and samples.

    Returns:
        ``(n, traces, samples)`` float32.
    """
    if output.shape != source.shape:
        raise ValueError(f"output {output.shape} and input {source.shape} differ in shape")
    out = np.empty(output.shape, dtype=np.float32)
    for i in range(out.shape[0]):
        w = floor_weights(output[i], source[i], floor_db, radius)
        x = np.asarray(source[i], dtype=np.float64)
        out[i] = x - w * (x - np.asarray(output[i], dtype=np.float64))
    return out
