"""The distributed run's plan and its on-disk state: slabs, the chunk-ownership check, done-flags, identity.

A run is cut into slabs of whole sections. Inline slabs serve three passes (statistics, inline predictions,
amplitude fit and output); crossline slabs serve the crossline predictions of ``--views crossline/both``.
Every slab length is a whole number of engine batches (so each batch holds the sections the single process
puts in it, and the engine sees the very same calls) and of output chunks (so each task owns the chunks it
writes: :func:`check_ownership`).

State lives in a run directory beside the output (``.<output>.impeccable-run/``): ``run.json`` (what the run
is: input, model, settings, plan), the temporary output, the scratch predictions and one done-flag per slab
and pass (a JSON file holding the slab's small result, written after its data, atomically), so ``--resume``
computes only the slabs without a flag, and refuses a run whose input, model or settings changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from impeccable.core.card import CARD_NAME
from impeccable.core.errors import InputError, OutputError

#: Float32 bytes of one slab when ``--slab-sections`` is not set: ~170 challenge-sized sections, which a GPU at
#: 600 sections/s computes in ~0.3 s against the scheduler's ~5 ms per task (benchmarks/distributed.py: 16
#: sections per slab would lose ~45% to it), small enough that a lost worker costs little.
SLAB_BYTES = 256 << 20


def default_slab_sections(shape: tuple[int, int, int], view: str) -> int:
    """Sections of ``view`` in :data:`SLAB_BYTES` of float32 (at least one)."""
    traces = shape[1] if view == "inline" else shape[0]
    return max(1, SLAB_BYTES // max(1, traces * shape[2] * 4))


@dataclass(frozen=True)
class Plan:
    """Slabs of one run.

    Attributes:
        inline: ``(start, stop)`` inline ranges (statistics, inline predictions, fit, output).
        crossline: ``(start, stop)`` crossline ranges (crossline predictions; empty for ``--views inline``).
        chunk: Canonical output chunk along the inlines.
    """

    inline: tuple[tuple[int, int], ...]
    crossline: tuple[tuple[int, int], ...]
    chunk: int

    def as_dict(self) -> dict:
        return {"inline": [list(s) for s in self.inline], "crossline": [list(s) for s in self.crossline],
                "chunk": self.chunk}


def slab_length(step: int, chunk: int, target: int) -> int:
    """The smallest common multiple of ``step`` (sections per batch) and ``chunk`` that reaches ``target``."""
    unit = math.lcm(max(1, step), max(1, chunk))
    return unit * max(1, -(-target // unit))


def ranges(count: int, length: int) -> tuple[tuple[int, int], ...]:
    """``(start, stop)`` of consecutive slabs of ``length`` over ``count`` sections (the last one shorter)."""
    return tuple((start, min(start + length, count)) for start in range(0, count, length))


def make_plan(shape: tuple[int, int, int], views: tuple[str, ...], steps: dict[str, int], chunk: int,
              target: int | None = None) -> Plan:
    """Slabs for a canonical ``(inline, crossline, sample)`` volume.

    Args:
        shape: Canonical shape.
        views: ``("inline",)``, ``("crossline",)`` or both.
        steps: Sections per engine batch of each view (:func:`impeccable.runtime.pipeline.sections_per_batch`).
        chunk: Output chunk along the inlines (1 for ``.npy``: any inline boundary is a chunk boundary).
        target: Sections per slab wanted [default: :func:`default_slab_sections`].
    """
    il_target = target or default_slab_sections(shape, "inline")
    inline = ranges(shape[0], slab_length(steps.get("inline", 1) if "inline" in views else 1, chunk, il_target))
    crossline = (ranges(shape[1], slab_length(steps["crossline"], 1, target or default_slab_sections(
        shape, "crossline"))) if "crossline" in views else ())
    plan = Plan(inline, crossline, chunk)
    check_ownership(plan.inline, chunk, shape[0])
    return plan


def check_ownership(slabs: tuple[tuple[int, int], ...], chunk: int, count: int) -> None:
    """Prove that no two slabs touch one chunk, and that the slabs cover every section once.

    Raises:
        OutputError: Two slabs share a chunk, or sections are missed or doubled (a planner bug).
    """
    owner: dict[int, int] = {}
    covered = 0
    for index, (start, stop) in enumerate(slabs):
        covered += stop - start
        for c in range(start // chunk, -(-stop // chunk)):
            if owner.setdefault(c, index) != index:
                raise OutputError("two tasks would write one output chunk", received=f"chunk {c}: slabs "
                                  f"{owner[c]} and {index}", expected="each chunk owned by one slab",
                                  todo="report this as a bug")
    if covered != count or any(a[1] != b[0] for a, b in zip(slabs, slabs[1:])):
        raise OutputError("the slabs do not cover the volume once", received=f"{covered} of {count} sections",
                          expected="consecutive slabs", todo="report this as a bug")


def check_trace_ownership(slabs: tuple[tuple[int, int], ...], index, traces: int) -> None:
    """Prove that no two inline slabs write one trace of a SEG-Y output, and that every trace is written.

    A SEG-Y output is one file whose traces the write tasks fill in place: a slab writes the traces of its
    inlines' cells (``index``: the ``(inline, crossline)`` file trace index, -1 where no trace is). On an
    irregular or crossline-sorted survey those traces are scattered through the file, so the inline ranges
    alone prove nothing: the traces are.

    Raises:
        OutputError: A trace would be written by two slabs (or twice by one), or by none (a planner bug).
    """
    import numpy as np

    owner = np.full(int(traces), -1, dtype=np.int64)
    for k, (start, stop) in enumerate(slabs):
        cells = np.asarray(index[start:stop]).ravel()
        mine = cells[cells >= 0]
        if np.unique(mine).size != mine.size or (mine >= owner.size).any():
            raise OutputError("a task would write one SEG-Y trace twice", received=f"slab {k}",
                              expected="one cell per trace", todo="report this as a bug")
        clash = np.flatnonzero(owner[mine] >= 0)
        if clash.size:
            t = int(mine[clash[0]])
            raise OutputError("two tasks would write one SEG-Y trace", received=f"trace {t}: slabs "
                              f"{owner[t]} and {k}", expected="each trace owned by one slab",
                              todo="report this as a bug")
        owner[mine] = k
    missing = np.flatnonzero(owner < 0)
    if missing.size:
        raise OutputError("the slabs do not write every SEG-Y trace", received=f"{missing.size} of {owner.size} "
                          f"traces unowned (first: {int(missing[0])})", expected="every trace owned by one slab",
                          todo="report this as a bug")


def model_identity(model: Path) -> dict:
    """The model's card hash (a directory: the card names the weights' hash) or the file's hash."""
    model = Path(model)
    target = model / CARD_NAME if model.is_dir() else model
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(model.resolve()), "sha256": digest.hexdigest()}


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place (a flag is whole or absent)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """The run directory of one output: identity, done-flags, scratch and temporary output.

    One client owns it while it runs: :meth:`open` locks the directory (``flock``, released when the client
    ends, however it ends), so a second client of the same output is refused whatever its flags, and never
    deletes or resumes the state of a run that is still alive.
    """

    _lock_fd: int | None = None

    def __init__(self, output: Path):
        self.output = Path(output)
        self.path = self.output.parent / f".{self.output.name}.impeccable-run"
        self.flags = self.path / "done"

    @classmethod
    def at(cls, path: Path) -> RunDir:
        """The run directory at ``path`` (a worker's view: it knows the directory, not the output)."""
        run = cls.__new__(cls)
        run.output, run.path, run.flags = None, Path(path), Path(path) / "done"
        return run

    def flag(self, kind: str, index: int) -> Path:
        return self.flags / f"{kind}-{index:06d}.json"

    def done(self, kind: str, index: int) -> dict | None:
        """The slab's recorded result, or None when it is not done."""
        path = self.flag(kind, index)
        return json.loads(path.read_text()) if path.is_file() else None

    def mark(self, kind: str, index: int, result: dict) -> None:
        write_json_atomic(self.flag(kind, index), result)

    def _claim(self) -> None:
        """Lock the directory for this client, or refuse: another live client holds it."""
        import errno
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = self.path / "owner.json"
            who = json.loads(owner.read_text()) if owner.is_file() else {}
            raise InputError("another client is running this output now", received=f"{self.path} (pid "
                             f"{who.get('pid', '?')} on {who.get('host', '?')})", expected="one client per output",
                             todo="wait for it to end or stop it, then rerun (--resume keeps its slabs)") from None
        except OSError as exc:  # a filesystem without locks: run unguarded, as before
            os.close(fd)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            return
        self._lock_fd = fd

    def release(self) -> None:
        """Let another client take the directory (the lock also goes when this process ends)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def open(self, identity: dict, resume: bool, overwrite: bool) -> bool:
        """Lock the directory, then create it or take an earlier attempt's; returns whether it resumes one.

        Raises:
            InputError: Another client runs this output now, ``--resume`` of a run with another input, model or
                settings, or an earlier attempt's state found without ``--resume``.
        """
        import socket

        self._claim()
        try:
            return self._open(identity, resume, overwrite)
        except BaseException:
            self.release()
            raise
        finally:
            if self._lock_fd is not None:
                write_json_atomic(self.path / "owner.json", {"pid": os.getpid(), "host": socket.gethostname()})

    def _open(self, identity: dict, resume: bool, overwrite: bool) -> bool:
        import shutil

        record = self.path / "run.json"
        if record.is_file():
            earlier = json.loads(record.read_text())
            if resume:
                changed = [k for k in identity if earlier.get(k) != identity[k]]
                if changed:
                    raise InputError("cannot resume: the run changed since the first attempt",
                                     received=f"{', '.join(changed)} differ ({self.path})",
                                     expected="the same input, model and settings",
                                     todo="rerun with the first attempt's options, or without --resume and "
                                          "with --overwrite to start again")
                return True
            if not overwrite:
                raise InputError("an interrupted run of this output exists", received=str(self.path),
                                 expected="no earlier attempt", todo="pass --resume to finish it, or --overwrite "
                                                                     "to start again")
        for entry in list(self.path.iterdir()):  # a dead attempt's state; the directory itself holds our lock
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        self.flags.mkdir(parents=True)
        write_json_atomic(record, identity)
        return False

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
        self.release()
