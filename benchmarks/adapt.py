"""Does ``impeccable-train --adapt`` help on a field line? A semi-synthetic measurement, CPU-bounded.

    nice -n 5 python -m impeccable.benchmarks.adapt --minutes 8.5 --cases random+erratic \
        --json benchmarks/results/adapt-cpu.json

The processed Penobscot stack (``../shared/field/penobscot_xl1155.sgy``, crossline 1155: 601 traces x 1501
samples at 4 ms; inline byte 189, crossline byte 193) is the truth. Each case adds noise of named kinds to it:

- ``random``: band-limited random noise (white Gaussian through a 10-60 Hz zero-phase Butterworth band-pass),
  scaled to ``--snr`` dB against the stack (0 dB: as much noise energy as signal);
- ``erratic``: on top of it, a share of noisy traces (``--erratic-share``, band-limited noise at
  ``--erratic-gain`` times the stack's RMS along the whole trace);
- ``linear``: on top of the random noise, dipping linear events (a 20 Hz Ricker wavelet on three slopes),
  coherent across traces: the kind blind-spot training cannot remove.

Cases are ``+``-joined kinds (``random``, ``random+erratic``, ``random+linear``). For each case the noisy line is
written as SEG-Y (the original's headers), the shipped model (``--init-from``) is adapted on it with
``--adapt`` for at most ``--minutes`` of training (``nice``, the machine's cores), never seeing the stack, and a
quarter of the line (``--holdout``, the middle traces) is held out of training. The noisy line is then
denoised by the start model and by the adapted one, each fed as its card says (:class:`impeccable.train.survey.
SurveyFeed` over ``ModelIO``: the start model v5 min-max with the runtime's amplitude fit, the adapted one
robust; torch fp32, flip TTA, crossline sections: the file's only wide view), and band-passed 5-60 Hz; on the
held-out traces each is scored against the stack: SNR in dB (``10 log10(sum s^2 / sum (y - s)^2)``) and the
challenge's SSIM (both blocks min-max scaled to uint8 on their own, skimage SSIM, ``impeccable.data.scoring``).
Also: clean-in (the stack itself denoised by each model: SSIM against itself, energy removed) and, with
``--forgetting N``, the challenge score of both models on ``N`` held-out synthetic volumes of families a and b
(moderate noise, and clean-in). ``--removal-floor-coherence DB`` scores both models with that raise of the
output guard's removal floor (the runtime's option of the same name), so that the adapted model is judged as a
user who runs with it would see it.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

from impeccable.core.cli import one_line_errors
from impeccable.core.errors import InputError

#: The field line: ``../shared/field/`` beside the repository (or beside the worktrees' folder).
FIELD = next((p for p in (Path(__file__).resolve().parents[k] / "shared" / "field" / "penobscot_xl1155.sgy"
                          for k in (2, 3)) if p.is_file()), Path("../shared/field/penobscot_xl1155.sgy"))
SEGY = {"iline": 189, "xline": 193}
DT = 0.004
KINDS = ("random", "erratic", "linear")


def _autocast() -> torch.dtype | None:
    from impeccable.train.loop import native_bf16

    return torch.bfloat16 if native_bf16(False) else None


AUTOCAST = _autocast()


def band_noise(shape: tuple[int, ...], rng: np.random.Generator, low: float = 10.0, high: float = 60.0) -> np.ndarray:
    """Unit-RMS band-limited Gaussian noise ``(inline, crossline, sample)`` float32."""
    from impeccable.data.baselines import bandpass

    noise = bandpass(rng.standard_normal(shape).astype(np.float32), low, high, dt=DT)
    return (noise / np.sqrt(np.mean(noise.astype(np.float64) ** 2))).astype(np.float32)


def ricker(f: float, dt: float = DT, half: int = 40) -> np.ndarray:
    """A Ricker wavelet of peak frequency ``f`` Hz."""
    t = np.arange(-half, half + 1) * dt
    a = (np.pi * f * t) ** 2
    return ((1 - 2 * a) * np.exp(-a)).astype(np.float32)


def add_noise(clean: np.ndarray, case: str, snr_db: float, erratic_share: float, erratic_gain: float,
              seed: int) -> np.ndarray:
    """The stack plus the case's noise kinds, ``(inline, crossline, sample)`` float32."""
    kinds = case.split("+")
    if unknown := [k for k in kinds if k not in KINDS]:
        raise InputError("unknown noise kind", received=unknown[0], expected=", ".join(KINDS),
                         todo="e.g. --cases random+erratic")
    rng = np.random.default_rng(seed)
    rms = float(np.sqrt(np.mean(clean.astype(np.float64) ** 2)))
    noisy = clean.copy()
    if "random" in kinds:
        noisy += band_noise(clean.shape, rng) * np.float32(rms * 10 ** (-snr_db / 20))
    if "erratic" in kinds:
        traces = clean.shape[0] * clean.shape[1]
        bad = rng.choice(traces, size=max(1, int(round(erratic_share * traces))), replace=False)
        flat = noisy.reshape(traces, -1)
        flat[bad] += band_noise((bad.size, 1, clean.shape[2]), rng, 5.0, 80.0)[:, 0] * np.float32(erratic_gain * rms)
    if "linear" in kinds:
        wavelet = ricker(20.0)
        flat = noisy.reshape(-1, clean.shape[2])
        n, t = flat.shape
        for slope, t0 in ((2.0, 200), (-1.5, 900), (3.5, 500)):  # samples per trace, start sample
            for k in range(n):
                pos = int(t0 + slope * k) % t
                lo, hi = max(0, pos - 40), min(t, pos + 41)
                flat[k, lo:hi] += wavelet[lo - pos + 40:hi - pos + 40] * np.float32(1.5 * rms)
    return noisy


def snr_db(truth: np.ndarray, estimate: np.ndarray) -> float:
    t = truth.astype(np.float64)
    return float(10 * np.log10(np.sum(t * t) / np.sum((estimate.astype(np.float64) - t) ** 2)))


def ssim(truth: np.ndarray, estimate: np.ndarray) -> float:
    """The challenge's SSIM of two 2-D blocks, each min-max scaled to uint8 on its own."""
    from impeccable.data.scoring import section_ssim, to_uint8_volume

    return section_ssim(to_uint8_volume(truth), to_uint8_volume(estimate))


def write_segy(path: Path, volume: np.ndarray) -> None:
    """``volume`` written with the Penobscot file's headers (the runtime's SEG-Y writer)."""
    from impeccable.runtime.volumes import open_reader, open_writer

    reader = open_reader(FIELD, segy=SEGY)
    writer = open_writer(path, like=reader, overwrite=True)
    try:
        writer.write(slice(0, volume.shape[0]), volume)
        writer.commit()
    finally:
        reader.close()


def denoise(volume: np.ndarray, model_dir: Path, interval_ms: float = DT * 1000,
            coherence_db: float | None = None) -> np.ndarray:
    """A canonical volume denoised as ``impeccable-denoise`` feeds the model its card names (scaling, padding,
    resampling: :class:`impeccable.train.survey.SurveyFeed` over :class:`impeccable.core.model_io.ModelIO`),
    flip TTA, torch on the CPU (bf16 autocast where native, as the trainer); sections along the axis with more
    traces; ``coherence_db``: the run's ``--removal-floor-coherence`` (None: the card's). Returns the volume's
    units."""
    from impeccable.core.amplitude import volume_stats
    from impeccable.models.checkpoint import load_model
    from impeccable.train.adapt_qc import denoise as denoise_sections
    from impeccable.train.survey import SurveyFeed

    model, card = load_model(model_dir)
    feed = SurveyFeed(card, interval_ms)
    if coherence_db is not None:
        feed.io = feed.io.with_removal_floor(None, coherence_db)
    stats = volume_stats(volume)  # per inline slice, as the runtime's reader statistics
    crossline = volume.shape[0] > volume.shape[1]
    sections = np.ascontiguousarray(volume.transpose(1, 0, 2)) if crossline else volume
    out = denoise_sections(feed, model, sections, stats, torch.device("cpu"), AUTOCAST, 4)
    return np.ascontiguousarray(out.transpose(1, 0, 2)) if crossline else out


def forgetting(start: Path, adapted: Path, volumes: int, tmp: Path, coherence_db: float | None = None) -> dict:
    """Challenge score of both models on held-out synthetic volumes of families a and b (8 x 128 x 1259)."""
    from impeccable.data.families import synthesize_family_pair
    from impeccable.data.scoring import score_volumes

    out = {}
    for family in ("a", "b"):
        rows = []
        for k in range(volumes):
            clean, noisy = synthesize_family_pair(family, k, 900001 + k, (8, 128, 1259), "moderate")
            row = {"seed": 900001 + k, "noisy": score_volumes(clean, noisy)}
            for name, model in (("start", start), ("adapted", adapted)):
                row[name] = score_volumes(clean, denoise(noisy.astype(np.float32), model, coherence_db=coherence_db))
            rows.append(row)
        out[family] = rows
    return out


def run_case(case: str, args: dict, clean: np.ndarray, tmp: Path) -> dict:
    """Adapt on the case's noisy line (or take ``--adapted``) and :func:`evaluate` it."""
    from impeccable.train.adapt import AdaptConfig, adapt

    noisy = add_noise(clean, case, args["snr"], args["erratic_share"], args["erratic_gain"], args["seed"])
    if args["adapted"] is not None:  # score an adaptation made before (on this case's noisy line)
        return evaluate(case, args, clean, noisy, Path(args["adapted"]), None, tmp)
    noisy_path = tmp / f"noisy-{case}.sgy"
    write_segy(noisy_path, noisy)
    run_dir = tmp / f"adapt-{case}"
    t0 = time.perf_counter()
    result = adapt(AdaptConfig(out=run_dir, adapt=noisy_path, init_from=args["init_from"], iline_byte=SEGY["iline"],
                               xline_byte=SEGY["xline"], holdout=args["holdout"], max_minutes=args["minutes"],
                               steps_per_epoch=args["steps"], synthetic_share=args["synthetic_share"],
                               mask=args["mask"], synthetic_dir=tmp / "synthetic", progress=False,
                               device=args["device"],
                               **({"crop": tuple(int(v) for v in args["crop"].split("x"))} if args["crop"] else {})))
    return evaluate(case, args, clean, noisy, run_dir, {"adapt_wall_s": round(time.perf_counter() - t0, 1),
                                                         "adapt_stopped": result.stopped}, tmp)


def evaluate(case: str, args: dict, clean: np.ndarray, noisy: np.ndarray, run_dir: Path, run: dict | None,
             tmp: Path) -> dict:
    """Scores of the start model, the adapted one (``run_dir``) and the band-pass on the held-out traces."""
    from impeccable.core.card import read_card
    from impeccable.data.baselines import bandpass

    card = read_card(run_dir)
    qc_path = run_dir / "adapt_qc.json"
    block = card["data"]["survey"]["held_out_block"]
    held = (slice(block["start"], block["stop"]), 0) if block["view_axis"] == "inline" else \
        (0, slice(block["start"], block["stop"]))
    outputs = {"noisy": noisy, "bandpass 5-60 Hz": bandpass(noisy, 5.0, 60.0, dt=DT)}
    raise_db = args["removal_floor_coherence"]
    for name, model in (("start model", args["init_from"]), ("adapted model", run_dir)):
        outputs[name] = denoise(noisy, model, coherence_db=raise_db)
    truth = clean[held]
    scores = {name: {"snr_db": snr_db(truth, out[held]), "ssim": ssim(truth, out[held])}
              for name, out in outputs.items()}
    clean_in = {}
    for name, model in (("start model", args["init_from"]), ("adapted model", run_dir)):
        out = denoise(clean, model, coherence_db=raise_db)
        removed = float(np.sum((clean - out).astype(np.float64) ** 2) / np.sum(clean.astype(np.float64) ** 2))
        clean_in[name] = {"ssim_held_out": ssim(truth, out[held]), "ssim_line": ssim(clean[:, 0], out[:, 0]),
                          "removed_energy": removed}
    lineage = card["training"]["lineage"][-1]
    row = {"case": case, "adapt_steps": lineage["steps"], **(run or {"adapt_wall_s": lineage.get("wall_time_s"),
                                                                    "adapt_stopped": "see the run"}),
           "adapted": str(run_dir), "held_out_traces": [block["start"], block["stop"]], "scores": scores,
           "clean_in": clean_in, "qc": json.loads(qc_path.read_text()) if qc_path.is_file() else None,
           "lineage": lineage}
    if args["forgetting"]:
        row["forgetting"] = forgetting(args["init_from"], run_dir, args["forgetting"], tmp, raise_db)
    return row


def markdown(report: dict) -> str:
    lines = [f"# --adapt on semi-synthetic Penobscot ({report['machine']})", "",
             f"Command: `{report['command']}`", ""]
    for row in report["cases"]:
        lines += [f"## {row['case']} (SNR {report['args']['snr']:g} dB; {row['adapt_steps']} steps in "
                  f"{row['adapt_wall_s']:.0f} s; held-out traces {row['held_out_traces'][0]}-"
                  f"{row['held_out_traces'][1]})", "", "| output | SNR dB | SSIM |", "|---|---|---|"]
        lines += [f"| {name} | {s['snr_db']:.2f} | {s['ssim']:.4f} |" for name, s in row["scores"].items()]
        lines += ["", "| clean-in | SSIM held-out | SSIM line | energy removed |", "|---|---|---|---|"]
        lines += [f"| {name} | {c['ssim_held_out']:.4f} | {c['ssim_line']:.4f} | {c['removed_energy']:.4f} |"
                  for name, c in row["clean_in"].items()]
        if "forgetting" in row:
            lines += ["", "| synthetic family | seed | noisy | start | adapted |", "|---|---|---|---|---|"]
            lines += [f"| {fam} | {r['seed']} | {r['noisy']:.4f} | {r['start']:.4f} | {r['adapted']:.4f} |"
                      for fam, rows in row["forgetting"].items() for r in rows]
        lines.append("")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cases", default="random,random+erratic", show_default=True,
              help="Comma-separated cases, each +-joined noise kinds: random, erratic, linear.")
@click.option("--snr", type=float, default=0.0, show_default=True, help="SNR of the random noise, dB.")
@click.option("--erratic-share", type=float, default=0.04, show_default=True, help="Share of noisy traces.")
@click.option("--erratic-gain", type=float, default=4.0, show_default=True, help="Their noise RMS / stack RMS.")
@click.option("--minutes", type=float, default=8.5, show_default=True, help="Training minutes per adaptation.")
@click.option("--steps", type=int, default=400, show_default=True, help="--steps of each adaptation.")
@click.option("--synthetic-share", type=float, default=0.25, show_default=True)
@click.option("--mask", default="blind-trace", show_default=True)
@click.option("--holdout", type=float, default=0.25, show_default=True, help="Share of the traces held out.")
@click.option("--crop", default=None, help="--crop of the adaptation, RxC [default: its own].")
@click.option("--adapted", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Score this adaptation's run directory (made on the same case, noise seed and line) instead of "
                   "adapting again (one case).")
@click.option("--init-from", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Start model [default: the shipped one].")
@click.option("--forgetting", type=int, default=1, show_default=True,
              help="Held-out synthetic volumes per family scored before/after (0: skip).")
@click.option("--device", default="auto", show_default=True)
@click.option("--removal-floor-coherence", type=float, default=None,
              help="Score both models with this --removal-floor-coherence (dB) [default: their cards'].")
@click.option("--seed", type=int, default=2026, show_default=True, help="Seed of the noise.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write results (+ .md).")
@one_line_errors
def main(**args: object) -> None:
    """Adapt the shipped model on a noisy field line and score it against the clean stack."""
    import sys

    from impeccable.models import DEFAULT_MODEL_DIR
    from impeccable.runtime.volumes import open_reader

    if not FIELD.is_file():
        raise InputError("the field line is missing", received=str(FIELD), expected="../shared/field/",
                         todo="run from the project's worktree beside ../shared")
    args["init_from"] = args["init_from"] or DEFAULT_MODEL_DIR
    reader = open_reader(FIELD, segy=SEGY)
    clean = reader.read()
    reader.close()
    rows = []
    with tempfile.TemporaryDirectory(prefix="adapt-bench-") as tmp:
        for case in str(args["cases"]).split(","):
            rows.append(run_case(case, args, clean, Path(tmp)))
            report = {"machine": platform.processor() or platform.machine(), "command": " ".join(sys.argv),
                      "args": {k: str(v) if isinstance(v, Path) else v for k, v in args.items()}, "cases": rows}
            click.echo(markdown({**report, "cases": rows[-1:]}))
            if args["json_path"]:  # after every case: a long run cut short keeps what it measured
                path = Path(args["json_path"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(report, indent=1, default=str) + "\n")
                path.with_suffix(".md").write_text(markdown(report))


if __name__ == "__main__":
    main()
