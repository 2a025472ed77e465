"""The memory bound of ``--batch-size``: one function every driver calls (file pipeline, API, cluster).

A run's peak resident memory is, measured per engine and precision (``benchmarks/memory.py``), a straight line
in the images of one engine call: ``base + per_image * images``. The figures sit beside each engine's registry
entry (``EngineSpec.memory`` in :mod:`impeccable.runtime.engines`); this module turns them into the largest
batch whose peak stays within :data:`MEMORY_SHARE` of the memory available when the run starts.

Numpy only: no engine is imported (the registry entry is data).
"""

from __future__ import annotations

from impeccable.core import tiling
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.engines import ENGINES

#: Share of the memory available at the start that a run's peak (engine, model and batch) may take.
MEMORY_SHARE = 0.25
#: On a CPU a run's peak may also not exceed this multiple of the default ``--batch-size``'s: a CPU engine shows no
#: consistent gain per image past a few images per call (benchmarks/results/2026-12-06-memory-cpu.md: ONNX Runtime
#: and OpenVINO bf16 no faster per image at 8 or 16 images than at 4; OpenVINO fp32 within the shared machine's
#: noise), so a larger batch mostly buys memory. GPUs do gain from larger batches: there the budget alone bounds it.
CPU_CEILING = 1.5
#: The image size the registry's per-image figures were measured at (the shipped model's window); a model with
#: another window scales ``per_image`` by its pixel count.
MEASURED_WINDOW = (320, 1280)
#: ``(base, per_image)`` bytes for an engine or precision without measured figures (torch, int8 graphs, TensorRT's
#: host side): above every measured one (at most 0.6 GB + 0.29 GB per image), so an unmeasured engine is bounded at
#: least as tightly as the worst measured.
FALLBACK = (1_000_000_000, 400_000_000)


def memory_budget() -> int:
    """Bytes a run's peak may take: :data:`MEMORY_SHARE` of the memory available now (Linux), else 4 GB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * MEMORY_SHARE)
    except (OSError, ValueError, IndexError):
        pass
    return 4 << 30


def worker_budget(memory_limits: list[int | None]) -> int | None:
    """Bytes each cluster worker's run may take: :data:`MEMORY_SHARE` of the smallest worker memory limit.

    Every worker runs its own engine, so the bound is per worker, against the memory dask gives it (a local
    cluster splits the machine's memory between its workers). None when no worker has a limit (then the
    client machine's :func:`memory_budget` applies).
    """
    limits = [int(m) for m in memory_limits if m]
    return int(min(limits) * MEMORY_SHARE) if limits else None


def engine_memory(engine: str | None, precision: str | None, window: tuple[int, int]) -> tuple[int, int]:
    """``(base, per_image)`` peak bytes of ``engine`` in ``precision`` for images of ``window``.

    From the registry's measured figures (:attr:`EngineSpec.memory`), the engine's default precision when
    ``precision`` is None; :data:`FALLBACK` when the engine or precision has none.
    """
    spec = ENGINES.get(engine or "")
    figures = spec.memory.get(precision or spec.default_precision) if spec is not None else None
    base, per_image = figures or FALLBACK
    scale = (window[0] * window[1]) / (MEASURED_WINDOW[0] * MEASURED_WINDOW[1])
    return int(base), int(per_image * scale)


def windows_that_fit(budget: int, base: int, per_image: int, images_per_window: int) -> int:
    """Most model windows per engine call whose peak ``base + per_image * images`` stays within ``budget``.

    At least 1 (a run cannot take less than one window; when even that exceeds the budget, it is what runs).

    Args:
        budget: Bytes the run's peak may take.
        base: Peak bytes of the engine with its model, before any image (measured).
        per_image: Peak bytes each image of a call adds (measured).
        images_per_window: 2 with flip TTA (each window and its mirror), else 1.
    """
    return max(1, (int(budget) - int(base)) // (int(per_image) * int(images_per_window)))


def bounded_batch(shape: tuple[int, int, int], views: tuple[str, ...], window: tuple[int, int], requested: int,
                  tta: bool, budget: int | None = None, engine: str | None = None,
                  precision: str | None = None, cpu: bool = True) -> tuple[int, str]:
    """The batch (model windows per engine call before TTA) a run uses, and why it is not ``requested``.

    Bounded by the windows the volume has in its largest view (a bigger batch only costs memory), by the
    memory budget (:func:`memory_budget`) and, on a CPU, by :data:`CPU_CEILING` times the default batch's
    peak, at the engine's measured figures (:func:`engine_memory`).

    Args:
        shape: Canonical ``(inline, crossline, sample)`` shape.
        views: The views of the run.
        window: The model window ``(rows, cols)``.
        requested: ``--batch-size``.
        tta: Flip TTA (two images per window).
        budget: Bytes [default: :func:`memory_budget`].
        engine: Registry name of the engine that will run [None: :data:`FALLBACK` figures].
        precision: Its precision [None: the engine's default].
        cpu: Whether the engine computes on the CPU (applies :data:`CPU_CEILING`).

    Returns:
        ``(batch, note)``; ``note`` says why when memory bound it ("" otherwise).
    """
    counts = {"inline": (shape[0], shape[1]), "crossline": (shape[1], shape[0])}
    has = max(n * tiling.plan_tiles((1, traces, shape[2]), window).tiles_per_section
              for n, traces in (counts[v] for v in views))
    budget = memory_budget() if budget is None else int(budget)
    base, per_image = engine_memory(engine, precision, window)
    images = 2 if tta else 1
    limit, why = budget, f"memory budget {budget / 1e9:.1f} GB ({MEMORY_SHARE:.0%} of the available memory)"
    if cpu:
        ceiling = int(CPU_CEILING * (base + per_image * images * DenoiseConfig.batch_size))
        if ceiling < limit:
            limit, why = ceiling, (f"{CPU_CEILING:g}x the default batch's peak ({ceiling / 1e9:.1f} GB: a CPU "
                                   f"computes no faster at larger batches)")
    fits = windows_that_fit(limit, base, per_image, images)
    batch = max(1, min(int(requested), has, fits))
    if fits >= min(int(requested), has):
        return batch, ""  # bounded by the volume alone: the same calls, nothing to tell
    return batch, (f"--batch-size {requested} reduced to {batch}: {why}, at {base / 1e9:.1f} GB + "
                   f"{per_image * images / 1e9:.2f} GB per window ({engine or 'an engine'}, measured)")


def run_batch(config: DenoiseConfig, shape: tuple[int, int, int], window: tuple[int, int],
              engine_name: str | None = None, precision: str | None = None,
              budget: int | None = None, device: str | None = None) -> tuple[int, str]:
    """:func:`bounded_batch` for a run of ``config`` on a volume of canonical ``shape``: what every driver calls.

    Args:
        config: The run's settings (views, TTA, ``batch_size``, engine and its options).
        shape: Canonical ``(inline, crossline, sample)`` shape.
        window: The model window ``(rows, cols)``.
        engine_name: The engine that runs [default: the config's, resolved as the run resolves it].
        precision: Its precision [default: the config's ``engine_options``, else the engine's default].
        budget: Bytes [default: :func:`memory_budget`; on a cluster :func:`worker_budget`].
        device: Where the engine computes (``cpu``, ``cuda:0``) [default: the config's ``device`` option,
            resolved as the engines resolve ``auto``].
    """
    views = ("inline", "crossline") if config.views == "both" else (config.views,)
    name = engine_name or config.resolved_engine()
    device = device or config.engine_options.get("device") or ("cuda" if name == "tensorrt" else "cpu")
    if device == "auto":  # the engines' choice: CUDA when it is there (ONNX Runtime: when its provider is)
        from impeccable.runtime.engines import nvidia_gpu, ort_has_cuda

        device = "cuda" if (ort_has_cuda() if name == "onnxruntime" else nvidia_gpu()) else "cpu"
    return bounded_batch(tuple(shape), views, tuple(window), config.batch_size, config.tta, budget, engine=name,
                         precision=precision or config.engine_options.get("precision"),
                         cpu=str(device).startswith("cpu"))
