"""Classical denoising baselines (numpy/scipy only), the yardstick the network has to beat.

- :func:`bandpass`: zero-phase Butterworth band-pass along time. The challenge's noise shares the signal's
  band (research §1.4), so it can only remove what lies outside it.
- :func:`fx_decon`: f-x prediction filtering (Canales 1984; Gulunay 1986). Per inline section and per
  frequency, laterally predictable events (locally linear reflectors) are kept and the unpredictable part is
  dropped. It targets random noise; the challenge's coherent streaks and arcs are partly predictable too.

Every function takes and returns a canonical ``(inline, crossline, sample)`` volume, float32 out.

``python -m impeccable.data.baselines`` scores each baseline on synthetic pairs (:mod:`impeccable.data.synth`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import click
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sfft
from scipy.signal import butter, sosfiltfilt

from impeccable.core.errors import InputError
from impeccable.core.tiling import window_starts

DT = 0.004  # the challenge's sample interval, s


def _check_volume(volume: np.ndarray) -> None:
    if volume.ndim != 3:
        raise InputError("volume is not 3-D", received=volume.shape, expected="(inline, crossline, sample)")


def _check_band(low_hz: float, high_hz: float, dt: float) -> None:
    nyquist = 0.5 / dt
    if not 0 < low_hz < high_hz < nyquist:
        raise InputError("band-pass corners out of order", received=f"{low_hz}..{high_hz} Hz",
                         expected=f"0 < low < high < Nyquist {nyquist:g} Hz (dt {dt:g} s)", todo="pick other corners")


def bandpass(volume: np.ndarray, low_hz: float = 4.0, high_hz: float = 40.0, dt: float = DT,
             order: int = 4, block: int = 8) -> np.ndarray:
    """Zero-phase Butterworth band-pass along time (``sosfiltfilt``: forward and backward, no phase shift).

    Args:
        volume: ``(inline, crossline, sample)``, any real dtype.
        low_hz: Low corner, Hz.
        high_hz: High corner, Hz.
        dt: Sample interval, s.
        order: Butterworth order (the effective order doubles with the two passes).
        block: Inlines filtered at a time (bounds the float64 work memory).

    Returns:
        ``(inline, crossline, sample)`` float32.
    """
    _check_volume(volume)
    _check_band(low_hz, high_hz, dt)
    sos = butter(order, [low_hz, high_hz], btype="bandpass", fs=1.0 / dt, output="sos")
    out = np.empty(volume.shape, dtype=np.float32)
    for start in range(0, volume.shape[0], block):
        out[start:start + block] = sosfiltfilt(sos, np.asarray(volume[start:start + block], np.float64), axis=-1)
    return out


def fx_decon(volume: np.ndarray, filter_len: int = 4, window_traces: int = 24, window_samples: int = 128,
             prewhitening: float = 0.02, low_hz: float = 2.0, high_hz: float = 60.0, dt: float = DT) -> np.ndarray:
    """f-x deconvolution of every inline section, in overlapping windows.

    Each window (``window_traces`` x ``window_samples``, half overlapping, blended with a sine-squared taper)
    is Fourier transformed along time; at every frequency of the band a complex prediction filter of
    ``filter_len`` taps is fitted along the traces by damped least squares, applied forward and backward,
    and the two predictions averaged. Frequencies outside the band pass unchanged.

    Args:
        volume: ``(inline, crossline, sample)``, any real dtype.
        filter_len: Prediction filter length, traces.
        window_traces: Window width along the crossline axis (events must be near-linear within it).
        window_samples: Window length along time.
        prewhitening: Damping as a fraction of the mean diagonal of the normal equations.
        low_hz: Lowest filtered frequency, Hz.
        high_hz: Highest filtered frequency, Hz.
        dt: Sample interval, s.

    Returns:
        ``(inline, crossline, sample)`` float32.
    """
    _check_volume(volume)
    _check_band(low_hz, high_hz, dt)
    if filter_len < 1 or window_traces <= filter_len + 1:
        raise InputError("f-x window too narrow for the filter", received=f"{window_traces} traces, {filter_len} taps",
                         expected="window_traces > filter_len + 1 >= 2", todo="widen the window or shorten the filter")
    out = np.empty(volume.shape, dtype=np.float32)
    for i in range(volume.shape[0]):
        out[i] = _fx_section(np.asarray(volume[i], np.float64), filter_len, window_traces, window_samples,
                             prewhitening, low_hz, high_hz, dt)
    return out


def _fx_section(section: np.ndarray, filter_len: int, wx: int, wt: int, mu: float, low_hz: float,
                high_hz: float, dt: float) -> np.ndarray:
    """f-x decon of one ``(traces, samples)`` section, float64; all its windows are solved as one batch."""
    nx, nt = section.shape
    wx, wt = min(wx, nx), min(wt, nt)
    # windows overlapping by about half, laid out by the tiling's plan
    corners = [(x0, t0) for x0 in window_starts(nx, wx, wx - max(1, wx // 2))
               for t0 in window_starts(nt, wt, wt - max(1, wt // 2))]
    blocks = np.stack([section[x0:x0 + wx, t0:t0 + wt] for x0, t0 in corners])  # (windows, wx, wt)
    spectra = sfft.rfft(blocks, axis=-1)
    freqs = sfft.rfftfreq(wt, dt)
    band = np.flatnonzero((freqs >= low_hz) & (freqs <= high_hz))
    # one row per (window, frequency): the complex samples along the traces
    rows = spectra[:, :, band].transpose(0, 2, 1).reshape(-1, wx)
    predicted = _predict(rows, filter_len, mu).reshape(len(corners), band.size, wx)
    spectra[:, :, band] = predicted.transpose(0, 2, 1)
    taper = np.outer(_taper(wx), _taper(wt))
    blocks = sfft.irfft(spectra, n=wt, axis=-1) * taper
    total = np.zeros_like(section)
    weight = np.zeros_like(section)
    for (x0, t0), block in zip(corners, blocks):
        total[x0:x0 + wx, t0:t0 + wt] += block
        weight[x0:x0 + wx, t0:t0 + wt] += taper
    return total / weight


def _predict(s: np.ndarray, n_taps: int, mu: float) -> np.ndarray:
    """Forward+backward prediction of ``s`` ``(freqs, traces)`` complex along traces, per frequency."""
    nf, nx = s.shape
    if nx <= n_taps + 1 or nf == 0:
        return s
    win = sliding_window_view(s, n_taps, axis=1)  # win[f, m] = s[f, m:m + n_taps]
    est = np.zeros_like(s)
    count = np.zeros(nx)
    # forward: s[m + L] from s[m + L - 1], ..., s[m]; backward: s[m] from s[m + 1], ..., s[m + L]
    forward = (win[:, :-1, ::-1], s[:, n_taps:], slice(n_taps, nx))
    backward = (win[:, 1:], s[:, :-n_taps], slice(0, nx - n_taps))
    for a, b, target in (forward, backward):
        a_h = a.conj().transpose(0, 2, 1)
        normal = a_h @ a
        damp = mu * np.real(np.trace(normal, axis1=1, axis2=2)) / n_taps + 1e-30
        normal += damp[:, None, None] * np.eye(n_taps)
        coef = np.linalg.solve(normal, a_h @ b[..., None])
        est[:, target] += (a @ coef)[..., 0]
        count[target] += 1
    return est / count


def _taper(n: int) -> np.ndarray:
    """Sine-squared weights, positive everywhere so that every sample gets a nonzero total weight."""
    return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2


def _identity(volume: np.ndarray) -> np.ndarray:
    _check_volume(volume)
    return np.asarray(volume, dtype=np.float32)


def _bandpass_fx(volume: np.ndarray) -> np.ndarray:
    return fx_decon(bandpass(volume))


#: name -> callable(volume (inline, crossline, sample)) -> float32 volume, with the defaults measured here.
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": _identity,
    "bandpass": functools.partial(bandpass, low_hz=4.0, high_hz=40.0),
    "fx_decon": fx_decon,
    "bandpass+fx_decon": _bandpass_fx,
}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seeds", default="1000,1001,1002,1003", show_default=True, help="Synthetic pair seeds.")
@click.option("--shape", default="64,64,1259", show_default=True, help="(inline, crossline, sample).")
@click.option("--noise-level", default=None, help="As impeccable.data.synth.synthesize_pair (default: drawn).")
def main(seeds: str, shape: str, noise_level: str | None) -> None:
    """Score every baseline on synthetic pairs with the challenge score, and print a table."""
    from impeccable.core.cli import parse_shape
    from impeccable.data import synth
    from impeccable.data.scoring import score_volumes

    dims = parse_shape(shape)
    level = synth.resolve_noise_level(noise_level)
    rows = []
    for seed in (int(s) for s in seeds.split(",")):
        clean, noisy = synth.synthesize_pair(seed, shape=dims, noise_level=level)
        row = {}
        for name, method in BASELINES.items():
            t0 = time.perf_counter()
            denoised = method(noisy)
            row[name] = (score_volumes(clean, denoised), time.perf_counter() - t0)
        rows.append((seed, row))
        click.echo(f"seed {seed}: " + "  ".join(f"{k} {s:.4f} ({t:.1f}s)" for k, (s, t) in row.items()))
    click.echo("mean:    " + "  ".join(f"{k} {np.mean([r[k][0] for _, r in rows]):.4f}" for k in BASELINES))


if __name__ == "__main__":
    main()
