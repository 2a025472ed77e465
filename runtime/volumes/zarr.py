"""Zarr volumes (zarr-python 3): lazy canonical reads, chunk-aligned writes, atomic commit (DESIGN §2, §8).

A volume is a 3-D Zarr array, at a path (``survey.zarr``) or inside a group (``--dataset amplitude``; the
group's only 3-D array when not named). The stored time axis is the array's ``time``-like dimension name when
it has one, else ``--time-axis`` (``auto``: the unique longest axis), as for ``.npy``.

Outputs keep the input's stored orientation, dimension names and attributes. Their chunks are the input's when
each chunk holds whole sections (every crossline and sample), else ``(k, crossline, sample)`` with ``k`` the
input's inline chunk: the distributed runner gives each task whole chunks of inlines, so no two tasks ever write
one chunk (partial, concurrent writes of one chunk lose data: xarray#8371).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from impeccable.core.errors import InputError, OutputError
from impeccable.core.geometry import resolve_time_axis
from impeccable.runtime.volumes.sampling import depth_from_attrs, interval_from_attrs, interval_from_coordinate

#: Dimension names read as the time (sample) axis.
TIME_NAMES = ("time", "depth", "sample", "samples", "twt", "z")


def _import_zarr():
    try:
        import zarr
    except ImportError as exc:
        raise InputError("reading Zarr needs the zarr package", received=str(exc), expected="zarr >= 3",
                         todo="pip install '.[distributed]'") from exc
    return zarr


def _find_array(group, dataset: str | None, path: Path):
    zarr = _import_zarr()
    if dataset is not None:
        try:
            node = group[dataset]
        except KeyError as exc:
            raise InputError("Zarr dataset not found", received=f"{path}: {dataset}",
                             expected=f"one of {', '.join(sorted(group.array_keys()))}",
                             todo="pass --dataset with one of these") from exc
        if not isinstance(node, zarr.Array):
            raise InputError("Zarr dataset is a group", received=dataset, expected="a 3-D array",
                             todo="pass --dataset with the array's path")
        return node, dataset
    names = [name for name, arr in group.arrays() if arr.ndim == 3]
    if len(names) != 1:
        raise InputError("cannot tell which Zarr array is the volume", received=f"3-D arrays: {names or 'none'}",
                         expected="exactly one, or --dataset", todo="pass --dataset NAME")
    return group[names[0]], names[0]


def stored_index(time_axis: int, inlines: slice, crosslines: slice, samples: slice = slice(None)) -> tuple:
    """A canonical ``(inline, crossline, sample)`` selection in the stored axis order (time first or last)."""
    return (samples, inlines, crosslines) if time_axis == 0 else (inlines, crosslines, samples)


def canonical_chunks(chunks: tuple[int, int, int], time_axis: int) -> tuple[int, int, int]:
    """Stored chunk shape -> canonical ``(inline, crossline, sample)`` order."""
    return (chunks[1], chunks[2], chunks[0]) if time_axis == 0 else tuple(chunks)


def section_chunks(shape: tuple[int, int, int], chunks: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """Canonical output chunks that hold whole inline sections: ``(k, crossline, sample)``.

    Args:
        shape: Canonical volume shape.
        chunks: The input's canonical chunks (kept when they hold whole sections), or None.
    """
    k = chunks[0] if chunks else max(1, (16 << 20) // max(1, shape[1] * shape[2] * 4))
    return (max(1, min(k, shape[0])), shape[1], shape[2])


def _coordinate_interval(group, name: str, samples: int) -> float | None:
    """The spacing of the group's 1-D coordinate array of the sample dimension (MDIO's ``time``), if regular."""
    try:
        coordinate = group[name]
    except KeyError:
        return None
    if getattr(coordinate, "ndim", 0) != 1 or coordinate.shape[0] != samples:
        return None
    return interval_from_coordinate(np.asarray(coordinate[:]))


class ZarrReader:
    """A 3-D Zarr array viewed in ``(inline, crossline, sample)`` order, read lazily.

    Args:
        path: The array or group directory (``.zarr``).
        time_axis: Stored time axis, ``0``, ``2`` or ``"auto"`` (a time-named dimension, else the longest axis).
        dataset: The array's path inside a group.

    Attributes:
        sample_interval: The array's (else the group's) ``sample_interval``-like attribute in ms, else the spacing
            of the group's coordinate array of the sample dimension (MDIO's ``time``), else None.
        depth: The sample dimension is named ``depth``/``z``, or the attributes name a depth domain.

    Raises:
        InputError: Not a Zarr store, no (single) 3-D array, non-numeric samples, an ambiguous time axis.
    """

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None):
        zarr = _import_zarr()
        self.path = Path(path)
        try:
            node = zarr.open(store=str(self.path), mode="r")
        except Exception as exc:  # noqa: BLE001 - zarr raises several unrelated types for "not a store"
            raise InputError("cannot open the Zarr store", received=f"{self.path} ({exc})",
                             expected="a Zarr v2/v3 array or group", todo="check the path") from exc
        if isinstance(node, zarr.Array):
            self.array, self.dataset, self.group_attrs = node, None, {}
        else:
            self.array, self.dataset = _find_array(node, dataset, self.path)
            self.group_attrs = dict(node.attrs)
        if self.array.ndim != 3 or np.dtype(self.array.dtype).kind not in "fiu":
            raise InputError("Zarr array is not a 3-D numeric volume",
                             received=f"{self.array.ndim}-D {self.array.dtype}",
                             expected="a 3-D float or integer array", todo="pass --dataset with the volume")
        names = tuple(getattr(self.array.metadata, "dimension_names", None) or ())
        if time_axis == "auto" and len(names) == 3:
            hits = [i for i, n in enumerate(names) if str(n).lower() in TIME_NAMES and i in (0, 2)]
            time_axis = hits[0] if len(hits) == 1 else "auto"
        self.time_axis = resolve_time_axis(tuple(self.array.shape), time_axis)
        self.stored_shape = tuple(self.array.shape)
        self.dimension_names = names or None
        self.shape = ((self.stored_shape[1], self.stored_shape[2], self.stored_shape[0]) if self.time_axis == 0
                      else self.stored_shape)
        self.dtype = np.dtype(self.array.dtype)
        self.chunks = canonical_chunks(tuple(self.array.chunks), self.time_axis)
        sample_dim = names[self.time_axis] if len(names) == 3 else None
        self.sample_interval = interval_from_attrs(dict(self.array.attrs), self.group_attrs)
        if self.sample_interval is None and sample_dim is not None and not isinstance(node, zarr.Array):
            self.sample_interval = _coordinate_interval(node, str(sample_dim), self.shape[2])
        self.depth = depth_from_attrs(dict(self.array.attrs), self.group_attrs, dimension=sample_dim)

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32 (a copy; NaN/Inf left as stored)."""
        block = np.asarray(self.array[stored_index(self.time_axis, inlines, crosslines)])
        if self.time_axis == 0:
            block = np.moveaxis(block, 0, -1)
        return np.ascontiguousarray(block, dtype=np.float32)

    def close(self) -> None:
        """Nothing to release (Zarr opens chunks per read)."""

    def __enter__(self) -> ZarrReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Attributes never carried onto an output array: statistics of the input's samples (MDIO's ``statsV1``) would
#: describe the noisy volume, not the denoised one.
DROPPED_ATTRS = ("statsV1",)


def create_like(path: Path, like, dtype: np.dtype, chunks: tuple[int, int, int] | None = None):
    """Create an empty Zarr volume at ``path`` shaped, oriented and named like ``like``'s source.

    A volume inside a group gets the input group's other arrays and attributes too (coordinates, trace
    mask, trace headers: copied as stored, on a filesystem store), beside a new array for the volume.

    Args:
        path: The new store's directory (must not exist).
        like: The input's reader (a :class:`ZarrReader` gives dataset name, attributes, dimension names).
        dtype: Output dtype.
        chunks: Canonical chunks [default: :func:`section_chunks` of the input's].

    Returns:
        The new array (open for writing).
    """
    zarr = _import_zarr()
    time_axis = getattr(like, "time_axis", 2)
    canon = chunks or section_chunks(tuple(like.shape), getattr(like, "chunks", None))
    stored = (canon[2], canon[0], canon[1]) if time_axis == 0 else canon
    stored_shape = getattr(like, "stored_shape", None) or (
        (like.shape[2], like.shape[0], like.shape[1]) if time_axis == 0 else tuple(like.shape))
    source = getattr(like, "array", None)
    attrs = {k: v for k, v in (dict(source.attrs) if source is not None else {}).items() if k not in DROPPED_ATTRS}
    fill = 0
    if source is not None and np.dtype(dtype).kind == "f":
        fill = source.metadata.fill_value if np.dtype(source.dtype).kind == "f" else 0
    kwargs = {"shape": stored_shape, "dtype": np.dtype(dtype), "chunks": stored, "attributes": attrs,
              "dimension_names": getattr(like, "dimension_names", None), "fill_value": fill}
    dataset = getattr(like, "dataset", None)
    if dataset is None:
        return zarr.create_array(store=str(path), **kwargs)
    skip = Path(like.path) / dataset
    shutil.copytree(like.path, path, ignore=lambda folder, names: names if Path(folder) == skip else [])
    group = zarr.open_group(store=str(path), mode="r+")
    return group.create_array(name=dataset, overwrite=True, **kwargs)


def open_for_region_writes(path: Path, dataset: str | None):
    """Open an existing Zarr volume array for writes (each writer owns whole chunks)."""
    zarr = _import_zarr()
    return zarr.open_array(store=str(path), path=dataset or "", mode="r+")


class ZarrWriter:
    """A Zarr output like the input's source, written by blocks of inlines into a temp store renamed on commit.

    Args:
        path: Final ``.zarr`` path.
        like: The input's reader.
        dtype: Output dtype (float32, or uint8 for the uint8 scale).
    """

    def __init__(self, path: Path, like, dtype: np.dtype = np.dtype(np.float32)):
        from impeccable.core.atomic import temp_path

        self.path = Path(path)
        self.time_axis = getattr(like, "time_axis", 2)
        # The shared temp name (pid and host in it): a dead run's store is found and removed by the next run.
        self.tmp = temp_path(self.path, tag="store")
        try:
            self.array = create_like(self.tmp, like, np.dtype(dtype))
        except OSError as exc:
            self.abort()
            raise OutputError("cannot create the Zarr output", received=f"{self.path} ({exc.strerror or exc})",
                              expected="a writable directory", todo="free disk space or pass -o elsewhere") from exc

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` at ``inlines``."""
        self.array[stored_index(self.time_axis, inlines, slice(None))] = (
            np.moveaxis(block, -1, 0) if self.time_axis == 0 else block)

    #: Replace an existing output at commit (set by :func:`~impeccable.runtime.volumes.open_writer`).
    overwrite = False

    def commit(self) -> None:
        """Move the temp store into place, never over an existing output without ``overwrite``.

        Raises:
            TargetAppeared: An output appeared during the run: left alone, the result kept beside it.
        """
        from impeccable.core.atomic import TargetAppeared, keep_aside
        from impeccable.runtime.volumes.files import commit_path

        tmp, self.tmp = self.tmp, None
        try:
            commit_path(tmp, self.path, self.overwrite)
        except FileExistsError:
            raise TargetAppeared(self.path, keep_aside(tmp, self.path)) from None

    def abort(self) -> None:
        """Remove the temp store; the final path is untouched."""
        self.array = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class ZarrSink:
    """The cluster's Zarr (and MDIO) output: a store in the run directory whose inline chunks each task owns."""

    def inline_chunk(self, reader: ZarrReader) -> int:
        return section_chunks(tuple(reader.shape), reader.chunks)[0]

    def create(self, run_dir: Path, reader: ZarrReader, output: Path, dtype: np.dtype, resumed: bool,
               chunk: int) -> Path:
        path = Path(run_dir) / f"output{Path(output).suffix.lower()}"
        if not (resumed and path.is_dir()):
            create_like(path, reader, dtype, chunks=(chunk, reader.shape[1], reader.shape[2]))
        return path

    def write(self, sink: Path, reader: ZarrReader, start: int, stop: int, block: np.ndarray) -> None:
        array = open_for_region_writes(Path(sink), reader.dataset)
        array[stored_index(reader.time_axis, slice(start, stop), slice(None))] = (
            np.moveaxis(block, -1, 0) if reader.time_axis == 0 else block)
