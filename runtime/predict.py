"""The predict pass: sections of a view -> model tiles -> engine (+ flip TTA) -> sections -> a prediction store.

For each view, sections ``vol[i, :, :]`` (inline) or ``vol[:, x, :]`` (crossline), each ``(traces, samples)``,
are read by slabs (non-live traces filled), turned into model tiles by :class:`ModelTiles` (normalize, pad or
tile to the model window, mirror for TTA) and sent to the engine ``batch_size`` windows per call; predictions
come back through the same :class:`ModelTiles` (blend, mirror back, average) and go to the store
(:mod:`impeccable.runtime.stores`) by slabs. With flip TTA the trace-mirrored copies ride in the SAME engine
call, so a call carries ``2 * batch_size`` images: ``batch_size`` counts model windows before TTA, which is
sections when they fit the window; a section tiled into ``k`` windows counts ``k`` (so ``batch_size // k``
sections per call, at least one, whose images go in calls of at most ``2 * batch_size``).

Every driver runs this pass through :func:`predict_volume`: one process over the whole volume, a cluster task or
a dask task over a slab of whole sections (:class:`~impeccable.runtime.volumes.SubVolume`); so a change to how
sections become model input (:class:`ModelTiles`) reaches all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from impeccable.core import tiling
from impeccable.core.amplitude import MINMAX, VolumeStats
from impeccable.core.model_io import ModelIO
from impeccable.core.resample import Resampling
from impeccable.runtime.batching import images_per_call, section_count, sections_per_batch, sections_per_slab
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.threads import EngineThread, Worker, background
from impeccable.runtime.volumes import VolumeReader, fill_absent, live_mask


def default_io(window: tuple[int, int]) -> ModelIO:
    """The contract of a model without a card (a bare engine): min-max scaling, zero padding, the default interval."""
    return ModelIO(tuple(window), MINMAX)


def model_io(model, window: tuple[int, int] | None = None, removal_floor: float | str | None = None,
             removal_floor_coherence: float | None = None) -> ModelIO:
    """A model's input contract from its card (:meth:`~impeccable.core.model_io.ModelIO.from_card`).

    Args:
        model: Model directory, ``.onnx`` or ``.plan`` (its directory's card), or None (no card).
        window: The engine's window, which wins over the card's [default: the card's, else 320 x 1280].
        removal_floor: The run's ``--removal-floor`` (:attr:`DenoiseConfig.removal_floor`) [None: the card's].
        removal_floor_coherence: The run's ``--removal-floor-coherence`` [None: the card's].
    """
    from impeccable.core.card import read_card
    from impeccable.core.geometry import WINDOW

    io = None
    if model is not None:
        from pathlib import Path

        model = Path(model)
        try:
            io = ModelIO.from_card(read_card(model if model.is_dir() else model.parent))
        except Exception:  # noqa: BLE001 - no card (a bare .onnx/.plan): the engine reports model errors itself
            io = None
    if io is None:
        io = default_io(window or WINDOW)
    elif window is not None:
        io = io.with_window(window)
    return io.with_removal_floor(removal_floor, removal_floor_coherence)


@dataclass(frozen=True)
class Sampling:
    """The data's sample interval in a run, where it came from, and the model's.

    Attributes:
        data_ms: Milliseconds between the data's samples (metres for depth), None when unknown.
        model_ms: The model's interval (its card).
        source: ``option`` (``--sample-interval``), ``file`` (headers, attributes, coordinates), ``unknown``, or
            ``depth`` (a depth volume's interval in metres, not compared with a model trained in time).
    """

    data_ms: float | None
    model_ms: float
    source: str

    @classmethod
    def of(cls, option: float | None, reader, io: ModelIO) -> Sampling:
        """``--sample-interval`` if given, else what the reader found (a depth volume's is not used)."""
        if option is not None:
            return cls(float(option), io.interval_ms, "option")
        found = getattr(reader, "sample_interval", None)
        if found is None:
            return cls(None, io.interval_ms, "unknown")
        if getattr(reader, "depth", False):
            return cls(None, io.interval_ms, "depth")
        return cls(float(found), io.interval_ms, "file")

    @property
    def resampling(self) -> Resampling | None:
        """From the data's interval to the model's; None when unknown or the same."""
        return Resampling.between(self.data_ms, self.model_ms)

    def as_dict(self) -> dict:
        return {"data_ms": self.data_ms, "model_ms": self.model_ms, "source": self.source,
                "resampled": self.resampling is not None}


@dataclass(frozen=True)
class ModelTiles:
    """How sections become the model's input and its output sections again: the one place of that math.

    Attributes:
        io: The model's input contract (window, scaling, padding, interval).
        stats: The input volume's statistics (scaling).
        tta: Flip TTA: mirrored copies ride with the plain tiles and are averaged back.
        resampling: From the data's sample interval to the model's (None: none needed or unknown).
    """

    io: ModelIO
    stats: VolumeStats
    tta: bool
    resampling: Resampling | None = None

    @property
    def window(self) -> tuple[int, int]:
        return self.io.window

    def encode(self, sections: np.ndarray) -> tuple[np.ndarray, tiling.TilePlan]:
        """Model tiles ``(k, 1, rows, cols)`` float32 of ``(n, traces, samples)`` sections in the input's units."""
        return tiling.split(self.io.normalize(sections, self.stats), self.io.window, mirror=self.tta,
                            pad_value=self.io.pad_value, resampling=self.resampling, guard=self.io.output_guard,
                            gain=self.io.section_gain)

    def decode(self, predictions: np.ndarray, plan: tiling.TilePlan) -> np.ndarray:
        """``(n, traces, samples)`` float32 sections in the model's units, at the data's interval, from the
        predictions of :meth:`encode`'s tiles."""
        return tiling.blend(predictions, plan, self.tta)


def read_sections(reader: VolumeReader, view: str, start: int, stop: int) -> np.ndarray:
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


def _prepare(reader: VolumeReader, view: str, tiles: ModelTiles, batch: int
             ) -> Iterator[tuple[int, int, np.ndarray, tiling.TilePlan]]:
    """Yield ``(start, stop, images, plan)`` per batch of sections: their model tiles, then the mirrored copies."""
    count = section_count(reader.shape, view)
    step = sections_per_batch(reader, view, tiles.window, batch, tiles.resampling)
    slab = step * -(-sections_per_slab(reader, view) // step)  # whole batches per slab: no partial ones inside
    for slab_start in range(0, count, slab):
        raw = read_sections(reader, view, slab_start, min(slab_start + slab, count))
        for start in range(slab_start, slab_start + raw.shape[0], step):
            stop = min(start + step, slab_start + raw.shape[0])
            yield (start, stop, *tiles.encode(raw[start - slab_start:stop - slab_start]))


class _Bands:
    """Gathers consecutive predictions of a view into slabs of at least ``slab`` sections before storing them.

    One strided write per slab instead of one per (possibly one-section) batch: see
    :func:`~impeccable.runtime.batching.sections_per_slab`.
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


def predict_volume(reader: VolumeReader, engine, store, config: DenoiseConfig, stats: VolumeStats,
                   io: ModelIO | None = None, resampling: Resampling | None = None) -> tuple[int, int, float]:
    """Predict every section of the requested views and hand them, by slabs, to ``store.put``.

    Three stages overlap (:mod:`impeccable.runtime.threads`): a thread prepares batches (read, encode), this
    thread runs the engine, another thread decodes the predictions and stores them. Engines return a fresh
    array per call (all of ours do), so a prediction may be stored while the engine runs the next batch.

    Args:
        reader: The input, canonical ``(inline, crossline, sample)``.
        engine: An open engine; its ``window`` sets the tile size.
        store: Receives ``put(view, start, stop, sections)``: unit-scale ``(n, traces, samples)`` float32
            predictions of sections ``start:stop`` of ``view``, in order (:mod:`impeccable.runtime.stores`).
        config: Views, TTA, batch size, progress bar.
        stats: The input's statistics (scaling).
        io: The model's input contract [default: :func:`default_io`]; the engine's window wins.
        resampling: From the data's sample interval to the model's (:attr:`Sampling.resampling`), or None.

    Returns:
        ``(sections, images, engine_seconds)``.
    """
    views = config.view_list
    io = default_io(engine.window) if io is None else io.with_window(engine.window)
    tiles = ModelTiles(io, stats, config.tta, resampling)
    per_call = images_per_call(engine, config.batch_size, config.tta)
    total = sum(section_count(reader.shape, v) for v in views)
    sections = images = 0
    engine_s = 0.0
    bands = _Bands(store, {view: sections_per_slab(reader, view) for view in views})
    with tqdm(total=total, unit="section", disable=not config.progress, desc="denoising", leave=False) as bar:
        worker = Worker()
        call = EngineThread(engine)

        def finish(view: str, start: int, stop: int, preds: np.ndarray, plan: tiling.TilePlan) -> None:
            bands.put(view, start, stop, tiles.decode(preds, plan))
            bar.update(stop - start)

        try:
            for view in views:
                for start, stop, images_in, plan in background(_prepare(reader, view, tiles, config.batch_size)):
                    preds, spent = call.run(images_in, per_call)
                    engine_s += spent
                    images += images_in.shape[0]
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
