"""Below the model's band: where a trace's energy under the band stands out, it is noise, and it goes.

A model card states the band its training signal filled (``sampling.band_hz``, 3-90 Hz for the shipped models at
4 ms). Processed stacks hold almost nothing below that band (Alaska, Penobscot and F3: about 48 dB under their
total energy below 3 Hz), while swell and other very-low-frequency noise put most of theirs there. The network
removes some of it but not all (the semi-synthetic swell cases: v12 left the noise 17 dB under the stack's energy
below 3 Hz, where a 5-60 Hz band-pass leaves nothing; session 19). So, per trace of the output, the part below
the band's low edge (zero-phase Butterworth, order 4, the trace's level left alone) is taken away with the weight

    w = rho^2 / (rho^2 + tau^2),    rho = its energy over the rest of the trace's,  tau = 10^(below_band_db / 10)

the removal floor's form (:mod:`impeccable.core.removal_floor`): a stack whose low end is 48 dB down keeps it
(w ~ 3e-7 at -15 dB), a trace under swell (rho near 1) loses it. Broadband data whose signal reaches below the
band keep theirs as long as it stays ``below_band_db`` under the band's energy.

It works at the model's interval (:mod:`impeccable.core.output_guard` runs there), after the removal floor and
before the band guard. Cards ask for it with ``output_guard: {..., "below_band_db": -15}`` (the shipped card and
new cards); off when silent.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

#: Order of the zero-phase Butterworth split (applied forward and back: 8 in effect).
ORDER = 4


def below_band_sections(output: np.ndarray, low_hz: float, interval_ms: float, threshold_db: float) -> np.ndarray:
    """Sections with each trace's outstanding energy below ``low_hz`` taken away (module notes).

    Args:
        output: ``(n, traces, samples)`` float32 sections at ``interval_ms``.
        low_hz: The band's low edge (the card's ``sampling.band_hz[0]``).
        interval_ms: The sections' sample interval (the model's).
        threshold_db: A trace's energy below the band over the rest of it at which half of the part below is
            taken away (dB).

    Returns:
        ``(n, traces, samples)`` float32; sections shorter than two periods of ``low_hz`` come back as given
        (their low end cannot be told from their trend).
    """
    nyquist = 500.0 / interval_ms
    if not 0.0 < low_hz < nyquist:
        raise ValueError(f"band edge {low_hz} Hz outside (0, {nyquist:g}) Hz")
    if output.shape[-1] * interval_ms < 2.0 * 1000.0 / low_hz:
        return output
    sos = signal.butter(ORDER, low_hz, "lowpass", fs=2.0 * nyquist, output="sos")
    x = output.astype(np.float64)
    level = x.mean(axis=-1, keepdims=True)
    low = signal.sosfiltfilt(sos, x - level, axis=-1, padtype="even")
    rest = x - level - low
    rho = np.sum(low * low, axis=-1, keepdims=True) / (np.sum(rest * rest, axis=-1, keepdims=True) + 1e-30)
    tau = 10.0 ** (threshold_db / 10.0)
    weight = rho * rho / (rho * rho + tau * tau)
    return (x - weight * low).astype(np.float32)
