"""Whole-volume denoising: read -> normalize -> sections -> tiles -> batches -> engine (+ flip TTA) -> blend ->
average views -> scale -> write, with bounded memory and an atomic output (DESIGN §2-3).

Predictions accumulate in a float32 scratch memmap (canonical order, beside the output) so that views can be
averaged and the uint8 scale can use the whole prediction's range; a last pass scales and writes the output in
the input's format and orientation. A background thread prepares the next batch (read, normalize, tile)
while the engine works on the current one.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from impeccable.core.amplitude import VolumeStats, denormalize, normalize, to_uint8
from impeccable.core.errors import InputError, OutputError
from impeccable.runtime import tiling
from impeccable.runtime.config import VIEWS, DenoiseConfig
from impeccable.runtime.engines.base import Engine
from impeccable.runtime.volumes import VolumeReader, open_reader, open_writer

READ_CHUNK = 8  # inlines per read when scanning statistics or writing the output


@dataclass
class DenoiseReport:
    """What a run did and how long it took.

    Attributes:
        output: The written file.
        sections: Sections denoised (all views).
        images: Engine images (tiles x TTA).
        engine_s: Seconds inside engine calls.
        total_s: Wall seconds of the whole run.
        nonfinite: NaN/Inf samples replaced by 0.
        stats: The input's min/max.
        engine: Engine name and precision.
    """

    output: Path
    sections: int
    images: int
    engine_s: float
    total_s: float
    nonfinite: int
    stats: VolumeStats
    engine: str


def reader_stats(reader: VolumeReader, chunk: int = READ_CHUNK) -> VolumeStats:
    """Min/max (NaN/Inf read as 0) and non-finite count of a volume, read ``chunk`` inlines at a time."""
    vmin, vmax, bad = np.inf, -np.inf, 0
    for start in range(0, reader.shape[0], chunk):
        block = reader.read(inlines=slice(start, start + chunk))
        finite = np.isfinite(block)
        n_bad = int(block.size - np.count_nonzero(finite))
        if n_bad:
            bad += n_bad
            block = np.where(finite, block, 0)
        vmin, vmax = min(vmin, float(block.min())), max(vmax, float(block.max()))
    return VolumeStats(vmin, vmax, bad)


def _sections(reader: VolumeReader, view: str, start: int, stop: int) -> np.ndarray:
    """Sections ``start:stop`` of a view as ``(n, traces, samples)`` float32."""
    if view == "inline":
        return reader.read(inlines=slice(start, stop))
    return np.ascontiguousarray(reader.read(crosslines=slice(start, stop)).transpose(1, 0, 2))


def _prepare(reader: VolumeReader, view: str, stats: VolumeStats, window: tuple[int, int], batch: int,
             tta: bool) -> Iterator[tuple[int, int, np.ndarray, tiling.TilePlan]]:
    """Yield ``(start, stop, images, plan)`` per batch of sections: normalized tiles, flipped copies appended."""
    count = reader.shape[0] if view == "inline" else reader.shape[1]
    for start in range(0, count, batch):
        stop = min(start + batch, count)
        unit = normalize(_sections(reader, view, start, stop), stats)
        tiles, plan = tiling.split(unit, window)
        if tta:
            # Mirror the trace axis of the SECTION (then tile/pad), so padding stays at the end as in training.
            flipped, _ = tiling.split(np.ascontiguousarray(unit[:, ::-1, :]), window)
            tiles = np.concatenate([tiles, flipped])
        yield start, stop, tiles, plan


def _background(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run a generator in a thread, ``depth`` items ahead (numpy releases the GIL for most of the work)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop_flag = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                if stop_flag.is_set():
                    return
                q.put(item)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)
        q.put(done)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_flag.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _run_engine(engine: Engine, images: np.ndarray, max_images: int) -> tuple[np.ndarray, float]:
    """Engine over ``images`` in chunks of ``max_images``; returns predictions and seconds spent."""
    outs, spent = [], 0.0
    for start in range(0, images.shape[0], max_images):
        t0 = time.perf_counter()
        outs.append(engine(images[start:start + max_images]))
        spent += time.perf_counter() - t0
    return np.concatenate(outs) if len(outs) > 1 else outs[0], spent


def denoise_reader(reader: VolumeReader, engine: Engine, scratch: np.ndarray, config: DenoiseConfig,
                   stats: VolumeStats) -> tuple[int, int, float]:
    """Predict every section of the requested views into ``scratch`` (canonical float32, unit scale).

    Returns:
        ``(sections, images, engine_seconds)``.
    """
    views = ("inline", "crossline") if config.views == "both" else (config.views,)
    max_images = config.batch_size * (2 if config.tta else 1)
    total = sum(reader.shape[0] if v == "inline" else reader.shape[1] for v in views)
    sections = images = 0
    engine_s = 0.0
    with tqdm(total=total, unit="section", disable=not config.progress, desc="denoising") as bar:
        for view in views:
            stream = _prepare(reader, view, stats, engine.window, config.batch_size, config.tta)
            for start, stop, tiles, plan in _background(stream):
                preds, spent = _run_engine(engine, tiles, max(max_images, 1))
                engine_s += spent
                images += tiles.shape[0]
                per = plan.shape[0] * plan.tiles_per_section
                pred = tiling.merge(preds[:per], plan)
                if config.tta:
                    pred = 0.5 * (pred + tiling.merge(preds[per:], plan)[:, ::-1, :])
                if view == "inline":
                    target = (slice(start, stop), slice(None))
                else:
                    target = (slice(None), slice(start, stop))
                    pred = pred.transpose(1, 0, 2)
                if len(views) == 2 and view == "crossline":
                    scratch[target] = 0.5 * (scratch[target] + pred)
                else:
                    scratch[target] = pred
                sections += stop - start
                bar.update(stop - start)
    return sections, images, engine_s


def _check_output(output: Path, overwrite: bool, input_path: Path) -> None:
    if output.resolve() == input_path.resolve():
        raise OutputError("output would overwrite the input", received=str(output), expected="another path",
                          todo="pass -o with a new file name")
    if output.exists() and not overwrite:
        raise OutputError("output exists", received=str(output), expected="a new path",
                          todo="pass --overwrite to replace it, or -o another path")
    parent = output.parent
    if not parent.is_dir():
        raise OutputError("output directory does not exist", received=str(parent), expected="an existing directory",
                          todo="create it or pass -o elsewhere")
    if not os.access(parent, os.W_OK):
        raise OutputError("output directory is not writable", received=str(parent), expected="a writable directory",
                          todo="pass -o to a directory you can write")


def _write_output(reader: VolumeReader, scratch: np.ndarray, output: Path, scale: str, stats: VolumeStats) -> None:
    """Scale the scratch prediction and write it in the input's format/orientation, atomically."""
    if scale == "uint8":
        pmin = min(float(scratch[i:i + READ_CHUNK].min()) for i in range(0, scratch.shape[0], READ_CHUNK))
        pmax = max(float(scratch[i:i + READ_CHUNK].max()) for i in range(0, scratch.shape[0], READ_CHUNK))
    writer = open_writer(output, like=reader, dtype=np.uint8 if scale == "uint8" else np.float32)
    try:
        for start in range(0, scratch.shape[0], READ_CHUNK):
            block = np.asarray(scratch[start:start + READ_CHUNK])
            if scale == "input":
                block = denormalize(block, stats)
            elif scale == "uint8":
                block = to_uint8(block, pmin, pmax)
            writer.write(slice(start, start + block.shape[0]), block)
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def denoise_file(input_path: Path, output: Path, config: DenoiseConfig, engine: Engine | None = None) -> DenoiseReport:
    """Denoise a volume file into ``output`` (same format and orientation).

    Args:
        input_path: ``.npy``, ``.h5``/``.hdf5`` or SEG-Y volume.
        output: Output path (same extension as the input).
        config: Run settings.
        engine: An open engine to reuse [default: created from the config and closed at the end].

    Raises:
        ImpeccableError: Bad input, output or model; nothing is left at ``output`` then.
    """
    t0 = time.perf_counter()
    input_path, output = Path(input_path), Path(output)
    if config.views not in VIEWS:
        raise InputError("unknown views", received=config.views, expected=" / ".join(VIEWS), todo="pass --views inline")
    if config.batch_size < 1:
        raise InputError("batch size must be positive", received=config.batch_size, expected=">= 1",
                         todo="pass --batch-size 4")
    if input_path.suffix.lower() != output.suffix.lower():
        raise OutputError("output format differs from the input's", received=output.suffix,
                          expected=input_path.suffix, todo=f"name the output *{input_path.suffix}")
    reader = open_reader(input_path, time_axis=config.time_axis, dataset=config.dataset)
    _check_output(output, config.overwrite, input_path)
    fd, scratch_path = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".scratch.npy", dir=output.parent)
    os.close(fd)
    own_engine = engine is None
    try:
        stats = reader_stats(reader)
        stats.check_not_constant()
        if own_engine:
            from impeccable.runtime.engines import create_engine

            engine = create_engine(config.resolved_engine(), config.resolved_model(),
                                   batch_size=config.batch_size * (2 if config.tta else 1), **config.engine_options)
        scratch = np.lib.format.open_memmap(scratch_path, mode="w+", dtype=np.float32, shape=reader.shape)
        sections, images, engine_s = denoise_reader(reader, engine, scratch, config, stats)
        _write_output(reader, scratch, output, config.scale, stats)
        if config.preview is not None:
            _preview(reader, output, config, scratch, stats)
        name = f"{engine.name} {engine.precision}"
        del scratch
    finally:
        Path(scratch_path).unlink(missing_ok=True)
        if own_engine and engine is not None:
            engine.close()
        reader.close()
    return DenoiseReport(output, sections, images, engine_s, time.perf_counter() - t0, stats.nonfinite, stats, name)


def _preview(reader: VolumeReader, output: Path, config: DenoiseConfig, scratch: np.ndarray,
             stats: VolumeStats) -> None:
    """Noisy, denoised and difference of the middle inline, in the input's units."""
    from impeccable.data.preview import save_pair_preview

    mid = reader.shape[0] // 2
    noisy = np.nan_to_num(reader.read(inlines=slice(mid, mid + 1)), nan=0.0, posinf=0.0, neginf=0.0)
    denoised = denormalize(np.asarray(scratch[mid:mid + 1]), stats)
    save_pair_preview(config.preview, noisy=noisy, denoised=denoised, inline=0,
                      title=f"{output.name}: inline {mid}")
