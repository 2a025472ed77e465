"""The one ``.npy`` reader: a validated, read-only memory map, never unpickled (issue 15).

The runtime's :class:`~impeccable.runtime.volumes.npy.NpyReader` and the data loaders
(:func:`~impeccable.data.challenge.load_volume`) both open files here, so the same fault gives the same
:class:`~impeccable.core.errors.InputError` everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impeccable.core.errors import InputError


def open_npy(path: str | Path) -> np.ndarray:
    """Memory-map the array of a ``.npy`` file in its stored order, read-only.

    Args:
        path: The file.

    Returns:
        A read-only ``np.memmap`` of the stored array, any axis order, any real dtype (a plain array for a
        zero-size one, which numpy cannot map).

    Raises:
        InputError: Missing file or a directory; pickled or object data (refused, never unpickled); a
            truncated or unreadable file; non-numeric samples.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("input is a directory", received=str(path), expected="a .npy file",
                         todo="pass the volume file inside it")
    if not path.is_file():
        raise InputError("volume file not found", received=str(path), expected="an existing .npy file",
                         todo="check the path")
    try:
        # allow_pickle=False: an object array or a pickle is refused here, never unpickled.
        stored = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        text = str(exc)
        pickled = "pickle" in text or "Python objects" in text
        what = "pickled/object arrays are refused" if pickled else "truncated or unreadable .npy"
        raise InputError(f"cannot read {path.name}: {what}", received=text.splitlines()[0],
                         expected="a numeric .npy array saved with np.save (pickled files are refused)",
                         todo="re-save the volume as a plain float or integer array" if pickled
                         else "re-copy or re-save the file") from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path.name}: truncated or not a .npy file",
                         received=str(exc).splitlines()[0] or type(exc).__name__, expected="a complete .npy file",
                         todo="re-copy or re-save the file") from exc
    if not isinstance(stored, np.ndarray) or stored.dtype.kind not in "fiu":
        raise InputError(f"{path.name} does not hold real numbers", received=f"dtype {getattr(stored, 'dtype', '?')}",
                         expected="numeric (float or integer) samples", todo="re-save the volume as float32")
    return stored
