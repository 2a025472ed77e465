"""Field data in the quality benchmark: does the denoiser leave real signal alone? (issue 25, deliver 6)

Two kinds of evidence, the way a processor judges a denoiser on a survey:

1. **The field development lines** (``../shared/field``: a land line, a marine crossline, a piece of a 3-D
   cube), denoised as they are. No clean reference exists, so the figures are about damage: the energy
   removed, the output's energy below 8 Hz over the input's (a denoiser must not add low frequencies), the
   challenge-formula SSIM of output against input, the removed energy in the last 150 samples (a blob where
   the data meet the padding) against the removed share overall, the removed part's lateral coherence (noise
   is incoherent from trace to trace; a removed reflector is not), seams at tile boundaries, and the same line
   resampled to 2 ms denoised alike (relative difference of the removed parts, brought back to 4 ms).
2. **Semi-synthetic cases**: each stack plus noise of a named kind (band-limited random, erratic traces,
   linear dipping noise, swell, the synthetic family's noise), scored against the stack itself (SNR in dB,
   challenge-formula SSIM), beside a 5-60 Hz band-pass and f-x deconvolution.

Pictures (input | output | removed on one clip, and the spectra) and a JSON + markdown table go to
``benchmarks/results/``. The stacks are never trained on: they are for judging.

    python -m impeccable.benchmarks.field --model models/unetpp-v2s-synth --out benchmarks/results/field-v6
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

#: ``(name, file, SEG-Y options, description)`` of the development lines.
LINES = (
    ("alaska", "alaska_npra_31-81.npy", {}, "USGS NPRA 2-D land line 31-81, processed stack, 4 ms"),
    ("penobscot", "penobscot_xl1155.sgy", {"iline": 189, "xline": 193}, "Penobscot 3-D crossline 1155, marine"),
    ("f3", "f3_full_il105-106.sgy", {}, "F3 Netherlands inlines 105-106, full stack (median-filtered)"),
)
DEFAULT_FIELD = Path(__file__).resolve().parents[2] / "shared" / "field"
LOW_HZ = 8.0
END_SAMPLES = 150

#: A denoiser: ``(volume (inline, crossline, sample) float32, sample interval ms) -> same``.
Denoiser = Callable[[np.ndarray, float], np.ndarray]


@dataclass
class Line:
    """One development line as a volume ``(sections, traces, samples)`` float32 and its interval in ms."""

    name: str
    volume: np.ndarray
    interval_ms: float
    about: str


def load_lines(field_dir: Path = DEFAULT_FIELD) -> list[Line]:
    """The development lines, each as sections along its longer trace axis (a crossline file: one section)."""
    from impeccable.runtime.volumes import open_reader

    out = []
    for name, file, segy, about in LINES:
        reader = open_reader(Path(field_dir) / file, segy=segy or None)
        volume = reader.read()
        samples = getattr(reader, "samples", None)
        interval = float(samples[1] - samples[0]) if samples is not None and len(samples) > 1 else 4.0
        if volume.shape[1] < volume.shape[0]:  # one crossline of a 3-D survey: its section is the crossline
            volume = np.ascontiguousarray(volume.transpose(1, 0, 2))
        out.append(Line(name, volume.astype(np.float32), interval, about))
    return out


# ---------------------------------------------------------------------------------------------------------
# Figures


def spectrum(volume: np.ndarray, interval_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """``(frequencies in Hz, mean power over traces)`` of ``(..., samples)`` data."""
    flat = volume.reshape(-1, volume.shape[-1]).astype(np.float64)
    power = (np.abs(np.fft.rfft(flat, axis=-1)) ** 2).mean(axis=0)
    return np.fft.rfftfreq(volume.shape[-1], interval_ms / 1000.0), power


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.asarray(x, dtype=np.float64) ** 2))


def lateral_coherence(removed: np.ndarray) -> float:
    """Mean correlation of neighbouring traces of the removed part (0: incoherent noise; near 1: events)."""
    a, b = removed[:, :-1, :].astype(np.float64), removed[:, 1:, :].astype(np.float64)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    ok = den > 0
    return float(((a * b).sum(-1)[ok] / den[ok]).mean()) if ok.any() else 0.0


def ssim_vs(reference: np.ndarray, other: np.ndarray) -> float:
    """Challenge-formula SSIM: each volume on its own uint8 min-max scale, SSIM per section, mean."""
    from impeccable.data.scoring import section_ssim, to_uint8_volume

    a, b = to_uint8_volume(reference), to_uint8_volume(other)
    return float(np.mean([section_ssim(a[i], b[i]) for i in range(a.shape[0])]))


def damage_figures(inp: np.ndarray, out: np.ndarray, interval_ms: float) -> dict:
    """What a denoiser did to a field line with no clean reference (module notes)."""
    removed = inp - out
    f, p_in = spectrum(inp, interval_ms)
    _, p_out = spectrum(out, interval_ms)
    low = (f > 0) & (f < LOW_HZ)
    octaves = [(lo, 2 * lo) for lo in (2.0, 4.0, 8.0, 16.0, 32.0, 64.0) if 2 * lo <= f[-1]]
    band_ratios = {f"{lo:g}-{hi:g}": float(p_out[(f >= lo) & (f < hi)].sum() / max(p_in[(f >= lo) & (f < hi)].sum(),
                                                                                   1e-30)) for lo, hi in octaves}
    e_in = _energy(inp)
    end = slice(-END_SAMPLES, None)
    return {
        "removed_pct": 100 * _energy(removed) / e_in,
        "low_freq_ratio": float(p_out[low].sum() / max(p_in[low].sum(), 1e-30)),
        "band_ratios": band_ratios,
        "max_band_ratio": max(band_ratios.values()),
        "ssim_out_vs_in": ssim_vs(inp, out),
        "end_removed_pct": 100 * _energy(removed[..., end]) / max(_energy(inp[..., end]), 1e-30),
        "end_removed_over_input_x": _energy(removed[..., end]) / max(_energy(inp[..., end]), 1e-30),
        "lateral_coherence_removed": lateral_coherence(removed),
        "lateral_coherence_input": lateral_coherence(inp),
        "seam_ratio": seam_ratio(out, window_traces=320),
        # The same figure of the input at the same columns: a line's own trace-to-trace jumps vary, and the
        # largest of a few edges over the median is above 1 with no tiling at all (Alaska's input: 1.24).
        "seam_ratio_input": seam_ratio(inp, window_traces=320),
    }


def seam_ratio(out: np.ndarray, window_traces: int) -> float:
    """Trace-to-trace jump of a line at tile edges over its median elsewhere (1: no seam).

    Compare the output's figure with the input's at the same edges: the largest of a few jumps over the median
    exceeds 1 on an untouched line; a seam shows as the output's figure above the input's.

    Tiles of ``window_traces`` overlap and are blended (core.tiling); a seam would show as a jump where one
    tile's weight ends. For a line that fits one window there are no edges: 1.
    """
    from impeccable.core.tiling import default_overlap, window_starts

    traces = out.shape[1]
    starts = window_starts(traces, window_traces, default_overlap((window_traces, 1280))[0])
    if len(starts) < 2:
        return 1.0
    jumps = np.sqrt(np.mean(np.diff(out.astype(np.float64), axis=1) ** 2, axis=(0, 2)))  # (traces - 1,)
    edges = sorted({s for s in starts[1:]} | {s + window_traces - 1 for s in starts[:-1]})
    edges = [e for e in edges if 0 < e < traces - 1]
    return float(max(jumps[e - 1:e + 1].max() for e in edges) / np.median(jumps))


def snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * np.log10(_energy(clean) / max(_energy(clean - estimate), 1e-30))


# ---------------------------------------------------------------------------------------------------------
# Denoisers


def reference_denoiser(model_dir: Path, tta: bool = True, batch: int = 4) -> Denoiser:
    """The runtime's math in-process on the torch network (the parity tests pin the engines to it)."""
    import torch

    from impeccable.core.amplitude import volume_stats
    from impeccable.core.calibration import AmplitudeFit, inline_sums
    from impeccable.core.model_io import ModelIO
    from impeccable.core.tiling import predict_sections
    from impeccable.models.checkpoint import load_model
    from impeccable.train.validate import torch_runner

    model, card = load_model(model_dir)
    io = ModelIO.from_card(card)
    run = torch_runner(model.float().eval(), "cpu", None)

    def denoise(volume: np.ndarray, interval_ms: float) -> np.ndarray:
        stats = volume_stats(volume)
        with torch.inference_mode():
            pred = predict_sections(io.normalize(volume, stats), run, io.window, tta, batch,
                                    pad_value=io.pad_value, resampling=io.resampling(interval_ms),
                                    guard=io.output_guard, gain=io.section_gain)
        fit = AmplitudeFit.from_sums(inline_sums(volume, pred, stats), stats, io.scaling)
        return fit.apply(volume, pred, stats)

    return denoise


def product_denoiser(model_dir: Path, engine: str, tta: bool = True) -> Denoiser:
    """What users get: :func:`impeccable.denoise` through an engine."""
    import impeccable

    def denoise(volume: np.ndarray, interval_ms: float) -> np.ndarray:
        # time last, said outright: "auto" takes the unique longest axis, which for a case's stretch of 500
        # samples on 534 or 601 traces is the traces
        return impeccable.denoise(volume, model=str(model_dir), engine=engine, tta=tta, views="inline",
                                  time_axis=2, sample_interval=interval_ms, progress=False)

    return denoise


def bandpass_denoiser(volume: np.ndarray, interval_ms: float) -> np.ndarray:
    from impeccable.data.baselines import bandpass

    return bandpass(volume, 5.0, 60.0, dt=interval_ms / 1000.0)


def fx_denoiser(volume: np.ndarray, interval_ms: float) -> np.ndarray:
    from impeccable.data.baselines import fx_decon

    return fx_decon(volume, dt=interval_ms / 1000.0)


# ---------------------------------------------------------------------------------------------------------
# Semi-synthetic cases


NOISE_KINDS = ("band-limited", "erratic-traces", "linear", "swell", "family-a")
#: Samples of the quiet stretch each case is built on (2 s at 4 ms; a shorter line is taken whole).
QUIET_SAMPLES = 500


def quiet_stretch(volume: np.ndarray) -> tuple[np.ndarray, int]:
    """The stretch of a stack whose reflections are the most continuous, and its first sample.

    A stack holds its own noise (Alaska's land line is noisy throughout): scored against the whole stack, a
    denoiser that removes that noise would be penalized. The stretch of :data:`QUIET_SAMPLES` samples, in
    steps of a quarter of it, whose neighbouring traces correlate best (:func:`lateral_coherence`) is the
    nearest thing to a clean reference a real line offers.
    """
    samples = volume.shape[-1]
    if samples <= QUIET_SAMPLES:
        return volume, 0
    starts = range(0, samples - QUIET_SAMPLES + 1, QUIET_SAMPLES // 4)
    best = max(starts, key=lambda t: lateral_coherence(volume[..., t:t + QUIET_SAMPLES]))
    return np.ascontiguousarray(volume[..., best:best + QUIET_SAMPLES]), best


def add_noise(clean: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """The stack plus noise of one named kind, about as strong as the stack (float32)."""
    from impeccable.data import synth_field as sf

    rng = np.random.default_rng(seed)
    sigma = float(clean.std())
    out = np.empty_like(clean)
    for i, section in enumerate(clean):
        if kind == "band-limited":  # 10-60 Hz at 4 ms
            noise = sf._band_noise(section.shape, rng, 0.04, 0.24) * np.float32(sigma * 0.8)
        elif kind == "erratic-traces":
            noise = sf._erratic_traces(section, rng, sigma) + sf._spikes(section, rng, sigma)
        elif kind == "linear":
            noise = sf._linear_noise(section, rng, sigma) + sf._band_noise(section.shape, rng, 0.04, 0.24) * \
                np.float32(0.2 * sigma)
        elif kind == "swell":
            noise = sf._swell(section, rng, sigma * 0.5) + sf._band_noise(section.shape, rng, 0.04, 0.24) * \
                np.float32(0.2 * sigma)
        elif kind == "family-a":
            noise = _family_noise(section.shape, rng) * np.float32(sigma * 0.8)
        else:
            raise ValueError(kind)
        out[i] = section + noise
    return out


def _family_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The challenge-like noise of synthetic family a, cut to a section's shape (unit std)."""
    from impeccable.data.families import synthesize_family_pair

    from impeccable.data.synth_field import in_input_units

    traces, samples = shape
    clean, noisy = synthesize_family_pair("a", 0, int(rng.integers(1 << 30)), (8, max(traces, 32), 1259))
    mapped, _ = in_input_units(noisy[0], clean[0])
    noise = (noisy[0] - mapped)[:traces]
    noise = np.concatenate([noise] * -(-samples // noise.shape[1]), axis=1)[:, :samples]
    return (noise / (noise.std() or 1.0)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# The run


def picture(path: Path, title: str, inp: np.ndarray, out: np.ndarray, interval_ms: float) -> None:
    """Input | output | removed on one symmetric clip, and their spectra (dB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    removed = inp - out
    clip = float(np.percentile(np.abs(inp), 99)) or 1.0
    t_end = inp.shape[-1] * interval_ms
    fig, axes = plt.subplots(1, 4, figsize=(18, 6), gridspec_kw={"width_ratios": [1, 1, 1, 0.8]})
    for ax, data, name in zip(axes, (inp[0], out[0], removed[0]), ("input", "output", "removed (input - output)")):
        ax.imshow(data.T, cmap="gray", vmin=-clip, vmax=clip, aspect="auto",
                  extent=(0, data.shape[0], t_end, 0))
        ax.set_title(name)
        ax.set_xlabel("trace")
    axes[0].set_ylabel("time (ms)")
    for data, name in ((inp, "input"), (out, "output"), (removed, "removed")):
        f, p = spectrum(data, interval_ms)
        axes[3].plot(f, 10 * np.log10(p + 1e-30), label=name)
    axes[3].axvline(LOW_HZ, color="gray", ls=":")
    axes[3].set_xlabel("frequency (Hz)")
    axes[3].set_ylabel("power (dB)")
    axes[3].legend()
    fig.suptitle(f"{title} (one clip: 99th percentile of |input|)")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def run(denoiser: Denoiser, field_dir: Path, out_dir: Path, cases: bool = True, seeds: int = 1,
        log: Callable[[str], None] = print) -> dict:
    """Every development line and semi-synthetic case; pictures under ``out_dir``; returns the results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    from impeccable.core.resample import Resampling

    results: dict = {"lines": {}, "cases": []}
    for line in load_lines(field_dir):
        t0 = time.perf_counter()
        out = denoiser(line.volume, line.interval_ms)
        fig = damage_figures(line.volume, out, line.interval_ms)
        # The same line at half the interval: denoised alike?
        half = Resampling.between(line.interval_ms, line.interval_ms / 2)
        fine = half.to_model(line.volume)
        removed_fine = fine - denoiser(fine, line.interval_ms / 2)
        back = half.to_data(removed_fine, line.volume.shape[-1])
        removed = line.volume - out
        fig["interval_half_rel_diff"] = float(np.sqrt(_energy(back - removed) / max(_energy(removed), 1e-30)))
        fig["seconds"] = time.perf_counter() - t0
        results["lines"][line.name] = fig
        picture(out_dir / f"{line.name}.png", f"{line.name}: {line.about}", line.volume, out, line.interval_ms)
        log(f"{line.name}: removed {fig['removed_pct']:.1f} %, <8 Hz x{fig['low_freq_ratio']:.2f}, "
            f"SSIM(out, in) {fig['ssim_out_vs_in']:.3f}, end x{fig['end_removed_over_input_x']:.2f}, "
            f"coherence of removed {fig['lateral_coherence_removed']:.2f}, seam x{fig['seam_ratio']:.2f} "
            f"(input x{fig['seam_ratio_input']:.2f}), "
            f"2 ms vs 4 ms {fig['interval_half_rel_diff']:.3f}")
        if not cases:
            continue
        clean, first = quiet_stretch(line.volume)
        for kind in NOISE_KINDS:
            for seed in range(seeds):
                noisy = add_noise(clean, kind, seed)
                row = {"line": line.name, "noise": kind, "seed": seed,
                       "stretch": [int(first), int(first + clean.shape[-1])],
                       "input": {"snr_db": snr_db(clean, noisy), "ssim": ssim_vs(clean, noisy)}}
                estimates = {}
                for name, fn in (("model", denoiser), ("bandpass", bandpass_denoiser), ("fx", fx_denoiser)):
                    estimates[name] = fn(noisy, line.interval_ms)
                    row[name] = {"snr_db": snr_db(clean, estimates[name]), "ssim": ssim_vs(clean, estimates[name])}
                if seed == 0:
                    picture(out_dir / f"case-{line.name}-{kind}.png", f"{line.name} + {kind}", noisy,
                            estimates["model"], line.interval_ms)
                results["cases"].append(row)
                log(f"  + {kind}: input {row['input']['snr_db']:+.1f} dB; model {row['model']['snr_db']:+.1f} dB "
                    f"SSIM {row['model']['ssim']:.3f}; band-pass {row['bandpass']['snr_db']:+.1f} dB "
                    f"{row['bandpass']['ssim']:.3f}; f-x {row['fx']['snr_db']:+.1f} dB {row['fx']['ssim']:.3f}")
    if results["cases"]:
        gains = [c["model"]["snr_db"] - c["input"]["snr_db"] for c in results["cases"]]
        results["summary"] = {
            "mean_snr_gain_db": float(np.mean(gains)),
            "beats_bandpass_snr_and_ssim": int(sum(c["model"]["snr_db"] > c["bandpass"]["snr_db"]
                                                   and c["model"]["ssim"] > c["bandpass"]["ssim"]
                                                   for c in results["cases"])),
            "cases": len(results["cases"])}
    return results


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--model", "model_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Model directory.")
@click.option("--engine", default="torch", show_default=True,
              help="torch: the runtime's math on the torch network in-process; else an engine of impeccable.denoise.")
@click.option("--field-dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_FIELD,
              show_default=True, help="Folder of the development lines.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for field.json, field.md and the pictures.")
@click.option("--tta/--no-tta", default=True, show_default=True)
@click.option("--cases/--no-cases", default=True, show_default=True, help="Also the semi-synthetic cases.")
def main(model_dir: Path, engine: str, field_dir: Path, out_dir: Path, tta: bool, cases: bool) -> None:
    """Denoise the field development lines and semi-synthetic cases; write figures and pictures."""
    denoiser = reference_denoiser(model_dir, tta) if engine == "torch" else product_denoiser(model_dir, engine, tta)
    results = run(denoiser, field_dir, out_dir, cases=cases)
    results.update({"model": str(model_dir), "engine": engine, "tta": tta})
    (out_dir / "field.json").write_text(json.dumps(results, indent=1) + "\n")
    click.echo(f"wrote {out_dir / 'field.json'}")


if __name__ == "__main__":
    main()
