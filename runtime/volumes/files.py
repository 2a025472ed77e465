"""Where volume files come and go: what identifies an input (to tell it changed), and the commit of an output.

An input is identified by :func:`input_identity`: a file by its size and modification time, a directory store
(Zarr, MDIO) by its metadata documents' content and by every file's size and modification time (a chunk
rewritten or deleted changes it). One process takes it at open and compares before committing; a cluster
records it in its run directory and compares at the end and on ``--resume``.

An output is committed by :func:`commit_path`: a no-replace rename (an output that appeared during the run is
left alone) unless ``overwrite``, for files and directory stores alike.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from impeccable.core.errors import InputChangedError, InputError

#: Metadata documents of a Zarr store (v3, v2): their bytes are part of a store's identity.
METADATA_NAMES = ("zarr.json", ".zarray", ".zattrs", ".zgroup")


@dataclass(frozen=True)
class FileStamp:
    """A file's size and modification time, to tell whether it changed during a run.

    Attributes:
        size: Bytes.
        mtime_ns: Modification time, nanoseconds.
    """

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStamp:
        """The stamp of ``path`` now."""
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns)

    def check(self, path: str | Path) -> None:
        """Raise InputError if ``path`` is gone or its size or modification time differ from this stamp."""
        try:
            now = FileStamp.of(path)
        except OSError as exc:
            raise _vanished(path, exc) from exc
        if now != self:
            what = f"size {self.size} -> {now.size} bytes" if now.size != self.size else "modification time changed"
            raise _changed(f"{path}: {what}")


def _vanished(path, exc: OSError) -> InputChangedError:
    return InputChangedError("input vanished during the run", received=f"{path} ({exc.strerror or exc})",
                      expected="an input left in place until the run ends", todo="rerun with the file in place")


def _changed(received: str) -> InputChangedError:
    return InputChangedError("input changed during the run; nothing was written", received=received,
                      expected="an input nobody writes while it is denoised", todo="rerun once the file is complete")


def input_identity(path: str | Path) -> dict:
    """What tells the input apart between two moments: size and mtime of a file; of a directory store, its
    metadata documents' content and every file's name, size and modification time.

    A chunk rewritten, added or deleted changes it (one ``stat`` per file: about a second per 100 000 chunks on a
    local disk). What it cannot see: a chunk rewritten with the same size within the filesystem's timestamp
    resolution, or a store on object storage (not read here).
    """
    path = Path(path).resolve()
    if path.is_file():
        st = path.stat()
        return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest, mtimes = hashlib.sha256(), []
    for meta in sorted(path.rglob("zarr.json")) + sorted(path.rglob(".zarray")) + sorted(path.rglob(".zattrs")):
        digest.update(str(meta.relative_to(path)).encode() + meta.read_bytes())
        mtimes.append(meta.stat().st_mtime_ns)
    files = hashlib.sha256()
    for entry in sorted(p for p in path.rglob("*") if p.is_file()):
        st = entry.stat()
        files.update(f"{entry.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(path), "metadata_sha256": digest.hexdigest(), "metadata_mtime_ns": max(mtimes, default=0),
            "files_sha256": files.hexdigest()}


def check_unchanged(path: str | Path, identity: dict) -> None:
    """Raise InputError if ``path``'s :func:`input_identity` now differs from ``identity`` (or it is gone)."""
    try:
        now = input_identity(path)
    except OSError as exc:
        raise _vanished(path, exc) from exc
    if now != identity:
        if "size" in identity and now.get("size") != identity["size"]:
            what = f"size {identity['size']} -> {now.get('size')} bytes"
        elif "size" in identity:
            what = "modification time changed"
        else:
            what = "its files changed"
        raise _changed(f"{path}: {what}")


def replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished store ``tmp`` to ``final``; an existing ``final`` (``--overwrite``) goes first.

    A directory cannot be swapped atomically with ``os.replace`` when the target exists, so the old store is
    moved aside, then removed (put back if the move fails).
    """
    aside = None
    if final.exists():
        aside = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(final, aside)
    try:
        os.replace(tmp, final)
    except BaseException:
        if aside is not None:
            os.replace(aside, final)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def commit_path(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move a finished output (a file or a directory store) to ``final``.

    Without ``overwrite`` a no-replace rename (:func:`impeccable.core.atomic.rename_noreplace`): an output that
    appeared meanwhile is left alone. A file gets the mode any new file gets (as the single process's outputs).

    Raises:
        FileExistsError: Something is at ``final`` and ``overwrite`` is False.
    """
    from impeccable.core.atomic import rename_noreplace

    tmp, final = Path(tmp), Path(final)
    if tmp.is_file():
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    if not overwrite:
        rename_noreplace(tmp, final)
    elif tmp.is_file():
        os.replace(tmp, final)
    else:
        replace_dir(tmp, final)


def sync_file(path: str | Path) -> None:
    """Flush a file to disk (a done-flag written next must never outlive the data it vouches for)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
