"""The band guard: a denoised section never holds more energy than its input at any frequency.

A denoiser only takes away: in expectation the input's power at a frequency is the signal's plus the noise's,
so an output with more power than the input in some band has added something (issue 25: v5 added energy below
8 Hz, the field-ready v6 still added a faint floor above ~90 Hz, 45 dB under the peak, where processed stacks
hold almost nothing). The guard measures, per section, the power spectrum along time of input and output
(of the tapered traces, averaged over traces) and scales down, with a zero-phase gain, each frequency where the
output's exceeds the input's. No smoothing over frequency: a smoothed spectrum would let a narrow added peak
through, and where the output is the input less a little, each bin's ratio is close to 1 anyway. Where the output holds less than the input, which is what
denoising does, nothing changes; the zero frequency (the trace's level) is left alone.

Field-ready cards switch it on (``output_guard: {"kind": "band_energy"}``,
:class:`impeccable.core.model_io.ModelIO`); :mod:`impeccable.core.tiling` applies it to every section after
blending, so every driver, the trainer's validation and the benchmarks get the same output.
"""
from __future__ import annotations

import numpy as np
from scipy import fft, signal

#: Reflected samples added at each end before filtering, so the gain's short impulse response does not wrap.
EDGE = 64
#: Passes at most (a strong, non-stationary excess needs a second); a bin within this relative tolerance of the
#: input's power counts as no excess (float32 round-off of an output equal to its input).
PASSES = 3
TOLERANCE = 1e-4


def guard_sections(output: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Sections whose power spectrum along time nowhere exceeds their input's.

    Args:
        output: ``(n, traces, samples)`` float32 denoised sections.
        source: Same shape, the sections as the model saw them (same units as ``output``).

    Returns:
        ``(n, traces, samples)`` float32; sections where the output nowhere exceeds the input come back as given.
    """
    if output.shape != source.shape:
        raise ValueError(f"output {output.shape} and input {source.shape} differ in shape")
    samples = output.shape[-1]
    if samples < 4:
        return output
    out = np.array(output, dtype=np.float32, copy=True)
    for i in range(out.shape[0]):
        out[i] = _guard_one(out[i], np.asarray(source[i], dtype=np.float32))
    return out


def _power(section: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """Power spectrum along time, averaged over traces, of the tapered, level-free traces (float64)."""
    level = section.mean(axis=-1, keepdims=True)
    return (np.abs(fft.rfft((section - level) * taper, axis=-1)) ** 2).mean(axis=0, dtype=np.float64)


def _guard_one(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One ``(traces, samples)`` section (see :func:`guard_sections`)."""
    samples = y.shape[-1]
    # The spectra are measured on tapered traces (a circular FFT of the raw trace would see its two ends
    # meet as a step, broadband energy that would hide a faint excess); the gain is then applied to the
    # output reflected at both ends, so its short impulse response does not wrap around. Filtering a
    # non-stationary trace and cropping it back is not exact, so a strong excess takes a second pass.
    taper = signal.windows.tukey(samples, 0.1).astype(np.float32)
    power_x = _power(x, taper)
    edge = min(EDGE, samples - 1)
    for _ in range(PASSES):
        power_y = _power(y, taper)
        excess = power_y > power_x * (1.0 + TOLERANCE)
        excess[0] = False  # the level is the amplitude fit's, not a band
        if not excess.any():
            break
        gain = np.ones_like(power_y)
        gain[excess] = np.sqrt(power_x[excess] / power_y[excess])
        padded = np.pad(y, ((0, 0), (edge, edge)), mode="reflect")
        n = padded.shape[-1]
        gain = np.interp(fft.rfftfreq(n), fft.rfftfreq(samples), gain).astype(np.float32)
        y = fft.irfft(fft.rfft(padded, axis=-1) * gain, n=n, axis=-1)[:, edge:edge + samples].astype(np.float32)
    return y
