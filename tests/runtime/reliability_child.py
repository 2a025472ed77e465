"""``impeccable-denoise`` in a child process whose engine does something hostile at one call (test helper).

Usage::

    python reliability_child.py ACTION AT [impeccable-denoise arguments...]

The real engine is created as usual and wrapped; at engine call ``AT`` (0-based) the wrapper first does
``ACTION``, then runs the real call:

- ``none``: nothing.
- ``slow:<ready-file>``: writes ``ready-file``, then holds the call for 60 s with INT/TERM/HUP blocked in
  its thread: what a long backend call (C++, no return to the interpreter) looks like to Python.
- ``appear:<path>``: writes ``b"theirs"`` at ``path`` (another run, or the user, taking the output path).
- ``truncate:<path>``: truncates ``path`` to a third of its size (a file rewritten under the run).
- ``touch:<path>``: rewrites one byte at the end of ``path`` in place (same size, new modification time).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


class Hostile:
    """Wraps an engine; acts once, at call ``at``."""

    def __init__(self, engine, action: str, at: int):
        self.engine, self.action, self.at, self.calls = engine, action, at, 0

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def __call__(self, batch):
        if self.calls == self.at:
            kind, _, arg = self.action.partition(":")
            if kind == "slow":
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
                Path(arg).write_text(str(os.getpid()))
                time.sleep(60)
            elif kind == "appear":
                Path(arg).write_bytes(b"theirs")
            elif kind == "truncate":
                os.truncate(arg, os.path.getsize(arg) // 3)
            elif kind == "touch":
                with open(arg, "r+b") as fh:
                    fh.seek(-1, os.SEEK_END)
                    last = fh.read(1)
                    fh.seek(-1, os.SEEK_END)
                    fh.write(last)
                os.utime(arg, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
        self.calls += 1
        return self.engine(batch)

    def close(self) -> None:
        self.engine.close()


def main() -> None:
    action, at, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    import impeccable.runtime.engines as engines

    real = engines.create_engine
    engines.create_engine = lambda *a, **k: Hostile(real(*a, **k), action, at)
    from impeccable.runtime.cli import main as denoise

    denoise(args, prog_name="impeccable-denoise")


if __name__ == "__main__":
    main()
