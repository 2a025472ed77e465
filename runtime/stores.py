"""Where the predict pass puts its predictions: one store protocol, with the two-view average, for every driver.

A run predicts sections of one or two views (inline ``vol[i, :, :]``, crossline ``vol[:, x, :]``) into unit-scale
predictions in canonical ``(inline, crossline, sample)`` order. The later passes (fit, write) read them back by
blocks of whole inlines, two views averaged. The average is :func:`average_views`, everywhere: one process
averages as the crossline pass arrives (:meth:`PredictionStore.put`), a cluster, whose views are predicted by
separate tasks into separate arrays, as it reads them (:func:`averaged_inlines`); both do the same float32
operations, so both give the same bytes.

Targets: a numpy array (the API, one slab of a cluster task), a float32 scratch memmap beside the output (one
process, :class:`ScratchStore`), one Zarr array per view in a cluster's run directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from impeccable.core.atomic import AtomicFile
from impeccable.core.errors import OutputError
from impeccable.runtime.volumes.npy import MappedVolume


def average_views(inline: np.ndarray, crossline: np.ndarray) -> np.ndarray:
    """The two views' average of the same voxels, float32: ``(inline + crossline) * 0.5`` (a new array)."""
    out = np.add(inline, crossline)
    out *= np.float32(0.5)
    return out


def section_index(view: str, start: int, stop: int) -> tuple[slice, slice, slice]:
    """The canonical selection of sections ``start:stop`` of ``view``."""
    if view == "inline":
        return slice(start, stop), slice(None), slice(None)
    return slice(None), slice(start, stop), slice(None)


def to_canonical_block(view: str, sections: np.ndarray) -> np.ndarray:
    """Sections ``(n, traces, samples)`` of ``view`` as the ``(inline, crossline, sample)`` block they fill."""
    return sections if view == "inline" else sections.transpose(1, 0, 2)


class ArrayTarget:
    """A numpy array behind the target protocol of :class:`PredictionStore` (``read`` / ``write`` / ``shape``)."""

    def __init__(self, array: np.ndarray):
        self.array, self.shape = array, array.shape

    def read(self, index: tuple[slice, slice, slice]) -> np.ndarray:
        return self.array[index]

    def write(self, index: tuple[slice, slice, slice], block: np.ndarray) -> None:
        self.array[index] = block


class PredictionStore:
    """Unit predictions of a run's views in one canonical float32 target, the second view averaged in as it comes.

    Args:
        target: ``read(index)`` / ``write(index, block)`` over a canonical ``(inline, crossline, sample)`` float32
            array (:class:`ArrayTarget`, :class:`~impeccable.runtime.volumes.npy.MappedVolume`).
        views: The views the run predicts, inline first (the predict pass's order).
    """

    def __init__(self, target, views: tuple[str, ...]):
        self.target, self.views = target, tuple(views)
        self.shape = tuple(target.shape)

    def put(self, view: str, start: int, stop: int, pred: np.ndarray) -> None:
        """Store sections ``start:stop`` of ``view`` (``(n, traces, samples)`` float32, unit scale)."""
        index, block = section_index(view, start, stop), to_canonical_block(view, pred)
        if len(self.views) == 2 and view == self.views[1]:
            block = average_views(self.target.read(index), block)
        self.target.write(index, block)

    def inlines(self, start: int, stop: int) -> np.ndarray:
        """Unit predictions of inlines ``start:stop``, ``(inline, crossline, sample)`` float32."""
        return self.target.read(section_index("inline", start, stop))


def array_store(shape: tuple[int, int, int], views: tuple[str, ...]) -> PredictionStore:
    """A :class:`PredictionStore` in a zeroed numpy array (its ``target.array``)."""
    return PredictionStore(ArrayTarget(np.zeros(shape, dtype=np.float32)), views)


def averaged_inlines(arrays: list, start: int, stop: int) -> np.ndarray:
    """Inlines ``start:stop`` of per-view canonical prediction arrays, averaged as :class:`PredictionStore` does."""
    parts = [np.asarray(a[start:stop]) for a in arrays]
    return parts[0] if len(parts) == 1 else average_views(parts[0], parts[1])


class ScratchStore(PredictionStore):
    """A :class:`PredictionStore` in a float32 scratch memmap, a hidden file beside the output (never committed).

    Every voxel's final value is known only after every section was predicted and the amplitude fit was made
    from all of them (two views are averaged, the ``uint8`` scale needs the field's min/max, the writers take
    inlines while crossline sections arrive), so predictions go to this scratch file first. Preallocated: a
    sparse map on a full disk would raise SIGBUS at the first page without room.

    Raises:
        OutputError: The file cannot be created (no room, no permission).
    """

    def __init__(self, output: Path, shape: tuple[int, int, int], views: tuple[str, ...]):
        self.file = AtomicFile(output, tag="scratch")
        try:
            array = np.lib.format.open_memmap(self.file.tmp, mode="w+", dtype=np.float32, shape=shape)
            self.file.preallocate(os.path.getsize(self.file.tmp))
        except OSError as exc:
            self.file.abort()
            raise OutputError("cannot create the scratch file beside the output",
                              received=f"{self.file.path.parent} ({exc.strerror or exc})",
                              expected=f"room for {np.prod(shape) * 4 / 1e9:.2f} GB", todo="free disk space") from exc
        except BaseException:
            self.file.abort()
            raise
        self.path = self.file.tmp
        super().__init__(MappedVolume(array, time_axis=2), views)

    def discard(self) -> None:
        """Remove the scratch file."""
        self.target = None
        self.file.abort()
