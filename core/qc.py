"""Field QC of a denoising run: what was removed, at which frequencies, where, and whether it was signal.

From the input ``x`` and the output ``y`` (both in the input's units, ``(inline, crossline, sample)``
float32) and the removed part ``r = x - y``, about the input's mean ``m``:

- ``removed_energy``: ``sum r^2 / sum (x - m)^2``, the share of the input's energy the run took out.
- Amplitude spectra of input, output and removed part: the mean over traces of ``|rfft|`` along samples,
  in Hz when the sample interval is known, else per normalized frequency (cycles per sample).
- ``signal_band``: where the input's amplitude spectrum is within -20 dB of its peak (DC excluded).
- ``low_frequency``: the output's energy below 8 Hz (interval known) and below the signal band over the
  input's: a denoiser must not add energy there (issue 25: the v5 model added 1.6x-3.4x below 8 Hz).
- ``bands``: output / input energy per octave band, with a warning when the output holds more than
  :data:`BAND_WARN` times the input's energy in a band that matters.
- ``coherence``: lateral coherence, the mean zero-lag correlation coefficient of neighbouring traces
  (along the crossline axis of each inline section) of the removed part and of the input. Random noise
  removed is incoherent across traces (near 0); a removed reflection is coherent (near 1; dipping events
  lower it).
- ``removed_by_depth``: removed / input energy in :data:`DEPTH_WINDOWS` windows down the section: a
  blob where the data end shows as a window far above the rest.
- ``local_similarity``: the mean absolute local similarity between ``r`` and the output (Chen & Fomel
  2015, "Random noise attenuation using local signal-and-noise orthogonalization", Geophysics 80(6)), on
  sampled inline sections. Random noise removed is locally orthogonal to the signal; signal removed with
  it (a blurred or shifted output) is locally similar to what stayed. A global correlation says nothing
  here: the least-squares amplitude fit makes it zero by construction.

Local similarity: Chen & Fomel define it as ``sqrt(c1 * c2)`` of two regularized local regressions of
``r`` on ``y`` and ``y`` on ``r``; with a smoothing shaping operator ``S`` (here a box window of
:data:`LEAKAGE_WINDOW` traces x samples, not their triangle smoother with shaping iterations) that is
``S[r y] / sqrt(S[r^2] S[y^2])``, a windowed correlation coefficient in ``[-1, 1]``.

Merging parts exactly. Every figure is a ratio of sums. :func:`qc_part` measures a block of whole inlines
and returns its sums; :func:`merge_qc` adds the parts of a volume and computes the report. Each sum is
taken per inline in float64, then added *exactly* (as integers times a power of two, :func:`exact_sum`),
so the report is the same bit for bit however the volume was cut into blocks, slabs or tasks, and in
whatever order the parts arrive (one process, the Dask runner, the Python API). Parts are JSON-ready.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import uniform_filter

#: Smoothing window of the local similarity, (traces, samples).
LEAKAGE_WINDOW = (9, 41)
#: Above this mean local similarity the run warns that signal leaked into the removed part (measured: 0.36-0.44
#: on denoised held-out volumes of both synthetic families, where band-limited noise shares the signal's band).
LEAKAGE_WARN = 0.5
#: Inline sections the local similarity is measured on (evenly spaced; enough for a stable mean, cheap on a survey).
LEAKAGE_SECTIONS = 16
#: Most frequency bins a spectrum keeps (adjacent rfft bins are summed beyond that, so a part stays small).
MAX_BINS = 256
#: Windows down the section of the removed energy by depth.
DEPTH_WINDOWS = 10
#: The signal band: where the input's amplitude spectrum is within this many dB of its peak.
SIGNAL_BAND_DB = -20.0
#: "Low frequencies" when the interval is known: below this many Hz.
LOW_HZ = 8.0
#: A band whose output energy exceeds the input's by this factor is warned about (issue 25's bar: 1.1x).
BAND_WARN = 1.1
#: ... when the output's energy in it is at least this share of the input's total (a band with nothing in it
#: has a meaningless ratio).
BAND_MIN_SHARE = 1e-3
#: Above this lateral coherence the removed part is said to be coherent across traces, and the run warns.
COHERENCE_WARN = 0.5
#: Removed over input energy above this in a depth window is warned about (the run painted something there).
DEPTH_WARN = 1.0

#: The sums a part carries: name -> whether it is a vector (per frequency bin or window) or a scalar.
_SUMS = ("count", "r", "rr", "dd", "traces", "amp_x", "amp_y", "amp_r", "pow_x", "pow_y", "pow_r",
         "coh_r", "coh_x", "pairs_r", "pairs_x", "depth_rr", "depth_dd", "sim", "sim_n")


# --- exact sums ---------------------------------------------------------------------------------------------

def exact_sum(values: np.ndarray) -> list:
    """Exact sums over axis 0 of a float64 array, as canonical ``[mantissa, exponent]`` integer pairs.

    Each float64 is ``m * 2**e`` with integer ``m``; integers add exactly, so the sum of a column does not
    depend on how its values were grouped (float addition does). The pair is reduced (odd mantissa) so
    equal sums have equal pairs.

    Args:
        values: ``(n,)`` or ``(n, k)`` finite float64.

    Returns:
        One pair (1-D input) or a list of ``k`` pairs.
    """
    v = np.asarray(values, dtype=np.float64)
    columns = v.reshape(v.shape[0], -1).T if v.ndim > 1 else v[None, :]
    mant, expo = np.frexp(columns)
    mant = (mant * 2.0**53).astype(np.int64)  # exact: 53-bit mantissas
    expo = expo.astype(np.int64) - 53
    pairs = []
    for m_col, e_col in zip(mant, expo):
        nz = m_col != 0
        if not nz.any():
            pairs.append([0, 0])
            continue
        base = int(e_col[nz].min())
        pairs.append(_canonical(sum(int(m) << int(e - base) for m, e in zip(m_col[nz], e_col[nz])), base))
    return pairs if v.ndim > 1 else pairs[0]


def _canonical(m: int, e: int) -> list:
    if m == 0:
        return [0, 0]
    shift = (m & -m).bit_length() - 1
    return [m >> shift, e + shift]


def _add_pairs(a: list, b: list) -> list:
    if a[0] == 0:
        return b
    if b[0] == 0:
        return a
    base = min(a[1], b[1])
    return _canonical((a[0] << (a[1] - base)) + (b[0] << (b[1] - base)), base)


def _value(pair: list) -> float:
    """The float nearest to an exact pair's value."""
    m, e = pair
    if m == 0:
        return 0.0
    try:
        return math.ldexp(float(m), e)
    except OverflowError:  # a mantissa beyond float range (an enormous spread): exact rational, rounded once
        from fractions import Fraction

        return float(Fraction(m) * Fraction(2) ** e)


def sample_interval_ms(reader) -> float | None:
    """The sample interval a reader reports, in ms (m for depth data), or None when it does not know.

    Reads ``reader.sample_interval`` (what the runtime's readers report: headers, attributes, coordinates),
    else ``reader.sample_interval_ms``, else the spacing of a reader's ``samples`` axis (segyio's, in ms from
    the binary header). Never guesses.
    """
    value = getattr(reader, "sample_interval", None)
    if value is None:
        value = getattr(reader, "sample_interval_ms", None)
    if value is None:
        samples = getattr(reader, "samples", None)
        if samples is not None and len(samples) > 1:
            value = float(samples[1]) - float(samples[0])
    try:
        value = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) and value > 0 else None


# --- measuring one block ------------------------------------------------------------------------------------

def local_similarity(removed: np.ndarray, signal: np.ndarray, window: tuple[int, int] = LEAKAGE_WINDOW
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Local similarity of two sections and where it is defined.

    Args:
        removed: ``(traces, samples)`` section of the removed part (zero-mean).
        signal: ``(traces, samples)`` section of the denoised signal, its volume mean subtracted.
        window: Box smoothing window (traces, samples).

    Returns:
        ``(similarity, defined)``: float64 ``(traces, samples)`` in ``[-1, 1]``, and a bool mask of the samples
        where both parts carry energy (silent areas such as a water column have no similarity).
    """
    r = np.asarray(removed, dtype=np.float64)
    s = np.asarray(signal, dtype=np.float64)
    size = (min(window[0], r.shape[0]), min(window[1], r.shape[1]))
    rs = uniform_filter(r * s, size=size, mode="reflect")
    rr = np.maximum(uniform_filter(r * r, size=size, mode="reflect"), 0.0)  # rounding can dip below 0
    ss = np.maximum(uniform_filter(s * s, size=size, mode="reflect"), 0.0)
    power = rr * ss
    floor = 1e-6 * max(float(np.mean(rr)), 1e-300) * max(float(np.mean(ss)), 1e-300)
    defined = power > floor
    similarity = np.zeros_like(r)
    np.divide(rs, np.sqrt(power), out=similarity, where=defined)
    return np.clip(similarity, -1.0, 1.0), defined


def leakage_inlines(inlines: int, count: int = LEAKAGE_SECTIONS) -> list[int]:
    """Evenly spaced inline indices the local similarity is measured on (all of them for a small volume)."""
    if inlines <= count:
        return list(range(inlines))
    return sorted({int(round(i)) for i in np.linspace(0, inlines - 1, count)})


def fft_length(samples: int) -> int:
    """The rfft length for traces of ``samples`` samples: the next fast length (zero-padded at the end).

    A trace length such as 1259 (prime) makes the FFT ~10x slower than a 5-smooth one; padding with zeros
    samples the same spectrum more finely and keeps Parseval's sums, so ratios of energies are unchanged.
    """
    return sfft.next_fast_len(samples, real=True)


def frequency_groups(samples: int) -> tuple[int, int]:
    """``(group, bins)``: adjacent rfft bins summed per reported bin, and the number of reported bins."""
    n_freq = fft_length(samples) // 2 + 1
    group = -(-n_freq // MAX_BINS)
    return group, -(-n_freq // group)


def depth_edges(samples: int) -> np.ndarray:
    """Sample indices bounding the :data:`DEPTH_WINDOWS` windows down a trace (fewer for a short trace)."""
    return np.linspace(0, samples, min(DEPTH_WINDOWS, samples) + 1).round().astype(int)


def _grouped(values: np.ndarray, group: int, bins: int) -> np.ndarray:
    """Sum ``(traces, n_freq)`` over traces and over groups of ``group`` adjacent bins -> ``(bins,)``."""
    total = values.sum(axis=0, dtype=np.float64)
    padded = np.zeros(group * bins)
    padded[:total.size] = total
    return padded.reshape(bins, group).sum(axis=1)


def _neighbour_correlation(a: np.ndarray, live: np.ndarray) -> tuple[float, int]:
    """Sum and count of the correlation coefficients of neighbouring live traces of ``(traces, samples)``."""
    if a.shape[0] < 2:
        return 0.0, 0
    num = np.einsum("ij,ij->i", a[:-1], a[1:])
    energy = np.einsum("ij,ij->i", a, a)
    den = np.sqrt(energy[:-1] * energy[1:])
    ok = live[:-1] & live[1:] & (den > 1e-300) & (den > 1e-12 * max(float(energy.max()), 1e-300))
    return float((num[ok] / den[ok]).sum()), int(ok.sum())


def _pair(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation coefficient of two traces (1-D float64), or None when one is silent."""
    den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.dot(a, b)) / den if den > 1e-300 else None


def qc_part(first_inline: int, inputs: np.ndarray, output: np.ndarray, live: np.ndarray | None, *, mean: float,
            sampled: list[int]) -> dict:
    """The QC sums of a block of whole inlines ``first_inline:first_inline + n`` (JSON-ready).

    Args:
        first_inline: Index of the block's first inline in the volume.
        inputs: Input block ``(inline, crossline, sample)`` in the input's units, any float dtype.
        output: Output block, same shape, in the input's units.
        live: Optional ``(inline, crossline)`` bool of the traces that count (dead or absent traces do not).
        mean: The input's mean over the samples that count (from the amplitude fit), in its units.
        sampled: Inline indices of the volume whose local similarity is measured (:func:`leakage_inlines`).

    Returns:
        ``{"samples": int, "sums": {name: exact pair or list of pairs}, ...}``, for :func:`merge_qc`. A volume
        one crossline wide (a 2-D line stored as one crossline) has no neighbours inside an inline: its
        lateral coherence pairs consecutive inlines, and the part carries its first and last traces so that
        :func:`merge_qc` pairs them across parts.
    """
    n, _, s = inputs.shape
    group, bins = frequency_groups(s)
    nfft = fft_length(s)
    edges = depth_edges(s)
    rows = {name: [] for name in _SUMS}
    narrow = inputs.shape[1] == 1
    edges_r, edges_x = [], []
    for i in range(n):
        x = np.asarray(inputs[i], dtype=np.float64)
        y = np.asarray(output[i], dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        trace_live = np.ones(x.shape[0], dtype=bool) if live is None else np.asarray(live[i], dtype=bool)
        keep &= trace_live[:, None]
        r = np.where(keep, x - y, 0.0)
        dx = np.where(keep, x - mean, 0.0)
        rr, dd = r * r, dx * dx
        traces = trace_live & keep.any(axis=1)
        rows["count"].append(np.count_nonzero(keep))
        rows["r"].append(r.sum())
        rows["rr"].append(rr.sum())
        rows["dd"].append(dd.sum())
        rows["traces"].append(np.count_nonzero(traces))
        # Two FFTs in float32 (the QC's precision needs no more): the output's is X - R (linearity).
        fx = sfft.rfft(dx[traces].astype(np.float32), n=nfft, axis=1)
        fr = sfft.rfft(r[traces].astype(np.float32), n=nfft, axis=1)
        for key, f in (("x", fx), ("y", fx - fr), ("r", fr)):
            spec = np.abs(f)
            rows[f"amp_{key}"].append(_grouped(spec, group, bins))
            rows[f"pow_{key}"].append(_grouped(np.square(spec, out=spec), group, bins))
        for key, a in (("r", r), ("x", dx)):
            total, pairs = _neighbour_correlation(a, traces)
            rows[f"coh_{key}"].append(total)
            rows[f"pairs_{key}"].append(pairs)
        rows["depth_rr"].append(np.add.reduceat(rr.sum(axis=0), edges[:-1]))
        rows["depth_dd"].append(np.add.reduceat(dd.sum(axis=0), edges[:-1]))
        sim_sum, sim_n = 0.0, 0
        if first_inline + i in sampled and keep.any():
            sim, defined = local_similarity(r, np.where(keep, y - mean, 0.0))
            defined &= keep
            sim_sum, sim_n = float(np.abs(sim[defined]).sum()), int(defined.sum())
        rows["sim"].append(sim_sum)
        rows["sim_n"].append(sim_n)
        if narrow:
            edges_r.append(r[0] if traces[0] else None)
            edges_x.append(dx[0] if traces[0] else None)
    part = {"samples": int(s), "inlines": int(n), "first": int(first_inline)}
    if narrow:  # neighbours along the inline axis: inside the part here, across parts in merge_qc
        for key, edge in (("r", edges_r), ("x", edges_x)):
            for a, b in zip(edge[:-1], edge[1:]):
                c = None if a is None or b is None else _pair(a, b)
                if c is not None:
                    rows[f"coh_{key}"].append(c)
                    rows[f"pairs_{key}"].append(1)
        part["edges"] = {key: [None if t is None else t.tolist() for t in (edge[0], edge[-1])]
                         for key, edge in (("r", edges_r), ("x", edges_x))}
    part["sums"] = {name: exact_sum(np.asarray(vals, dtype=np.float64)) for name, vals in rows.items()}
    return part


# --- the report ---------------------------------------------------------------------------------------------

def merge_qc(parts: list[dict], sample_interval_ms: float | None = None, depth: bool = False) -> dict:
    """The QC report of a volume from the sums of its parts (:func:`qc_part`), in any order.

    Args:
        parts: One part per block of inlines; together they cover the volume once.
        sample_interval_ms: The sample interval in ms (or m for depth data), or None when unknown (then the
            spectra are per normalized frequency, cycles per sample).
        depth: The vertical axis is depth (the "interval" is in m; frequencies are cycles per km).

    Returns:
        JSON-ready figures (see the module docstring), ``warnings`` (sentences) and ``summary`` (the line a
        run prints, :func:`summary_words`).
    """
    parts = [p for p in parts if p.get("inlines", 1)]
    if not parts:
        return {"samples": 0, "removed_energy": 0.0, "removed_mean": 0.0, "removed_mean_of_std": 0.0,
                "local_similarity": 0.0, "warnings": [], "summary": "QC: no samples"}
    samples = parts[0]["samples"]
    if any(p["samples"] != samples for p in parts):
        raise ValueError(f"QC parts of different trace lengths: {sorted({p['samples'] for p in parts})}")
    extra = {"coh_r": [], "coh_x": [], "pairs_r": [], "pairs_x": []}
    ordered = sorted((p for p in parts if "edges" in p), key=lambda p: p["first"])
    for a, b in zip(ordered[:-1], ordered[1:]):  # a narrow volume's neighbours across parts
        if a["first"] + a["inlines"] != b["first"]:
            continue
        for key in ("r", "x"):
            last, first = a["edges"][key][1], b["edges"][key][0]
            c = None if last is None or first is None else _pair(np.asarray(last), np.asarray(first))
            if c is not None:
                extra[f"coh_{key}"].append(exact_sum(np.array([c])))
                extra[f"pairs_{key}"].append(exact_sum(np.array([1.0])))
    sums = {}
    for name in _SUMS:
        first = parts[0]["sums"][name]
        if isinstance(first[0], list):
            acc = [list(p) for p in first]
            for p in parts[1:]:
                acc = [_add_pairs(a, b) for a, b in zip(acc, p["sums"][name])]
            sums[name] = np.array([_value(a) for a in acc])
        else:
            acc = first
            for p in [q["sums"][name] for q in parts[1:]] + extra.get(name, []):
                acc = _add_pairs(acc, p)
            sums[name] = _value(acc)
    return _report(sums, samples, sample_interval_ms, depth)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _report(s: dict, samples: int, interval: float | None, depth: bool) -> dict:
    n, traces = s["count"], s["traces"]
    std = math.sqrt(s["dd"] / n) if n else 0.0
    mean_r = s["r"] / n if n else 0.0
    group, bins = frequency_groups(samples)
    nfft = fft_length(samples)
    n_freq = nfft // 2 + 1
    members = np.minimum(group, n_freq - group * np.arange(bins))
    k = (np.arange(bins) * group + (members - 1) / 2.0)  # each bin's mean rfft index
    cycles = k / nfft  # cycles per sample
    if interval:
        unit = "cycles/km" if depth else "Hz"
        freq = cycles / (interval * 1e-3)  # ms -> s (m -> km for depth)
    else:
        unit, freq = "cycles/sample", cycles
    nyquist = 0.5 / (interval * 1e-3) if interval else 0.5
    per_trace = max(traces, 1) * members
    amp = {"input": s["amp_x"] / per_trace, "output": s["amp_y"] / per_trace, "removed": s["amp_r"] / per_trace}
    px, py, pr = s["pow_x"], s["pow_y"], s["pow_r"]
    total_x = float(px.sum())

    # Signal band: within SIGNAL_BAND_DB of the input's peak (the DC bin left out: an offset is not signal).
    band = None
    a_in = amp["input"].copy()
    if group == 1 and a_in.size > 1:
        a_in[0] = 0.0
    if a_in.max() > 0:
        above = np.flatnonzero(a_in >= a_in.max() * 10 ** (SIGNAL_BAND_DB / 20))
        band = [float(freq[above[0]]), float(freq[above[-1]])]

    def below(f_hi: float) -> dict:
        sel = freq < f_hi
        return {"below": f_hi, "output_over_input": _ratio(float(py[sel].sum()), float(px[sel].sum())),
                "input_share": _ratio(float(px[sel].sum()), total_x),
                "output_share": _ratio(float(py[sel].sum()), total_x)}

    low = {}
    if interval and not depth:
        low["below_8_hz"] = below(LOW_HZ)
    if band is not None and band[0] > freq[min(1, freq.size - 1)]:  # a band reaching the lowest bin has no "below"
        low["below_signal_band"] = below(band[0])

    # Octave bands, from Nyquist down (the lowest band reaches 0).
    edges = [nyquist / 2 ** j for j in range(6)][::-1]
    edges = [0.0] + edges
    bands = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (freq >= lo) & ((freq < hi) if hi < nyquist else (freq <= hi))
        bx, by, br = float(px[sel].sum()), float(py[sel].sum()), float(pr[sel].sum())
        bands.append({"band": [lo, hi], "input_share": _ratio(bx, total_x), "output_over_input": _ratio(by, bx),
                      "removed_over_input": _ratio(br, bx), "output_share": _ratio(by, total_x)})

    # Where the removed energy sits in frequency: below, inside and above the signal band.
    split = None
    if band is not None and pr.sum() > 0:
        total_r = float(pr.sum())
        split = {"below": float(pr[freq < band[0]].sum()) / total_r,
                 "in": float(pr[(freq >= band[0]) & (freq <= band[1])].sum()) / total_r,
                 "above": float(pr[freq > band[1]].sum()) / total_r}

    edges_t = depth_edges(samples)
    scale_t = interval if interval else 1.0
    by_depth = [{"from": float(a * scale_t), "to": float(b * scale_t), "removed_over_input": _ratio(rr, dd)}
                for a, b, rr, dd in zip(edges_t[:-1], edges_t[1:], s["depth_rr"], s["depth_dd"])]

    coherence = {"removed": _ratio(s["coh_r"], s["pairs_r"]) or 0.0, "input": _ratio(s["coh_x"], s["pairs_x"]) or 0.0,
                 "pairs": int(s["pairs_r"]),
                 "method": "mean zero-lag correlation coefficient of neighbouring traces along each inline "
                           "section (along the inline axis for a volume one crossline wide)"}
    similarity = s["sim"] / s["sim_n"] if s["sim_n"] else 0.0
    vertical = ("m" if depth else "ms") if interval else "samples"
    out = {
        "samples": int(n), "removed_energy": s["rr"] / s["dd"] if s["dd"] > 0 else 0.0, "removed_mean": mean_r,
        "removed_mean_of_std": mean_r / std if std > 0 else 0.0,
        "sample_interval": interval, "vertical_unit": vertical, "frequency_unit": unit,
        "spectra": {"frequency": freq.tolist(), **{k2: v.tolist() for k2, v in amp.items()},
                    "method": "mean over traces of |rfft| along samples (zero-padded to a fast length), about "
                              "the input's mean"},
        "signal_band": band, "signal_band_method": f"where the input's amplitude spectrum is within "
                                                  f"{SIGNAL_BAND_DB:g} dB of its peak (DC excluded)",
        "low_frequency": low, "bands": bands, "removed_by_band": split,
        "coherence": coherence, "removed_by_depth": by_depth,
        "local_similarity": similarity, "local_similarity_method":
            f"mean |local similarity| of removed part and output (Chen & Fomel 2015, box smoother "
            f"{LEAKAGE_WINDOW[0]} traces x {LEAKAGE_WINDOW[1]} samples) on sampled inlines",
        "warnings": [],
    }
    out["warnings"] = _warnings(out, total_x)
    out["summary"] = summary_words(out)
    return out


def _fmt_f(f: float, unit: str) -> str:
    return f"{f:.3g} {unit}"


def _warnings(q: dict, total_x: float) -> list[str]:
    out, unit = [], q["frequency_unit"]
    for b in q["bands"]:
        ratio = b["output_over_input"]
        share = b["output_share"] or 0.0
        if share >= BAND_MIN_SHARE and (ratio is None or ratio > BAND_WARN):
            lo, hi = b["band"]
            times = "energy the input does not have" if ratio is None else f"{ratio:.2f}x the input's energy"
            out.append(f"the output holds {times} in the band {_fmt_f(lo, unit)}-{_fmt_f(hi, unit)}: the run "
                       "added energy there (look at the spectrum panel of --preview)")
    low = q["low_frequency"].get("below_8_hz")
    if low and low["output_over_input"] is not None and low["output_over_input"] > BAND_WARN \
            and (low["output_share"] or 0.0) >= BAND_MIN_SHARE:
        out.append(f"the output holds {low['output_over_input']:.2f}x the input's energy below 8 Hz: the run "
                   "added low frequencies")
    coh = q["coherence"]["removed"]
    if coh > COHERENCE_WARN:
        out.append(f"the removed part is coherent across traces ({coh:.2f}): it holds signal or coherent noise; "
                   "look at the removed panel of --preview")
    worst = max(q["removed_by_depth"], key=lambda w: w["removed_over_input"] or 0.0, default=None)
    if worst and (worst["removed_over_input"] or 0.0) > DEPTH_WARN:
        out.append(f"between {worst['from']:g} and {worst['to']:g} {q['vertical_unit']} the removed part holds "
                   f"{worst['removed_over_input']:.2f}x the input's energy: the run painted something there")
    if q["local_similarity"] > LEAKAGE_WARN:
        out.append(f"local similarity of removed part and output {q['local_similarity']:.2f} > {LEAKAGE_WARN}: "
                   "the run is taking signal out; lower --strength or check the preview")
    return out


def _coherence_words(c: float) -> str:
    if c < 0.1:
        return "incoherent across traces"
    return "weakly coherent across traces" if c < COHERENCE_WARN else "COHERENT across traces (signal or coherent noise)"


def summary_words(q: dict) -> str:
    """The QC line a run prints, in a processor's words, e.g. ``QC: removed 16.0 % of the input's energy (5 %
    of it below the signal band 6-60 Hz, 70 % in it, 25 % above); nothing added below 8 Hz (output/input
    0.97x), no octave band gained energy; removed part incoherent across traces (0.05; input 0.60); local
    similarity to the output 0.12``. The numbers behind it are the report's (``--report``)."""
    if not q.get("samples"):
        return "QC: no samples"
    unit = q["frequency_unit"]
    parts = [f"removed {q['removed_energy'] * 100:.1f} % of the input's energy"]
    band, split = q.get("signal_band"), q.get("removed_by_band")
    if band and split:
        parts[0] += (f" ({split['below'] * 100:.0f} % of it below the signal band {_fmt_f(band[0], unit)}-"
                     f"{_fmt_f(band[1], unit)}, {split['in'] * 100:.0f} % in it, {split['above'] * 100:.0f} % above)")
    gained = [b for b in q["bands"] if (b["output_share"] or 0.0) >= BAND_MIN_SHARE
              and (b["output_over_input"] is None or b["output_over_input"] > BAND_WARN)]
    words = []
    for key, where in (("below_8_hz", "below 8 Hz"), ("below_signal_band", "below the signal band")):
        low = q["low_frequency"].get(key)
        if low is None or low["output_over_input"] is None:
            continue
        if low["output_over_input"] > BAND_WARN and (low["output_share"] or 0.0) >= BAND_MIN_SHARE:
            words.append(f"ADDED energy {where} (output/input {low['output_over_input']:.2f}x)")
        elif low["output_over_input"] > BAND_WARN:  # a ratio of next to nothing: say so, not "nothing added (1.14x)"
            words.append(f"nothing of weight added {where} (output/input {low['output_over_input']:.2f}x of "
                         f"{(low['output_share'] or 0.0) * 100:.2g} % of the input's energy)")
        else:
            words.append(f"nothing added {where} (output/input {low['output_over_input']:.2f}x)")
        break
    if gained:
        words.append("ADDED energy in " + ", ".join(f"{_fmt_f(b['band'][0], unit)}-{_fmt_f(b['band'][1], unit)}"
                                                    for b in gained))
    elif not words or words[0].startswith("nothing"):
        words.append("no octave band gained energy")
    parts.append(", ".join(words))
    coh = q["coherence"]["removed"]
    parts.append(f"removed part {_coherence_words(coh)} ({coh:.2f}; input {q['coherence']['input']:.2f})")
    parts.append(f"local similarity to the output {q['local_similarity']:.2f}")
    if unit == "cycles/sample":
        parts.append("sample interval unknown")
    return "QC: " + "; ".join(parts)


@dataclass
class QualityControl:
    """Accumulates the QC parts of one volume, block by block of inlines (one process).

    Attributes:
        mean: The input's mean over the samples that count (finite, live), in its units (from the fit).
        sampled: Inline indices whose local similarity is measured.
        sample_interval_ms: The data's sample interval, or None when unknown.
    """

    mean: float
    sampled: list[int]
    sample_interval_ms: float | None = None
    parts: list[dict] = field(default_factory=list)

    def add(self, first_inline: int, inputs: np.ndarray, output: np.ndarray, live: np.ndarray | None = None) -> None:
        """Take a block of inlines ``first_inline:first_inline + n`` (see :func:`qc_part`)."""
        self.parts.append(qc_part(first_inline, inputs, output, live, mean=self.mean, sampled=self.sampled))

    def report(self) -> dict:
        """The figures (:func:`merge_qc`)."""
        return merge_qc(self.parts, self.sample_interval_ms)
