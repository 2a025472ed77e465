"""Whole-volume denoising: read -> normalize -> sections -> tiles -> batches -> engine (+ flip TTA) -> blend ->
average views -> scale -> write, with bounded memory and an atomic output (DESIGN §2-3).

Flow of one run (:func:`denoise_file`):

1. Open the input lazily in canonical ``(inline, crossline, sample)`` order; check the output path; create the
   engine (model errors surface before the long scan).
2. Scan the volume by blocks of inlines for the min/max/mean of its finite samples (NaN/Inf counted, then
   filled with that mean before normalizing, see :mod:`impeccable.core.amplitude`; only the live traces of a
   reader with a ``live_mask``, e.g. an irregular SEG-Y survey, whose other traces are filled for the model
   and never written); a constant volume is refused.
3. For each view, sections ``vol[i, :, :]`` (inline) or ``vol[:, x, :]`` (crossline), each
   ``(traces, samples)``, are normalized, padded or tiled to the model window, and sent to the engine
   ``batch_size`` sections per call. With flip TTA the trace-mirrored copies ride in the SAME engine call, so
   a call carries ``2 * batch_size`` images: ``batch_size`` counts model windows before TTA, which is sections
   when they fit the window; a section tiled into ``k`` windows counts ``k`` (so ``batch_size // k`` sections
   per call, at least one, whose images go in calls of at most ``2 * batch_size``). Predictions are blended
   back, mirrored back and averaged.
4. With one inline view and the ``input`` or ``unit`` scale, each batch's prediction is scaled and written
   straight into the output. Otherwise (crossline sections, two views, or the ``uint8`` scale, which needs the
   whole prediction's min/max) predictions accumulate in a float32 scratch memmap (canonical order, a hidden
   temp file beside the output; ``views="both"`` averages the crossline pass into the inline pass), and a
   last pass scales it and writes the output by blocks of inlines.
5. The output is written in the input's format and orientation into a preallocated temporary file
   (:mod:`impeccable.core.atomic`) renamed into place at the end, never over a file that appeared meanwhile
   unless ``overwrite``; the input must be unchanged (size, modification time) by then. On any error or
   signal the temporary files are removed and nothing is left at the output path; temp files of dead runs
   beside the output are removed at the start.

Three stages overlap: a background thread prepares the next batch (read, normalize, tile, mirror), the
calling thread runs the engine, and another thread blends, scales and stores the previous batch's
predictions; numpy and the engines release the GIL for most of their work. Memory is bounded by a few
batches (one per stage) plus one block of inlines, never the volume: memory-mapped files drop their pages
after each chunk.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from impeccable.core.amplitude import VolumeStats, merge_stats, normalize, stats_part
from impeccable.core.atomic import AtomicFile, remove_stale_temps
from impeccable.core.calibration import AmplitudeFit
from impeccable.core.errors import InputError, OutputError
from impeccable.core.geometry import WINDOW
from impeccable.runtime import tiling
from impeccable.runtime.calibrate import fit_amplitudes, preview_section, write_output
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.engines.base import Engine
# The bound lives in runtime.memory (one function for every driver); its names stay importable from here.
from impeccable.runtime.memory import MEMORY_SHARE, bounded_batch, memory_budget, run_batch  # noqa: F401
from impeccable.runtime.volumes.npy import MappedVolume
from impeccable.runtime.volumes import (DIRECTORY_FORMATS, FileStamp, VolumeReader, fill_absent, live_mask,
                                        open_reader, open_writer)

#: Bytes of float32 samples per block when scanning statistics or writing the output (at least one inline).
BLOCK_BYTES = 32 << 20
#: Most sections per read or write of a view (see :func:`sections_per_slab`).
SLAB_SECTIONS = 8


@dataclass(frozen=True)
class DenoiseReport:
    """What a run did and how long it took.

    Attributes:
        output: The written file.
        sections: Sections denoised (all views).
        images: Engine images (tiles x TTA copies).
        engine_s: Seconds inside engine calls.
        total_s: Wall seconds of the whole run.
        load_s: Seconds spent creating the engine (0 when one was passed in), part of ``total_s``.
        nonfinite: NaN/Inf samples, filled with ``stats.fill_value`` (the finite mean) before normalizing;
            the output there holds the denoised value.
        stats: The input's min/max and non-finite count.
        engine: Engine name and precision.
        fit: The amplitude fit (:meth:`AmplitudeFit.as_dict`: gain, offset in the input's units, its share of
            the input's std, samples).
        qc: The QC figures (:meth:`impeccable.core.qc.QualityControl.report`).
        strength: The ``--strength`` used.
        batch_size: The batch the run used (``config.batch_size`` bounded, see :func:`bounded_batch`).
        batch_note: Why it differs from the one asked for ("" when it does not).
        stale_removed: Temp files of dead runs removed beside the output.
    """

    output: Path
    sections: int
    images: int
    engine_s: float
    total_s: float
    nonfinite: int
    stats: VolumeStats
    engine: str
    load_s: float = 0.0
    batch_size: int = 0
    batch_note: str = ""
    stale_removed: tuple[Path, ...] = ()
    fit: dict = field(default_factory=dict)
    qc: dict = field(default_factory=dict)
    strength: float = 1.0

    def as_dict(self) -> dict:
        """The report as JSON-ready data (``--report FILE``)."""
        return {"output": str(self.output), "engine": self.engine, "sections": self.sections, "images": self.images,
                "total_s": self.total_s, "engine_s": self.engine_s, "load_s": self.load_s,
                "sections_per_s": self.sections_per_s, "batch_size": self.batch_size, "input": {"min": self.stats.vmin, "max": self.stats.vmax,
                                                                 "nonfinite": self.nonfinite},
                "strength": self.strength, "amplitude_fit": self.fit, "qc": self.qc}

    @property
    def sections_per_s(self) -> float:
        """End-to-end throughput."""
        return self.sections / self.total_s if self.total_s > 0 else 0.0

    @property
    def pipeline_s(self) -> float:
        """Seconds of the run spent outside the engine's calls and its creation (reading, tiling, writing...)."""
        return max(0.0, self.total_s - self.engine_s - self.load_s)


def block_inlines(shape: tuple[int, int, int], budget: int | None = None) -> int:
    """Inlines per block so that a float32 block of an ``(inline, crossline, sample)`` volume fits ``budget`` bytes.

    Args:
        shape: The volume's canonical shape.
        budget: Bytes per block [default: :data:`BLOCK_BYTES`]; a block holds at least one inline.
    """
    budget = BLOCK_BYTES if budget is None else budget
    return max(1, budget // max(1, shape[1] * shape[2] * 4))


def reader_stats(reader: VolumeReader, chunk: int | None = None) -> VolumeStats:
    """Min/max/mean of the finite samples and non-finite count of a volume, a block of inlines at a time.

    Args:
        reader: The volume, canonical ``(inline, crossline, sample)``.
        chunk: Inlines per read [default: :func:`block_inlines`].
    """
    return merge_stats([reader_stats_part(reader, chunk)])


def reader_stats_part(reader: VolumeReader, chunk: int | None = None) -> dict:
    """:func:`reader_stats` of one part of a volume, to merge with others (:func:`~impeccable.core.amplitude.merge_stats`).

    The finite samples are summed per inline, over that inline's live traces only (absent and dead traces
    stay out of the statistics). Why per inline whatever the mask: a SEG-Y reader finds all-zero (dead)
    traces as it reads them, so its mask depends on what it has read so far; cutting by inline makes the
    float64 sums, hence the NaN fill (the finite mean), the same in one process and in a cluster whose
    workers each read a few slabs.
    """
    step = chunk or block_inlines(reader.shape)
    parts = []
    for start in range(0, reader.shape[0], step):
        block = reader.read(inlines=slice(start, min(start + step, reader.shape[0])))
        live = live_mask(reader)  # after the read, which finds all-zero traces
        if live is None:
            parts.append(stats_part(block, chunk=max(1, block.shape[0])))
        else:  # ``(1, n_live, sample)`` per inline
            parts += [stats_part(row[live[start + i]][None]) for i, row in enumerate(block)]
    return {"vmin": min((p["vmin"] for p in parts), default=np.inf),
            "vmax": max((p["vmax"] for p in parts), default=-np.inf),
            "nonfinite": sum(p["nonfinite"] for p in parts), "count": sum(p["count"] for p in parts),
            "sums": [x for p in parts for x in p["sums"]]}


def _sections(reader: VolumeReader, view: str, start: int, stop: int) -> np.ndarray:
    """Sections ``start:stop`` of a view as ``(n, traces, samples)`` float32, non-live traces filled."""
    if view == "inline":
        raw = reader.read(inlines=slice(start, stop))
    else:
        raw = np.ascontiguousarray(reader.read(crosslines=slice(start, stop)).transpose(1, 0, 2))
    live = live_mask(reader)
    if live is not None:
        live = live[start:stop] if view == "inline" else live[:, start:stop].T
        fill_absent(raw, live, getattr(reader, "fill", "mirror"))
    return raw


def sections_per_batch(reader: VolumeReader, view: str, window: tuple[int, int], batch_size: int) -> int:
    """Sections per engine batch: ``batch_size`` windows' worth, a tiled section counting as its tiles (>= 1)."""
    traces = reader.shape[1] if view == "inline" else reader.shape[0]
    tiles = tiling.plan_tiles((1, traces, reader.shape[2]), window).tiles_per_section
    return max(1, batch_size // tiles)


def sections_per_slab(reader: VolumeReader, view: str) -> int:
    """Sections per file access: up to :data:`SLAB_SECTIONS`, within :data:`BLOCK_BYTES` (>= 1).

    Reading or writing one section of the slow direction (a crossline of a time-last file) touches a sliver
    of every part of the file; doing it for a few sections at once costs about the same, so reads and
    writes go by slabs of sections even when an engine batch holds fewer.
    """
    traces = reader.shape[1] if view == "inline" else reader.shape[0]
    return max(1, min(SLAB_SECTIONS, BLOCK_BYTES // max(1, traces * reader.shape[2] * 4)))


def _prepare(reader: VolumeReader, view: str, stats: VolumeStats, window: tuple[int, int], batch: int,
             tta: bool) -> Iterator[tuple[int, int, np.ndarray, tiling.TilePlan]]:
    """Yield ``(start, stop, images, plan)`` per batch of sections: normalized tiles, then their mirrored copies."""
    count = reader.shape[0] if view == "inline" else reader.shape[1]
    step = sections_per_batch(reader, view, window, batch)
    slab = step * -(-sections_per_slab(reader, view) // step)  # whole batches per slab: no partial ones inside
    for slab_start in range(0, count, slab):
        raw = _sections(reader, view, slab_start, min(slab_start + slab, count))
        for start in range(slab_start, slab_start + raw.shape[0], step):
            stop = min(start + step, slab_start + raw.shape[0])
            unit = normalize(raw[start - slab_start:stop - slab_start], stats)
            tiles, plan = tiling.split(unit, window, mirror=tta)
            yield start, stop, tiles, plan


class _Bands:
    """Gathers consecutive predictions of a view into slabs of at least ``slab`` sections before storing them.

    One strided write per slab instead of one per (possibly one-section) batch: see :func:`sections_per_slab`.
    """

    def __init__(self, store, slab: dict[str, int]):
        self.store, self.slab = store, slab
        self.parts: list[np.ndarray] = []
        self.view, self.start, self.stop = "", 0, 0

    def put(self, view: str, start: int, stop: int, pred: np.ndarray) -> None:
        if self.parts and (view != self.view or start != self.stop):
            self.flush()
        if not self.parts:
            self.view, self.start = view, start
        self.parts.append(pred)
        self.stop = stop
        if self.stop - self.start >= self.slab[view]:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            pred = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
            self.parts = []
            self.store.put(self.view, self.start, self.stop, pred)


_DONE = object()


def _block_signals() -> None:
    """Keep INT/TERM/HUP off this helper thread, so the kernel hands them to the main thread.

    Python runs signal handlers only in the main thread; a signal the kernel delivered to a helper would wait
    until the main thread's current wait or call ended.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {s for s in (signal.SIGINT, signal.SIGTERM,
                                                              getattr(signal, "SIGHUP", None)) if s is not None})


def _background(iterator: Iterator, depth: int = 1) -> Iterator:
    """Run a generator in a thread, up to ``depth`` items ahead; its exceptions re-raise in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        _block_signals()
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put(exc)
        q.put(_DONE)

    thread = threading.Thread(target=produce, name="impeccable-prepare", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # The consumer stopped (finished, failed or interrupted): unblock the producer and wait for it, so
        # that it never reads a file the caller is about to close.
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class _Worker:
    """One background thread running submitted calls in order, at most ``depth`` behind the submitter.

    The first failure is re-raised in the submitting thread (at its next :meth:`submit` or at :meth:`close`);
    calls submitted after it are skipped.
    """

    def __init__(self, depth: int = 1):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="impeccable-store", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        _block_signals()
        while (call := self.queue.get()) is not _DONE:
            if self.error is None:
                try:
                    call()
                except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
                    self.error = exc

    def submit(self, call) -> None:
        """Queue ``call()`` (blocks while ``depth`` calls are pending)."""
        if self.error is not None:
            raise self.error
        self.queue.put(call)

    def close(self, abandon: bool = False) -> None:
        """Wait for the pending calls (or skip them with ``abandon``); re-raise the first failure."""
        if abandon and self.error is None:
            self.error = _Abandoned()
        self.queue.put(_DONE)
        self.thread.join()
        if self.error is not None and not isinstance(self.error, _Abandoned):
            raise self.error


class _Abandoned(Exception):
    """Marks a worker whose pending calls are skipped because the run already failed."""


def images_per_call(engine: Engine, batch_size: int, tta: bool) -> int:
    """Images one engine call carries: ``batch_size`` sections, twice that with TTA, within the engine's limit."""
    images = batch_size * (2 if tta else 1)
    limit = getattr(engine, "max_batch", None)
    return max(1, min(images, limit) if limit else images)


#: ``id()`` of the engines with a call in flight in an :class:`_EngineThread` (abandoned when a signal ended the
#: run): closing one would free what the backend is still using, so :func:`denoise_file` leaves it to the exit.
_BUSY_ENGINES: set[int] = set()


class _EngineThread:
    """Engine calls in a daemon thread, so that the calling thread waits interruptibly.

    A signal (Ctrl-C, SIGTERM, SIGHUP) runs its Python handler only in the main thread and only between
    bytecodes; waiting on an event, rather than inside the backend's call, lets it act at once. The call in
    flight is then abandoned (the thread is a daemon: it does not hold up the process's exit).
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.calls: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="impeccable-engine", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        _block_signals()
        while (job := self.calls.get()) is not _DONE:
            images, slot, done = job
            try:
                slot.append(self.engine(images))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                slot.append(exc)
            finally:
                _BUSY_ENGINES.discard(id(self.engine))
                done.set()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        slot: list = []
        done = threading.Event()
        _BUSY_ENGINES.add(id(self.engine))
        self.calls.put((images, slot, done))
        done.wait()
        if isinstance(slot[0], BaseException):
            raise slot[0]
        return slot[0]

    def close(self) -> None:
        self.calls.put(_DONE)


def _run_engine(engine, images: np.ndarray, per_call: int) -> tuple[np.ndarray, float]:
    """The engine over ``images`` in calls of at most ``per_call`` images; predictions and seconds inside it."""
    outs, spent = [], 0.0
    for start in range(0, images.shape[0], per_call):
        t0 = time.perf_counter()
        outs.append(engine(images[start:start + per_call]))
        spent += time.perf_counter() - t0
    return (np.concatenate(outs) if len(outs) > 1 else outs[0]), spent


class _ScratchStore:
    """Unit predictions in a float32 scratch memmap (canonical order); the output is written from it at the end.

    Every voxel's final value is known only after every section was predicted and the amplitude fit was made
    from all of them (two views are averaged, the ``uint8`` scale needs the field's min/max, the writers take
    inlines while crossline sections arrive), so predictions go to this scratch file first.
    """

    def __init__(self, output: Path, shape: tuple[int, int, int], views: tuple[str, ...]):
        self.file, array = _scratch(output, shape)
        self.path = self.file.tmp
        self.mapped = MappedVolume(array, time_axis=2)
        self.views = views
        self.fit: AmplitudeFit | None = None
        self.qc: dict = {}

    def put(self, view: str, start: int, stop: int, pred: np.ndarray) -> None:
        if view == "inline":
            target = (slice(start, stop), slice(None), slice(None))
        else:
            target = (slice(None), slice(start, stop), slice(None))
            pred = pred.transpose(1, 0, 2)
        if len(self.views) == 2 and view == "crossline":
            pred = np.add(self.mapped.read(target), pred)
            pred *= np.float32(0.5)
        self.mapped.write(target, pred)

    def inlines(self, start: int, stop: int) -> np.ndarray:
        """Unit predictions of inlines ``start:stop``, ``(inline, crossline, sample)`` float32."""
        return self.mapped.read((slice(start, stop), slice(None), slice(None)))

    def finish(self, reader: VolumeReader, output: Path, config: DenoiseConfig, stats: VolumeStats) -> None:
        """Fit the amplitudes, scale, QC and write the output, draw the preview, commit."""
        step = block_inlines(self.mapped.shape)
        self.fit, unit_range = fit_amplitudes(reader, self.inlines, stats, config.strength, step)
        writer = open_writer(output, like=reader, dtype=np.uint8 if config.scale == "uint8" else np.float32,
                             overwrite=config.overwrite)
        try:
            mid = preview_section(reader.shape)
            self.qc, kept = write_output(
                reader, self.inlines, lambda start, stop, block: writer.write(slice(start, stop), block),
                self.fit, stats, config.scale, config.strength, unit_range, step,
                keep=mid if config.preview is not None else None)
            _commit(writer, reader, output, config, kept, mid)
        except BaseException:
            writer.abort()
            raise

    def discard(self) -> None:
        self.mapped = None
        self.file.abort()


def _commit(writer, reader: VolumeReader, output: Path, config: DenoiseConfig, kept: np.ndarray | None,
            mid: tuple[str, int]) -> None:
    """Draw the preview (``kept``: section ``mid`` of the output in the input's units), then commit the output.

    The preview goes first so that a failing preview leaves no output; a failing commit removes the preview.
    The input is checked first of all: one that changed during the run leaves nothing.
    """
    _check_input_unchanged(reader)
    if config.preview is None:
        writer.commit()
        return
    _preview(reader, output, config, kept, mid)
    try:
        writer.commit()
    except BaseException:
        Path(config.preview).unlink(missing_ok=True)
        raise


def _check_input_unchanged(reader: VolumeReader) -> None:
    """Raise InputError if the input's size, modification time (HDF5: dataset shape) differ from those at open."""
    check = getattr(reader, "check_unchanged", None)
    if check is not None:
        check()
    elif getattr(reader, "stamp", None) is not None:
        reader.stamp.check(reader.path)


def predict_volume(reader: VolumeReader, engine: Engine, store, config: DenoiseConfig,
                   stats: VolumeStats) -> tuple[int, int, float]:
    """Predict every section of the requested views and hand each batch to ``store.put``.

    Three stages overlap: a thread prepares batches (read, normalize, tile, mirror), this thread runs the
    engine, another thread blends the predictions and stores them. Engines return a fresh array per call
    (all of ours do), so a prediction may be stored while the engine runs the next batch.

    Args:
        reader: The input, canonical ``(inline, crossline, sample)``.
        engine: An open engine; its ``window`` sets the tile size.
        store: Receives ``put(view, start, stop, sections)``: unit-scale ``(n, traces, samples)`` float32
            predictions of sections ``start:stop`` of ``view``, in order.
        config: Views, TTA, batch size, progress bar.
        stats: The input's statistics (normalization).

    Returns:
        ``(sections, images, engine_seconds)``.
    """
    views = ("inline", "crossline") if config.views == "both" else (config.views,)
    per_call = images_per_call(engine, config.batch_size, config.tta)
    total = sum(reader.shape[0] if v == "inline" else reader.shape[1] for v in views)
    sections = images = 0
    engine_s = 0.0
    bands = _Bands(store, {view: sections_per_slab(reader, view) for view in views})
    with tqdm(total=total, unit="section", disable=not config.progress, desc="denoising", leave=False) as bar:
        worker = _Worker()
        call = _EngineThread(engine)

        def finish(view: str, start: int, stop: int, preds: np.ndarray, plan: tiling.TilePlan) -> None:
            bands.put(view, start, stop, tiling.blend(preds, plan, config.tta))
            bar.update(stop - start)

        try:
            for view in views:
                stream = _prepare(reader, view, stats, tuple(engine.window), config.batch_size, config.tta)
                for start, stop, tiles, plan in _background(stream):
                    preds, spent = _run_engine(call, tiles, per_call)
                    engine_s += spent
                    images += tiles.shape[0]
                    sections += stop - start
                    worker.submit(functools.partial(finish, view, start, stop, preds, plan))
                worker.submit(bands.flush)
        except BaseException:
            worker.close(abandon=True)
            raise
        finally:
            call.close()
        worker.close()
    return sections, images, engine_s


def _check_output(output: Path, overwrite: bool, input_path: Path) -> None:
    if output.resolve() == input_path.resolve():
        raise OutputError("output would overwrite the input", received=str(output), expected="another path",
                          todo="pass -o with a new file name")
    if output.is_dir() and output.suffix.lower() not in DIRECTORY_FORMATS:  # a .zarr output is a directory
        raise OutputError("output is a directory", received=str(output), expected="a file path",
                          todo=f"pass -o {output / (input_path.stem + '.denoised' + input_path.suffix)}")
    if os.path.lexists(output) and not overwrite:  # a dangling symlink is an existing output too
        raise OutputError("output exists", received=str(output), expected="a new path",
                          todo="pass --overwrite to replace it, or -o another path")
    if not output.parent.is_dir():
        raise OutputError("output directory does not exist", received=str(output.parent),
                          expected="an existing directory", todo="create it or pass -o elsewhere")
    try:  # the one reliable test (permission bits say nothing for root or read-only mounts)
        AtomicFile(output, tag="probe").abort()
    except OutputError as exc:
        raise OutputError("output directory is not writable", received=f"{output.parent} ({exc.received})",
                          expected="a writable directory", todo="pass -o to a directory you can write") from exc


def _scratch(output: Path, shape: tuple[int, int, int]) -> tuple[AtomicFile, np.ndarray]:
    """A float32 ``shape`` memmap in a hidden temp file beside ``output``, preallocated (never committed)."""
    file = AtomicFile(output, tag="scratch")
    try:
        array = np.lib.format.open_memmap(file.tmp, mode="w+", dtype=np.float32, shape=shape)
        # Preallocated: a sparse map on a full disk raises SIGBUS at the first page without room.
        file.preallocate(os.path.getsize(file.tmp))
        return file, array
    except OSError as exc:
        file.abort()
        raise OutputError("cannot create the scratch file beside the output",
                          received=f"{file.path.parent} ({exc.strerror or exc})",
                          expected=f"room for {np.prod(shape) * 4 / 1e9:.2f} GB", todo="free disk space") from exc
    except BaseException:
        file.abort()
        raise


def _check_views(config: DenoiseConfig, available: tuple[str, ...] | None) -> None:
    """Refuse a view the input's geometry lacks (2-D lines have inline sections only)."""
    wanted = ("inline", "crossline") if config.views == "both" else (config.views,)
    if available is not None and not set(wanted) <= set(available):
        raise InputError("the input has no crossline sections: 2-D lines", received=f"--views {config.views}",
                         expected=" / ".join(available), todo="pass --views inline for 2-D lines")


def denoise_file(input_path: str | Path, output: str | Path, config: DenoiseConfig,
                 engine: Engine | None = None) -> DenoiseReport:
    """Denoise a volume file into ``output``, in the input's format, orientation and (by default) units.

    Args:
        input_path: ``.npy``, ``.h5``/``.hdf5`` or SEG-Y volume.
        output: Output path, with the input's extension.
        config: Run settings.
        engine: An open engine to use [default: created from the config and closed at the end].

    Returns:
        What was done and how long it took.

    Raises:
        ImpeccableError: Bad input, output, model or engine; nothing is left at ``output`` then.
    """
    t0 = time.perf_counter()
    input_path, output = Path(input_path), Path(output)
    if output.is_dir():
        _check_output(output, config.overwrite, input_path)
    if input_path.suffix.lower() != output.suffix.lower():
        raise OutputError("output format differs from the input's", received=output.suffix or output.name,
                          expected=input_path.suffix, todo=f"name the output *{input_path.suffix}")
    reader = open_reader(input_path, time_axis=config.time_axis, dataset=config.dataset, segy=config.segy_options())
    if getattr(reader, "stamp", None) is None and not hasattr(reader, "check_unchanged"):
        reader.stamp = FileStamp.of(input_path)  # formats without their own check (SEG-Y): size and mtime
    own_engine = engine is None
    store = None
    try:
        _check_views(config, getattr(reader, "views", None))
        if min(reader.shape) < 1:
            raise InputError("volume is empty", received=f"canonical shape {tuple(reader.shape)}",
                             expected="at least one sample on every axis", todo="check the file")
        _check_output(output, config.overwrite, input_path)
        stale = tuple(remove_stale_temps(output.parent))
        batch, batch_note = run_batch(config, tuple(reader.shape), _window(config, engine),
                                      None if engine is None else getattr(engine, "name", "external"),
                                      getattr(engine, "precision", None),
                                      device=getattr(engine, "device", None))
        if batch != config.batch_size:
            config = dataclasses.replace(config, batch_size=batch)
        load_s = 0.0
        if own_engine:
            from impeccable.runtime.engines import create_engine

            t_load = time.perf_counter()
            engine = create_engine(config.resolved_engine(), config.resolved_model(),
                                   batch_size=config.batch_size * (2 if config.tta else 1), **config.engine_options)
            load_s = time.perf_counter() - t_load
        stats = reader_stats(reader)
        stats.check_not_constant()
        store = _ScratchStore(output, tuple(reader.shape),
                              ("inline", "crossline") if config.views == "both" else (config.views,))
        sections, images, engine_s = predict_volume(reader, engine, store, config, stats)
        store.finish(reader, output, config, stats)
        name = f"{engine.name} {engine.precision}"
    except OSError as exc:  # disk full, file vanished... as one line (temp files are removed below)
        raise OutputError("I/O failed while denoising", received=f"{exc.strerror or exc}: {exc.filename or ''}",
                          expected="a readable input, and room for the output beside it",
                          todo="check the files and the free disk space") from exc
    finally:
        if store is not None:
            store.discard()  # after a commit: only the scratch file goes
        if own_engine and engine is not None and id(engine) not in _BUSY_ENGINES:
            engine.close()
        reader.close()
    return DenoiseReport(output, sections, images, engine_s, time.perf_counter() - t0, stats.nonfinite, stats, name,
                         load_s, batch, batch_note, stale, fit=store.fit.as_dict(stats), qc=store.qc,
                         strength=config.strength)


def _window(config: DenoiseConfig, engine: Engine | None) -> tuple[int, int]:
    """The model window before the engine exists (it is created for the bounded batch): the card's, else 320 x 1280."""
    if engine is not None:
        return tuple(engine.window)
    from impeccable.core.card import read_card, window_of

    model = config.resolved_model()
    try:
        return tuple(window_of(read_card(model if model.is_dir() else model.parent)))
    except Exception:  # noqa: BLE001 - no card (a bare .onnx/.plan): the engine reports model errors itself
        return WINDOW


def _preview(reader: VolumeReader, output: Path, config: DenoiseConfig, denoised: np.ndarray,
             mid: tuple[str, int]) -> None:
    """Input, output, removed part, local similarity and spectra of section ``mid``, in the input's units."""
    from impeccable.data.preview import save_run_preview

    save_run_preview(config.preview, reader, mid, denoised, title=output.name)
