"""Where pip's NVIDIA wheels put the CUDA runtime, made visible to Polygraphy's loader (torch-free, no CUDA init).

Polygraphy 0.53 (``polygraphy.cuda``, used by the TensorRT engine and the plan check) looks for
``libcudart.so*`` in ``LD_LIBRARY_PATH``, ``/usr/local/cuda/lib64``, ``/usr/lib``, ``/lib`` and the CUDA 12
wheel's ``site-packages/nvidia/cuda_runtime/lib``. The CUDA 13 wheels (``nvidia-cuda-runtime`` 13, pulled by
``tensorrt-cu13`` and ``cuda-python`` 13) put it in ``site-packages/nvidia/cu13/lib``: on a pip-only machine
Polygraphy then finds nothing, falls back to a bare ``libcudart.so`` that no wheel ships, and the first GPU run
is an ``OSError``. :func:`expose_cudart` adds the wheel's folder to this process's ``LD_LIBRARY_PATH``, which
Polygraphy reads when it first searches, and it loads the library by the full path it finds there.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

#: Folders below ``site-packages`` that the NVIDIA runtime wheels install libcudart into, newest CUDA first.
WHEEL_LIB_DIRS = (("nvidia", "cu13", "lib"), ("nvidia", "cuda_runtime", "lib"))
CUDART_GLOB = "libcudart.so*"


def _site_roots() -> list[Path]:
    """Folders that may hold the ``nvidia`` namespace package: ``sys.path`` entries and where it is importable."""
    roots = [Path(p) for p in sys.path if p and os.path.isdir(p)]
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(loc).parent for loc in spec.submodule_search_locations]
    return list(dict.fromkeys(roots))


def cudart_dirs() -> list[Path]:
    """The wheel folders here that hold a ``libcudart.so*``, CUDA 13's first."""
    found = []
    for parts in WHEEL_LIB_DIRS:
        for root in _site_roots():
            folder = root.joinpath(*parts)
            if folder.is_dir() and any(folder.glob(CUDART_GLOB)):
                found.append(folder)
    return list(dict.fromkeys(found))


def expose_cudart() -> Path | None:
    """Put the CUDA runtime wheel's folder on this process's ``LD_LIBRARY_PATH``; returns it (None: none found).

    Call before the first ``polygraphy.cuda`` use. Idempotent; a folder already listed is not added twice. The
    dynamic loader itself read ``LD_LIBRARY_PATH`` at start-up, so this only helps loaders that search the
    variable themselves and open the full path, as Polygraphy does.
    """
    dirs = cudart_dirs()
    if not dirs:
        return None
    listed = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if str(dirs[0]) not in listed:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([str(dirs[0]), *listed])
    return dirs[0]
