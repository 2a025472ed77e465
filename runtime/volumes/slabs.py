"""Readers over part of a volume or over an array in memory: what a task or an API call hands the passes."""

from __future__ import annotations

import numpy as np


class ArrayReader:
    """An in-memory ``(inline, crossline, sample)`` volume behind the reader protocol (every trace live)."""

    def __init__(self, volume: np.ndarray):
        self.volume, self.shape, self.dtype, self.path = volume, tuple(volume.shape), volume.dtype, None

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        return np.array(self.volume[inlines, crosslines], dtype=np.float32)

    def close(self) -> None:
        """Nothing to release."""


class SubVolume:
    """A reader seen through a range of its inlines or crosslines: ``(inline, crossline, sample)`` float32."""

    def __init__(self, reader, inlines: tuple[int, int] | None = None, crosslines: tuple[int, int] | None = None):
        self.reader = reader
        self.il = inlines or (0, reader.shape[0])
        self.xl = crosslines or (0, reader.shape[1])
        self.shape = (self.il[1] - self.il[0], self.xl[1] - self.xl[0], reader.shape[2])
        self.path, self.dtype = reader.path, reader.dtype
        self.fill = getattr(reader, "fill", "mirror")

    @staticmethod
    def _shift(index: slice, base: tuple[int, int]) -> slice:
        start, stop, _ = index.indices(base[1] - base[0])
        return slice(base[0] + start, base[0] + stop)

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        return self.reader.read(inlines=self._shift(inlines, self.il), crosslines=self._shift(crosslines, self.xl))

    @property
    def live_mask(self) -> np.ndarray | None:
        live = getattr(self.reader, "live_mask", None)
        return None if live is None else live[self.il[0]:self.il[1], self.xl[0]:self.xl[1]]

    def close(self) -> None:
        """The parent reader stays open."""
