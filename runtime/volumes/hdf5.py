"""HDF5 volumes (h5py): one 3-D dataset read lazily by hyperslab, written atomically and chunked by section.

The reader picks the file's only 3-D dataset unless a path is given, and views it in canonical
``(inline, crossline, sample)`` order whatever its stored orientation (``time_axis``, as for ``.npy``). Reads
are h5py hyperslab selections of the requested block only.

The writer creates a new file holding one dataset at the input's path, in the input's stored orientation,
with the input dataset's (and file root's) attributes. Chunks span whole traces and as many crosslines of
one inline as fit ~1 MiB, so writing blocks of inlines never rewrites a chunk and an inline section is a
few chunk reads. The file is written under a temporary name beside the output, preallocated to the
dataset's size (a full disk fails at once), and renamed on ``commit``.

HDF5 reads past the end of a truncated file as zeros, without an error; the reader hence checks the file's
size before and after every block it reads, and :meth:`Hdf5Reader.check_unchanged` (called before the
output is committed) its size, modification time and dataset shape.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from impeccable.core.errors import InputError, OutputError
from impeccable.core.geometry import resolve_time_axis
from impeccable.runtime.volumes import FileStamp, TempFileCommit
from impeccable.runtime.volumes.sampling import depth_from_attrs, interval_from_attrs

#: Target bytes of one chunk of the written dataset.
CHUNK_BYTES = 1 << 20
# Chunk cache of the reader: a few section-shaped chunks, not a volume's worth.
_CACHE_BYTES = 16 << 20
# Attributes that point at other objects of the input file (HDF5 dimension scales) cannot be copied.
_REFERENCE_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST"}


def datasets_3d(group: h5py.Group) -> list[str]:
    """Absolute paths of every 3-D dataset under ``group``, in the file's traversal order."""
    found: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim == 3:
            found.append("/" + name)

    group.visititems(visit)
    return found


def _stored_order(canonical: tuple, time_axis: int) -> tuple:
    """A canonical ``(inline, crossline, sample)`` triple (chunk shape, selection) in stored axis order."""
    stored: list = [None, None, None]
    horizontal = [a for a in range(3) if a != time_axis]
    stored[horizontal[0]], stored[horizontal[1]], stored[time_axis] = canonical
    return tuple(stored)


def _forward(s: slice, n: int) -> tuple[slice, bool]:
    """A positive-step slice over the same indices (h5py refuses negative steps), and whether to reverse."""
    r = range(*s.indices(n))
    if r.step > 0:
        return slice(r.start, r.stop, r.step), False
    r = r[::-1]
    return (slice(r.start, r.stop, r.step) if len(r) else slice(0, 0)), True


def section_chunks(shape: tuple[int, int, int], itemsize: int, target: int = CHUNK_BYTES) -> tuple[int, int, int]:
    """Canonical ``(inline, crossline, sample)`` chunk shape of about ``target`` bytes for section access.

    Whole traces first, then crosslines of one inline, then several inlines when a whole inline is small.
    Each axis is split into equal parts so edge chunks are not mostly empty.
    """
    n_il, n_xl, n_s = shape
    elems = max(1, target // itemsize)

    def split(n: int, at_most: int) -> int:
        at_most = max(1, min(n, at_most))
        return math.ceil(n / math.ceil(n / at_most))

    c_s = split(n_s, elems)
    c_xl = split(n_xl, elems // c_s)
    c_il = split(n_il, elems // (c_s * c_xl)) if c_xl == n_xl else 1
    return c_il, c_xl, c_s


class Hdf5Reader:
    """One 3-D dataset of an HDF5 file, read lazily in ``(inline, crossline, sample)`` order.

    Args:
        path: The file.
        time_axis: Stored time axis, ``0``, ``2`` or ``"auto"`` (the unique longest axis).
        dataset: Dataset path [default: the file's only 3-D dataset].

    Attributes:
        path: The file.
        dataset_name: Absolute path of the dataset in the file.
        time_axis: Stored time axis.
        stored_shape: The dataset's shape as stored.
        shape: Canonical ``(inline, crossline, sample)`` shape.
        dtype: The stored sample dtype.
        sample_interval: The dataset's (else the file's) ``sample_interval``-like attribute in ms, or None.
        depth: The attributes name a depth domain.

    Raises:
        InputError: Not HDF5; no 3-D dataset, several without ``dataset``, or ``dataset`` missing or not a
            3-D numeric dataset; ambiguous time axis.
    """

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None):
        self.path = Path(path)
        self.stamp = FileStamp.of(self.path)
        try:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=_CACHE_BYTES)
        except OSError as exc:
            raise InputError(f"cannot read {self.path.name} as HDF5", received=str(exc).splitlines()[0],
                             expected="an HDF5 file", todo="check the file (truncated? another format?)") from exc
        try:
            self._dataset = self._select(dataset)
            if self._dataset.dtype.kind not in "fiu":
                raise InputError(f"dataset {self._dataset.name} does not hold real numbers",
                                 received=self._dataset.dtype, expected="float or integer samples",
                                 todo="convert the volume to float32")
            self.dataset_name = self._dataset.name
            self.stored_shape = tuple(self._dataset.shape)
            self.time_axis = resolve_time_axis(self.stored_shape, time_axis)
            if 0 in self.stored_shape:
                raise InputError(f"dataset {self.dataset_name} is empty", received=f"shape {self.stored_shape}",
                                 expected="at least one inline, crossline and sample", todo="pass another --dataset")
            horizontal = [n for a, n in enumerate(self.stored_shape) if a != self.time_axis]
            self.shape = (*horizontal, self.stored_shape[self.time_axis])
            self.dtype = self._dataset.dtype
            self.sample_interval = interval_from_attrs(self._dataset.attrs, self._file.attrs)
            self.depth = depth_from_attrs(self._dataset.attrs, self._file.attrs)
        except BaseException:
            self.close()
            raise

    def _select(self, dataset: str | None) -> h5py.Dataset:
        candidates = datasets_3d(self._file)
        listing = ", ".join(candidates) if candidates else "none"
        if dataset is None:
            if len(candidates) == 1:
                return self._file[candidates[0]]
            if not candidates:
                raise InputError(f"no 3-D dataset in {self.path.name}", received=f"datasets {self._summary()}",
                                 expected="one 3-D dataset (inline, crossline, sample) or (sample, inline, crossline)",
                                 todo="store the volume as a 3-D dataset")
            raise InputError(f"{len(candidates)} 3-D datasets in {self.path.name}", received=listing,
                             expected="one, or --dataset naming which", todo=f"pass --dataset {candidates[0]}")
        obj = self._file.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            what = "a group" if isinstance(obj, h5py.Group) else "missing"
            raise InputError(f"dataset {dataset} in {self.path.name} is {what}",
                             received=f"3-D datasets: {listing}", expected="the path of a 3-D dataset",
                             todo="pass --dataset with one of those")
        if obj.ndim != 3:
            raise InputError(f"dataset {obj.name} has {obj.ndim} dimension(s)", received=f"shape {obj.shape}",
                             expected=f"a 3-D dataset; 3-D ones here: {listing}", todo="pass another --dataset")
        return obj

    def _summary(self) -> str:
        shapes: list[str] = []
        self._file.visititems(lambda name, obj: shapes.append(f"/{name} {obj.shape}")
                              if isinstance(obj, h5py.Dataset) else None)
        return ", ".join(shapes) if shapes else "none"

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32.

        Raises:
            InputError: The file became shorter than at open (HDF5 would return zeros), or a read failed.
        """
        (il, flip_il), (xl, flip_xl) = _forward(inlines, self.shape[0]), _forward(crosslines, self.shape[1])
        self._check_size()
        try:
            stored = self._dataset[_stored_order((il, xl, slice(None)), self.time_axis)]
        except OSError as exc:
            self._check_size()
            raise InputError(f"cannot read {self.path.name}", received=str(exc).splitlines()[0],
                             expected="a readable HDF5 dataset", todo="check the file") from exc
        self._check_size()
        block = np.moveaxis(stored, self.time_axis, -1)
        if flip_il:
            block = block[::-1]
        if flip_xl:
            block = block[:, ::-1]
        return np.ascontiguousarray(block, dtype=np.float32)

    def _check_size(self) -> None:
        size = os.stat(self.path).st_size
        if size < self.stamp.size:
            raise InputError(f"{self.path.name} became shorter while it was read",
                             received=f"{size} bytes", expected=f"{self.stamp.size} bytes as at open",
                             todo="rerun once the file is complete (a copy still under way?)")

    def check_unchanged(self) -> None:
        """Raise InputError if the file's size, modification time or dataset shape differ from those at open."""
        self.stamp.check(self.path)
        if tuple(self._dataset.shape) != self.stored_shape:
            raise InputError("input dataset changed shape during the run", received=self._dataset.shape,
                             expected=self.stored_shape, todo="rerun once the file is complete")

    def close(self) -> None:
        """Release the file."""
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
        self._dataset = None

    def __enter__(self) -> Hdf5Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy_attrs(src: h5py.AttributeManager, dst: h5py.AttributeManager) -> None:
    """Copy attributes with their stored types, skipping references into the source file."""
    for name in src:
        if name in _REFERENCE_ATTRS:
            continue
        dtype = src.get_id(name).dtype
        if h5py.check_dtype(ref=dtype) is not None:
            continue
        dst.create(name, src[name], dtype=dtype)


class Hdf5Writer(TempFileCommit):
    """An HDF5 output: the input's dataset path, stored orientation and attributes, chunked by section.

    Args:
        path: Final output path.
        like: The input's :class:`Hdf5Reader`.
        dtype: Output dtype (float32, or uint8 for the uint8 scale).

    Raises:
        OutputError: ``like`` is not an HDF5 reader, or the file cannot be created.
    """

    format_name = "HDF5"

    def __init__(self, path: Path, like: Hdf5Reader, dtype: np.dtype = np.dtype(np.float32)):
        if not isinstance(like, Hdf5Reader):
            raise OutputError("an HDF5 output needs an HDF5 input", received=type(like).__name__,
                              expected="Hdf5Reader (the dataset path and attributes come from the input)",
                              todo="write the output in the input's format")
        self.shape = like.shape
        self.time_axis = like.time_axis
        self._file = None
        self._begin(path)
        dtype = np.dtype(dtype)
        stored_chunks = _stored_order(section_chunks(self.shape, dtype.itemsize), self.time_axis)
        try:
            self._file = h5py.File(self.tmp, "w")
            self._dataset = self._file.create_dataset(like.dataset_name, shape=like.stored_shape, dtype=dtype,
                                                      chunks=stored_chunks)
            _copy_attrs(like._dataset.attrs, self._dataset.attrs)
            _copy_attrs(like._file.attrs, self._file.attrs)
        except (OSError, TypeError, ValueError) as exc:
            self.abort()
            raise OutputError(f"cannot create {self.path.name}", received=str(exc).splitlines()[0],
                              expected="a writable directory", todo="free disk space or pass -o elsewhere") from exc
        # The chunks' bytes now (uncompressed); HDF5 allocates inside that space and adds a little metadata.
        self._preallocate(int(np.prod(like.stored_shape)) * dtype.itemsize)
        self._written = np.zeros(self.shape[0], dtype=bool)

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` at ``inlines``."""
        rows = range(*inlines.indices(self.shape[0]))
        want = (len(rows), *self.shape[1:])
        if block.shape != want:
            raise OutputError("block does not fit the HDF5 output", received=block.shape, expected=want,
                              todo="write whole inlines (all crosslines and samples)")
        il, flip = _forward(inlines, self.shape[0])
        if flip:
            block = block[::-1]
        stored = np.moveaxis(np.asarray(block, dtype=self._dataset.dtype), -1, self.time_axis)
        try:
            self._dataset[_stored_order((il, slice(None), slice(None)), self.time_axis)] = stored
        except OSError as exc:  # h5py's message holds the errno text (No space left on device...)
            raise OutputError(f"cannot write the HDF5 output {self.path.name}", received=str(exc).splitlines()[0],
                              expected="room and permission to write beside the output",
                              todo="free disk space or write elsewhere") from exc
        self._written[inlines] = True
