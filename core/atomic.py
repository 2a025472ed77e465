"""Atomic file writes: every writer of the toolkit fills a temporary file and commits it without clobbering.

One helper for every output (volumes, scratch memmaps, caches, checkpoints, previews, submissions), so the
contract of DESIGN §7 holds everywhere:

- The temporary file lies beside its target (same filesystem, so the commit is a rename), hidden, and is named
  after its owner: ``.<name>[.<tag>].<pid>.<host>.<random>.tmp``. A later run can then tell the leftovers of
  a dead process (killed by SIGKILL, a power cut, an OOM kill) from those of a live one and remove them
  (:func:`remove_stale_temps`).
- It is created with mode ``0o666`` less the umask, as any new file, and libraries that reopen it by path
  (``np.save``, h5py, safetensors, matplotlib, a copy) keep that mode.
- :meth:`AtomicFile.preallocate` reserves its final size with ``posix_fallocate``, so that a full disk fails
  at once, in one line, rather than as a SIGBUS in a memory map or an error deep in a library hours later.
- The commit is a no-replace rename (``renameat2(RENAME_NOREPLACE)``, else ``link`` + ``unlink``) unless
  ``overwrite``: a file that appeared at the target during the run is never replaced. The finished result is
  then kept under a free name that the error message gives (:class:`TargetAppeared`).
- :meth:`AtomicFile.abort` removes the temporary file; the target is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from impeccable.core.errors import OutputError

#: Errors of ``renameat2`` / ``link`` that mean "this filesystem cannot do it", not "the target exists".
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM, errno.EMLINK,
                errno.EXDEV, errno.EACCES}
#: Errors of ``posix_fallocate`` that mean the filesystem cannot preallocate (the write then goes unchecked).
_NO_FALLOCATE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _host() -> str:
    """This machine's name reduced to ``[A-Za-z0-9-]`` (no dots: they separate the fields of a temp name)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temp_path(target: str | Path, tag: str = "") -> Path:
    """A fresh temporary path beside ``target``: ``.<name>[.<tag>].<pid>.<host>.<random>.tmp`` (not created)."""
    target = Path(target)
    middle = f".{tag}" if tag else ""
    return target.with_name(f".{target.name}{middle}.{os.getpid()}.{_host()}.{secrets.token_hex(4)}.tmp")


_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.(?P<host>[A-Za-z0-9-]+)\.[0-9a-f]{8}\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Remove the temporary files (and temporary directory stores) of dead processes of this machine in
    ``directory``; return what went.

    Only names this module makes are considered, and only those whose owner (pid and host in the name) is
    not running: a live run's temp files, other machines' (a shared disk) and unrelated files stay.
    """
    directory = Path(directory)
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or match["host"] != host or pid_alive(int(match["pid"])):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):  # a Zarr store's temporary
                shutil.rmtree(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # raced with another cleaner, or not ours to remove: leave it
            continue
    return removed


#: The errnos of a write that found no room (disk full, quota, file size limit).
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_error(exc: OSError, path: str | Path, what: str = "cannot write the output") -> OutputError:
    """An OSError of a write as one line: disk full, quota, permissions, a vanished folder."""
    reason = exc.strerror or type(exc).__name__
    todo = ("free disk space or write elsewhere" if exc.errno in NO_ROOM
            else "check the path and its permissions")
    return OutputError(what, received=f"{reason} ({path})", expected="room and permission to write there", todo=todo)


def reserve_space(path: Path, size: int, target: Path | None = None) -> None:
    """Reserve ``size`` bytes for the existing file ``path`` now, so a full disk fails here and not mid-write.

    The file grows to at least ``size`` bytes (zeros). A sparse file written through a memory map would
    otherwise meet the full disk as SIGBUS at its first page without room, which kills the process with no
    message. Filesystems without ``fallocate`` are left as they are (their writes are still checked).

    Args:
        path: The file.
        size: Bytes.
        target: The file the user asked for, named in the error [default: ``path``].

    Raises:
        OutputError: Not enough space (the file is left as it was; the caller removes it).
    """
    if size <= 0:
        return
    target = Path(target or path)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.posix_fallocate(fd, 0, int(size))
    except OSError as exc:
        if exc.errno in _NO_FALLOCATE:
            return
        free = _free_bytes(target.parent)
        raise OutputError(f"not enough disk space for {target.name}",
                          received=f"{size / 1e9:.3f} GB needed, {free / 1e9:.3f} GB free in {target.parent}",
                          expected="room for the whole file before the work starts",
                          todo="free disk space or write elsewhere") from exc
    finally:
        os.close(fd)


class TargetAppeared(OutputError):
    """A file appeared at the target during the run: it was left alone, the result kept under another name.

    Attributes:
        kept: Where the finished result is.
    """

    def __init__(self, target: Path, kept: Path):
        self.kept = kept
        super().__init__("output appeared during the run and was left alone", received=str(target),
                         expected="a path no one else writes meanwhile",
                         todo=f"the result is kept as {kept}; pass --overwrite to replace, or rename it yourself")


def _renameat2(src: Path, dst: Path) -> bool:
    """``renameat2(src, dst, RENAME_NOREPLACE)``; False where the platform or filesystem lacks it.

    Raises:
        FileExistsError: ``dst`` exists (a dangling symlink counts).
    """
    func = getattr(_libc(), "renameat2", None)
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dst))
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(dst))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Rename ``src`` to ``dst`` unless something exists at ``dst`` (a dangling symlink counts).

    ``renameat2(RENAME_NOREPLACE)`` where the kernel and filesystem have it; else a hard link then unlink
    (also atomic); on filesystems with neither (some FUSE and SMB mounts) a check then rename, which leaves
    a race of microseconds instead of the whole run.

    Raises:
        FileExistsError: ``dst`` exists.
    """
    src, dst = Path(src), Path(dst)
    if _renameat2(src, dst):
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def keep_aside(tmp: Path, target: Path) -> Path:
    """Move a finished temp file (or store) to the first free ``<stem>.<pid>[-n]<suffix>`` beside ``target``."""
    for n in range(1000):
        kept = target.with_name(f"{target.stem}.{os.getpid()}{f'-{n}' if n else ''}{target.suffix}")
        try:
            rename_noreplace(tmp, kept)
            return kept
        except FileExistsError:
            continue
    return tmp


class AtomicFile:
    """A temporary file beside ``target``, committed into place by a no-replace rename.

    Create it, write to :attr:`tmp` (by path or through :meth:`open`), then :meth:`commit`; on failure
    :meth:`abort`. Also a context manager that aborts when its block raises (it does not commit by itself).

    Args:
        target: The final path.
        overwrite: Replace an existing target at commit (else an existing one is an error).
        tag: A word in the temp name telling what it is (``scratch``), for people looking at the folder.

    Attributes:
        path: The target.
        tmp: The temporary file (created empty, mode ``0o666`` less the umask), None once committed or aborted.
        mode: That mode, which the committed file gets whatever the library that wrote it chose.
        overwrite: As given; writers may set it before :meth:`commit`.

    Raises:
        OutputError: The temp file cannot be created (missing or unwritable folder).
    """

    def __init__(self, target: str | Path, overwrite: bool = False, tag: str = ""):
        self.path = Path(target)
        self.overwrite = overwrite
        tmp = temp_path(self.path, tag)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
            self.mode = os.stat(tmp).st_mode & 0o777  # 0o666 less the umask, as any new file
        except OSError as exc:
            raise write_error(exc, self.path, f"cannot create a file beside {self.path.name}") from exc
        self.tmp: Path | None = tmp

    def open(self, mode: str = "wb"):
        """The temp file opened by Python's :func:`open` (for ``np.save(fh, ...)`` and the like)."""
        return open(self.tmp, mode)

    def preallocate(self, size: int) -> None:
        """Reserve ``size`` bytes for the temp file now, so a full disk fails here and not mid-write
        (:func:`reserve_space`; on failure the temp file is removed)."""
        try:
            reserve_space(self.tmp, size, self.path)
        except OutputError:
            self.abort()
            raise

    def commit(self) -> Path:
        """Move the temp file to the target: replacing it only with ``overwrite``.

        Returns:
            The target.

        Raises:
            TargetAppeared: The target exists and ``overwrite`` is false (the result is kept aside).
            OutputError: The rename failed (target is a directory, folder vanished...); the temp is removed.
        """
        tmp, self.tmp = self.tmp, None
        try:
            # A library may have replaced the file by one of its own (safetensors writes 0o600): the output
            # gets the mode a new file gets here.
            if os.stat(tmp).st_mode & 0o777 != self.mode:
                os.chmod(tmp, self.mode)
            if self.overwrite:
                os.replace(tmp, self.path)
            else:
                rename_noreplace(tmp, self.path)
        except FileExistsError:
            raise TargetAppeared(self.path, keep_aside(tmp, self.path)) from None
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise write_error(exc, self.path, f"cannot move the result into place as {self.path.name}") from exc
        return self.path

    def abort(self) -> None:
        """Remove the temp file (idempotent); the target is untouched."""
        tmp, self.tmp = self.tmp, None
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is not None:
            self.abort()


def _free_bytes(directory: Path) -> int:
    try:
        st = os.statvfs(directory)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def atomic_write(target: str | Path, overwrite: bool = True, tag: str = "",
                 what: str | None = None) -> Iterator[AtomicFile]:
    """Write ``target`` through a temp file: committed when the block ends, removed when it raises.

    Example::

        with atomic_write(path) as f:
            np.save(f.tmp, array, allow_pickle=False)   # or: with f.open() as fh: ...

    Args:
        target: The final path.
        overwrite: Replace an existing target (default, for caches and artifacts the caller decided to
            rewrite); False refuses one that exists at commit (:class:`TargetAppeared`).
        tag: Word in the temp name.
        what: First part of the one-line message when a write fails [default: "cannot write <name>"].

    Raises:
        OutputError: Any OSError of the block or the commit, as one line (the temp file is removed).
    """
    handle = AtomicFile(target, overwrite=overwrite, tag=tag)
    try:
        yield handle
    except OSError as exc:
        handle.abort()
        raise write_error(exc, target, what or f"cannot write {Path(target).name}") from exc
    except BaseException:
        handle.abort()
        raise
    handle.commit()
