"""``impeccable-denoise`` in a fresh child process under a given memory budget (test helper).

Usage::

    python memory_child.py BUDGET_BYTES [impeccable-denoise arguments...]

The budget replaces what :func:`impeccable.runtime.memory.memory_budget` reads from ``/proc/meminfo`` (the
test machine's memory is not the test's to choose); everything else runs as the CLI does. After the run the
child prints its resident high-water mark (``VmHWM``, bytes) as the last line of stderr: ``peak <bytes>``.
"""

from __future__ import annotations

import sys


def main() -> int:
    budget, args = int(sys.argv[1]), sys.argv[2:]
    from impeccable.runtime import memory
    from impeccable.runtime.cli import main as cli

    memory.memory_budget = lambda: budget
    try:
        cli.main(args, standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    print(f"peak {peak}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
