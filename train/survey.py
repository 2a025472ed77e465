"""The user's survey as training material for ``--adapt``: read as the runtime reads it, split, fed as it feeds.

- **Reading**: any volume ``impeccable-denoise`` reads (:func:`impeccable.runtime.volumes.open_reader`: SEG-Y
  with its geometry options, ``.npy``, HDF5, Zarr/MDIO), sections taken as the runtime takes them (absent
  traces filled, :func:`impeccable.runtime.predict.read_sections`), normalized with the whole survey's
  statistics (:func:`impeccable.runtime.passes.reader_stats`).
- **Feeding**: :class:`SurveyFeed` is the ONE place where a survey section is normalized and padded, for the
  training crops and for the before/after QC alike, so the adapted model learns on sections exactly as the
  runtime will feed them.
- **Split**: a contiguous block in the middle of the survey's longer horizontal axis is held out for the QC
  (never trained on: no training image contains one of its traces); the training *pieces* are the sections
  outside it and the parts of the sections that cross it on either side of it (:func:`split_survey`).

Axis order everywhere: ``(inline, crossline, sample)`` float32; a section or piece is ``(traces, samples)``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from impeccable.core.amplitude import VolumeStats
from impeccable.core.errors import DataError, ImpeccableError, InputError
from impeccable.core.tiling import predict_sections

INLINE, CROSSLINE = 0, 1
VIEW_OF = {INLINE: "inline", CROSSLINE: "crossline"}
#: Narrower pieces are not trained on (blind-trace needs neighbouring traces; a few traces teach little).
MIN_TRACES = 8


@dataclass(frozen=True)
class Piece:
    """Traces ``start:stop`` of one section: ``vol[index, start:stop, :]`` (inline) or ``vol[start:stop, index, :]``.

    Attributes:
        axis: ``INLINE`` or ``CROSSLINE``.
        index: The section's position on that axis.
        start: First trace.
        stop: One past the last trace.
    """

    axis: int
    index: int
    start: int
    stop: int

    @property
    def traces(self) -> int:
        return self.stop - self.start

    def as_dict(self) -> dict:
        return {"view": VIEW_OF[self.axis], "index": self.index, "traces": [self.start, self.stop]}


def split_survey(shape: tuple[int, int, int], views: tuple[str, ...], holdout: float,
                 min_traces: int = MIN_TRACES) -> tuple[list[Piece], list[Piece], dict]:
    """Training pieces and held-out pieces of a survey.

    The held-out block is ``round(holdout * n)`` (at least 1 when ``holdout > 0``) consecutive positions in
    the middle of the longer of the inline and crossline axes (ties: inline). Sections along that axis inside
    the block are held out whole; sections across it lose the block's traces, and their two sides are
    training pieces. The held-out pieces are those of the view whose pieces are widest (a one-line survey's
    held-out traces, a 3-D survey's held-out sections).

    Args:
        shape: ``(inline, crossline, sample)``.
        views: The reader's section directions (``inline``, ``crossline``).
        holdout: Share of the axis held out, ``0 <= holdout < 1`` (0: no QC).
        min_traces: Narrower pieces are left out.

    Returns:
        ``(train, held_out, block)``: the pieces and ``{"axis", "start", "stop"}`` of the held-out block.

    Raises:
        InputError: No training piece is left (a survey too small or too narrow, or ``holdout`` too large).
    """
    split_axis = INLINE if shape[0] >= shape[1] else CROSSLINE
    n = shape[split_axis]
    k = max(1, int(round(holdout * n))) if holdout > 0 else 0
    a = (n - k) // 2
    b = a + k
    train: list[Piece] = []
    held: dict[int, list[Piece]] = {INLINE: [], CROSSLINE: []}
    for axis in (INLINE, CROSSLINE):
        if VIEW_OF[axis] not in views:
            continue
        traces = shape[1 - axis]
        for index in range(shape[axis]):
            if axis == split_axis:
                (held[axis] if a <= index < b else train).append(Piece(axis, index, 0, traces))
            else:
                train += [Piece(axis, index, 0, a), Piece(axis, index, b, traces)]
                if k:
                    held[axis].append(Piece(axis, index, a, b))
    train = [p for p in train if p.traces >= min_traces]
    if not train:
        raise InputError("the survey is too small to adapt on", received=f"shape {tuple(shape)}, views {views}, "
                         f"--holdout {holdout}",
                         expected=f"sections of at least {min_traces} traces outside the held-out block",
                         todo="pass a larger survey, or a smaller --holdout")
    widest = max(held.values(), key=lambda pieces: max((p.traces for p in pieces), default=0))
    held_out = [p for p in widest if p.traces >= 2] if k else []
    block = {"view_axis": VIEW_OF[split_axis], "start": a, "stop": b}
    return train, held_out, block


def content_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a survey's bytes: the file, or a store directory's files (relative paths and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        from impeccable.core.card import sha256_file

        return sha256_file(path, chunk)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


class SurveyFeed:
    """How a model sees a survey's sections, from its card (:class:`impeccable.core.model_io.ModelIO`): the
    scaling, the padding, the window, the resampling to the model's sample interval. The one place where a
    survey section is normalized and padded, for the training crops and for the QC alike.

    Args:
        card: The model card.
        interval_ms: The survey's sample interval (None: unknown, taken as the model's).
    """

    def __init__(self, card: dict, interval_ms: float | None = None):
        from impeccable.core.model_io import ModelIO

        self.io = ModelIO.from_card(card)
        self.window = self.io.window
        self.pad_value = self.io.pad_value
        self.resampling = self.io.resampling(interval_ms)

    def unit(self, raw: np.ndarray, stats: VolumeStats) -> np.ndarray:
        """Sections ``(..., traces, samples)`` in the survey's units -> the network's input scale (float32)."""
        return self.io.normalize(raw, stats)

    def training_unit(self, raw: np.ndarray, stats: VolumeStats) -> np.ndarray:
        """A piece ``(traces, samples)`` as the network meets it at inference: normalized, at the model's
        sample interval (the runtime resamples before tiling), balanced by the card's section gain."""
        unit = self.unit(raw, stats)
        unit = unit if self.resampling is None else self.resampling.to_model(unit[None])[0]
        gain = self.io.section_gain
        return unit if gain is None else gain.balance(unit[None], gain.gains(unit[None]))[0]

    def predict(self, run_batch: Any, raw: np.ndarray, stats: VolumeStats, tta: bool = True,
                batch: int = 4) -> np.ndarray:
        """Denoise sections ``(n, traces, samples)`` as ``impeccable-denoise`` does: normalize, resample, pad or
        tile, run (with flip TTA), blend. Returns the network's ``(n, traces, samples)`` float32 output in its
        units, at the survey's interval."""
        return predict_sections(self.unit(raw, stats), run_batch, self.window, tta=tta, batch=batch,
                                pad_value=self.pad_value, resampling=self.resampling, guard=self.io.output_guard,
                                gain=self.io.section_gain)

    def to_units(self, raw: np.ndarray, unit: np.ndarray, stats: VolumeStats) -> np.ndarray:
        """A prediction back in the survey's units: a min-max model's through the runtime's least-squares
        amplitude fit (its target lived on another scale), a robust model's by the inverse scaling (its target
        is in the input's units)."""
        if self.io.scaling.kind == "minmax":
            from impeccable.core.calibration import AmplitudeFit, inline_sums

            fit = AmplitudeFit.from_sums(inline_sums(raw, unit, stats), stats)
            return fit.apply(raw, unit, stats)
        return self.io.scaling.denormalize(unit, stats)


class Survey:
    """An opened survey: its shape, statistics, content hash and pieces; reads re-open per process.

    Args:
        path: The volume (any format :func:`impeccable.runtime.volumes.open_reader` reads).
        time_axis: Stored time axis for ``.npy`` / HDF5 (``auto``, ``0``, ``2``).
        dataset: HDF5 dataset / Zarr array path.
        segy: SEG-Y header bytes (``iline``, ``xline``, ``line_key``, ``cdp``).
        holdout: Share held out for the QC (:func:`split_survey`).

    Raises:
        InputError: The file is missing or unreadable, empty, constant, or too small (one line, before any
            training).
    """

    def __init__(self, path: Path, time_axis: str = "auto", dataset: str | None = None, segy: dict | None = None,
                 holdout: float = 0.1):
        from impeccable.runtime.passes import reader_stats

        self.path = Path(path)
        self.time_axis = int(time_axis) if str(time_axis).isdigit() else time_axis
        self.dataset, self.segy = dataset, dict(segy or {})
        self._pid, self._reader = None, None
        reader = self.reader()
        self.shape = tuple(int(v) for v in reader.shape)
        if min(self.shape) < 1:
            raise InputError("the survey is empty", received=f"canonical shape {self.shape}",
                             expected="at least one sample on every axis", todo="check the file")
        self.views = tuple(getattr(reader, "views", None) or ("inline", "crossline"))
        self.stats = self._guard(lambda: reader_stats(reader))
        self.stats.check_not_constant()
        self.pieces, self.held_out, self.block = split_survey(self.shape, self.views, holdout)
        # What the file records (the runtime's readers); a depth volume's is not compared with a time model's.
        self.interval_ms = None if getattr(reader, "depth", False) else getattr(reader, "sample_interval", None)

    def _guard(self, call: Any) -> Any:
        """``call()``, any reader failure as one InputError line (a corrupt file fails before training)."""
        try:
            return call()
        except ImpeccableError:
            raise
        except Exception as exc:  # segyio, h5py, zarr and numpy raise many types for a bad file
            raise InputError("cannot read the survey", received=f"{self.path.name}: {exc}".splitlines()[0],
                             expected="a volume impeccable-denoise reads (SEG-Y, .npy, HDF5, Zarr/MDIO)",
                             todo="check the file and, for SEG-Y, --iline-byte/--xline-byte/--line-key") from exc

    def reader(self) -> Any:
        """The open reader of this process (a forked data-loader worker opens its own)."""
        if self._reader is None or self._pid != os.getpid():
            from impeccable.runtime.volumes import open_reader

            self._reader = self._guard(lambda: open_reader(self.path, time_axis=self.time_axis,
                                                           dataset=self.dataset, segy=self.segy))
            self._pid = os.getpid()
            self.section.cache_clear()
        return self._reader

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_reader"], state["_pid"] = None, None  # workers re-open the file
        return state

    @functools.lru_cache(maxsize=32)  # noqa: B019 - one Survey per run; a few sections stay hot
    def section(self, axis: int, index: int) -> np.ndarray:
        """One whole section ``(traces, samples)`` float32 in the survey's units, read as the runtime reads it."""
        from impeccable.runtime.predict import read_sections

        raw = self._guard(lambda: read_sections(self.reader(), VIEW_OF[axis], index, index + 1))
        return raw[0]

    def piece(self, piece: Piece) -> np.ndarray:
        """A piece's traces ``(traces, samples)`` float32, in the survey's units."""
        return self.section(piece.axis, piece.index)[piece.start:piece.stop]

    def describe(self) -> dict:
        """The survey as the card records it (name, sha256, shape, split)."""
        return {"name": self.path.name, "sha256": content_sha256(self.path), "shape": list(self.shape),
                "views": list(self.views), "segy": self.segy or None, "held_out_block": self.block,
                "train_pieces": len(self.pieces), "held_out_pieces": len(self.held_out),
                "sample_interval_ms": self.interval_ms}

    def check_unchanged(self, now: dict, saved: dict) -> None:
        """Raise DataError unless the survey's content hash (``now``, :meth:`describe`) is the one a run recorded
        (``saved``), for ``--resume``."""
        if now["sha256"] != saved.get("sha256"):
            raise DataError("the survey changed since the run started",
                            received=f"{self.path.name} sha256 {now['sha256'][:12]}",
                            expected=f"sha256 {str(saved.get('sha256'))[:12]} as saved",
                            todo="restore the survey, or start a new run in another --out")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


__all__ = ["MIN_TRACES", "Piece", "Survey", "SurveyFeed", "content_sha256", "split_survey"]
