"""``.npy`` volumes: memory-mapped reads, never unpickled; atomic memory-mapped writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from impeccable.core.errors import InputError
from impeccable.core.geometry import from_canonical, resolve_time_axis, to_canonical


class NpyReader:
    """A ``.npy`` volume, memory-mapped and viewed in ``(inline, crossline, sample)`` order.

    Args:
        path: The file.
        time_axis: Stored time axis, ``0``, ``2`` or ``"auto"`` (the unique longest axis).
        dataset: Unused (HDF5 only).
    """

    def __init__(self, path: Path, time_axis: int | str = "auto", dataset: str | None = None):
        self.path = Path(path)
        try:
            # allow_pickle=False: an object array is refused here, never unpickled.
            stored = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            what = "pickled/object arrays are refused" if "pickle" in str(exc) else "unreadable .npy"
            raise InputError(f"cannot read {self.path.name}: {what}", received=str(exc).splitlines()[0],
                             expected="a numeric .npy array saved with np.save",
                             todo="re-save the volume as a plain float/int array") from exc
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read {self.path.name}: truncated or not a .npy file",
                             received=str(exc).splitlines()[0], expected="a complete .npy file",
                             todo="re-copy or re-save the file") from exc
        if not isinstance(stored, np.ndarray) or stored.dtype.kind not in "fiu":
            raise InputError(f"{self.path.name} does not hold real numbers", received=getattr(stored, "dtype", "?"),
                             expected="float or integer samples", todo="convert the volume to float32")
        self.time_axis = resolve_time_axis(stored.shape, time_axis)
        self.stored = stored
        self.stored_shape = stored.shape
        self.canonical = to_canonical(stored, self.time_axis)
        self.shape = tuple(self.canonical.shape)
        self.dtype = stored.dtype

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        """A block ``(n_inline, n_crossline, sample)`` float32."""
        return np.asarray(self.canonical[inlines, crosslines, :], dtype=np.float32)

    def close(self) -> None:
        self.stored = self.canonical = None


class NpyWriter:
    """A ``.npy`` output in the input's stored orientation, written to a temp file and renamed on commit.

    Args:
        path: Final output path.
        like: The reader of the input (gives stored shape and time axis).
        dtype: Output dtype (float32, or uint8 for the uint8 scale).
    """

    def __init__(self, path: Path, like: NpyReader, dtype: np.dtype = np.dtype(np.float32)):
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.time_axis = getattr(like, "time_axis", 2)
        stored_shape = getattr(like, "stored_shape", None) or tuple(from_canonical(np.empty(like.shape, np.uint8),
                                                                                   self.time_axis).shape)
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=tuple(stored_shape))
        self.canonical = to_canonical(self.array, self.time_axis)

    def write(self, inlines: slice, block: np.ndarray) -> None:
        """Write ``block`` ``(n_inline, crossline, sample)`` at ``inlines``."""
        self.canonical[inlines] = block

    def commit(self) -> None:
        """Flush and move the temp file into place."""
        self.array.flush()
        self.array = self.canonical = None
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Remove the temp file; the final path is untouched."""
        self.array = self.canonical = None
        self.tmp.unlink(missing_ok=True)
