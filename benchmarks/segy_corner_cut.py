"""How much absent traces bias the live traces next to them: a SEG-Y cube with a corner cut away, against the full cube.

    python -m impeccable.benchmarks.segy_corner_cut --model models/unetpp-v2s-synth --engine openvino \
        --shape 12,96,256 --fills mirror,zero

A synthetic noisy cube (``impeccable.data.synth``) is written twice as SEG-Y: whole, and without a corner
(the first ``--cut`` share of the inlines and crosslines). Both go through the pipeline (inline sections,
flip TTA); the denoised traces the cut file keeps are compared with the same traces of the full cube, in
the input's units, as a share of the full cube's amplitude range, by the crossline distance of each trace
from the nearest absent trace of its inline; once with the cut file's own min/max (what a user gets), once
with the full cube's (the fill's effect alone). ``--tiny`` uses a tiny random UNet++ (torch engine) instead.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import numpy as np

from impeccable.core.cli import one_line_errors, parse_shape


def _denoised(path: Path, engine, fill: str, batch: int, stats=None) -> tuple[np.ndarray, object]:
    """The denoised cube in the input's units; ``stats`` overrides the file's own min/max (to isolate the fill)."""
    from impeccable.core.amplitude import denormalize
    from impeccable.runtime.config import DenoiseConfig
    from impeccable.runtime.passes import reader_stats
    from impeccable.runtime.predict import predict_volume
    from impeccable.runtime.stores import array_store
    from impeccable.runtime.volumes.segy import SegyReader

    with SegyReader(path) as reader:
        reader.fill = fill
        stats = reader_stats(reader) if stats is None else stats
        store = array_store(reader.shape, ("inline",))
        predict_volume(reader, engine, store, DenoiseConfig(tta=True, batch_size=batch, progress=False), stats)
    return denormalize(store.target.array, stats), stats


def _tiny_model(root: Path) -> Path:
    import torch

    from impeccable.core.card import new_card
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(0)
    card = new_card({"encoder_name": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}, input_size=(64, 128),
                    name="tiny-random")
    save_model_dir(build_model(card), card, root / "tiny")
    return root / "tiny"


def _distance_to_gap(present: np.ndarray) -> np.ndarray:
    """``(inline, crossline)``: crossline distance of each cell from the nearest absent cell of its inline (or inf)."""
    n = present.shape[1]
    out = np.full(present.shape, np.inf)
    for i, row in enumerate(present):
        gaps = np.flatnonzero(~row)
        if gaps.size:
            out[i] = np.abs(np.arange(n)[:, None] - gaps[None, :]).min(axis=1)
    return out


def corner_cut(model: Path, engine_name: str, shape: tuple[int, int, int], cut: float, fills: list[str], seed: int,
               batch: int, precision: str | None) -> dict:
    """Denoise the full and the cut cube; the differences on the kept traces per fill, by distance from the cut."""
    from impeccable.data.synth import synthesize_pair
    from impeccable.runtime.engines import create_engine
    from impeccable.runtime.volumes.segy import create_segy

    _, noisy = synthesize_pair(seed, shape)
    present = np.ones(shape[:2], dtype=bool)
    present[:int(round(cut * shape[0])), :int(round(cut * shape[1]))] = False
    with tempfile.TemporaryDirectory() as tmp:
        full_path = create_segy(Path(tmp) / "full.sgy", noisy)
        cut_path = Path(tmp) / "cut.sgy"
        _write_cut(cut_path, full_path, present)
        options = {"precision": precision} if precision else {}
        with create_engine(engine_name, model, batch_size=2 * batch, **options) as engine:
            full, full_stats = _denoised(full_path, engine, "mirror", batch)
            results = {}
            for fill in fills:
                got, stats = _denoised(cut_path, engine, fill, batch)
                results[fill] = _compare(got, full, noisy, present, full_stats, stats)
                if (stats.vmin, stats.vmax) != (full_stats.vmin, full_stats.vmax):
                    # The cut removed the volume's extreme samples, which rescales every trace a little; with
                    # the full cube's min/max the difference is the fill's alone.
                    got, _ = _denoised(cut_path, engine, fill, batch, stats=full_stats)
                    results[f"{fill}, full cube's min/max"] = _compare(got, full, noisy, present, full_stats,
                                                                       full_stats)
    return {"model": str(model), "engine": engine_name, "shape": list(shape), "cut": cut, "seed": seed,
            "kept_traces": int(present.sum()), "absent_traces": int((~present).sum()), "fills": results}


def _write_cut(path: Path, full_path: Path, present: np.ndarray) -> None:
    """A copy of ``full_path`` holding only the ``present`` traces, headers and order kept."""
    import segyio

    with segyio.open(full_path, ignore_geometry=True) as src:
        keep = np.flatnonzero(present.ravel())  # the full file is inline-sorted: trace = i * n_xl + x
        spec = segyio.spec()
        spec.format, spec.samples, spec.tracecount = int(src.format), src.samples, keep.size
        with segyio.create(path, spec) as dst:
            dst.text[0] = src.text[0]
            dst.bin = src.bin
            for k, t in enumerate(keep):
                dst.header[k] = src.header[int(t)]
                dst.trace[k] = src.trace[int(t)]


def _compare(got: np.ndarray, full: np.ndarray, noisy: np.ndarray, present: np.ndarray, full_stats, stats) -> dict:
    """Differences as shares of the full cube's range; ``removed_rms``: the RMS of what the full cube's denoising
    removed (noisy - denoised) on the kept traces, the scale the differences compare with."""
    span = full_stats.vmax - full_stats.vmin
    err = np.abs(got - full)[present] / span  # (kept traces, sample)
    removed = (noisy - full)[present] / span
    per_trace = err.max(axis=1)
    dist = _distance_to_gap(present)[present]
    bands = {"1": dist == 1, "2-4": (dist >= 2) & (dist <= 4), "5-16": (dist >= 5) & (dist <= 16),
             ">16": (dist > 16) & np.isfinite(dist), "no gap in inline": ~np.isfinite(dist)}
    by_band = {name: {"traces": int(sel.sum()), "max": float(per_trace[sel].max()) if sel.any() else None,
                      "mean": float(err[sel].mean()) if sel.any() else None} for name, sel in bands.items()}
    return {"max": float(err.max()), "mean": float(err.mean()), "p99": float(np.quantile(err, 0.99)),
            "rms": float(np.sqrt(np.mean(err ** 2))), "removed_rms": float(np.sqrt(np.mean(removed ** 2))),
            "stats_min_max": [stats.vmin, stats.vmax], "full_min_max": [full_stats.vmin, full_stats.vmax],
            "by_distance": by_band}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Model directory [default: --tiny].")
@click.option("--engine", "engine_name", default="onnxruntime", show_default=True, help="Engine name.")
@click.option("--precision", default=None, help="Engine precision.")
@click.option("--tiny", is_flag=True, help="A tiny random UNet++ (64 x 128 window) with the torch engine.")
@click.option("--shape", default="12,96,256", show_default=True, help="inline,crossline,sample of the cube.")
@click.option("--cut", type=float, default=0.4, show_default=True, help="Share of inlines and crosslines cut away.")
@click.option("--fills", default="mirror,zero", show_default=True, help="Fills to compare.")
@click.option("--seed", type=int, default=900001, show_default=True, help="Synthetic volume seed.")
@click.option("--batch-size", "batch", type=int, default=4, show_default=True, help="Sections per engine call.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the JSON here.")
@one_line_errors
def main(model: Path | None, engine_name: str, precision: str | None, tiny: bool, shape: str, cut: float, fills: str,
         seed: int, batch: int, json_path: Path | None) -> None:
    """Corner-cut bias of the absent-trace fill (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        if tiny or model is None:
            model, engine_name = _tiny_model(Path(tmp)), "torch"
        report = corner_cut(model, engine_name, parse_shape(shape), cut, fills.split(","), seed, batch, precision)
    text = json.dumps(report, indent=1)
    if json_path:
        json_path.write_text(text + "\n")
    click.echo(text)


if __name__ == "__main__":
    main()
