"""``impeccable-denoise --cluster local`` in a child process whose engine holds one call (test helper).

Usage::

    python cluster_child.py AT READY [impeccable-denoise arguments...]

Every worker builds the stand-in engine of this file (a smooth map of [0, 1] into (0, 1), 16 x 48 window)
instead of the configured one; at its engine call ``AT`` (0-based) it writes ``READY`` and holds the call for
60 s: a worker busy in a long backend call when the client is told to stop. The factory is defined here, in
``__main__``, so that cloudpickle ships it by value to the worker processes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np



@dataclass(frozen=True)
class HoldingFactory:
    name: str
    at: int
    ready: str

    def __call__(self):
        at, ready = self.at, Path(self.ready)

        class Holding:
            window, name, precision, device, max_batch = (16, 48), "fake", "fp32", "cpu", None
            calls = 0

            def __call__(self, batch):
                if Holding.calls == at:
                    ready.write_text("held")
                    time.sleep(60)
                Holding.calls += 1
                mixed = 4.0 * (batch - 0.5) + 0.3 * np.roll(batch, 1, axis=-1) - 0.2 * np.roll(batch, 1, axis=-2)
                return (1.0 / (1.0 + np.exp(-mixed))).astype(np.float32)

            def close(self):
                pass

        return Holding()


def main() -> None:
    at, ready, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    import impeccable.runtime.distributed as runner

    runner.EngineFactory.from_config = classmethod(lambda cls, config: HoldingFactory("fake", at, ready))
    from impeccable.runtime.cli import main as denoise

    denoise(args, prog_name="impeccable-denoise")


if __name__ == "__main__":
    main()
