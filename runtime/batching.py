"""How much one step of a run holds: inlines per block, sections per engine batch and per file access, images
per engine call, and the batch a memory budget allows (every driver sizes its work with these)."""

from __future__ import annotations

from impeccable.core import tiling

#: Bytes of float32 samples per block when scanning statistics or writing the output (at least one inline).
BLOCK_BYTES = 32 << 20
#: Most sections per read or write of a view (see :func:`sections_per_slab`).
SLAB_SECTIONS = 8
#: Peak bytes per pixel of one model image in an engine call, measured with the shipped EfficientNetV2-S
#: UNet++ on a CPU (issue 20: batch 32 images 9.4 GB against 8 images 2.7 GB, ~0.28 GB per 320 x 1280 image).
BYTES_PER_PIXEL = 700
#: Share of the memory available at the start that the engine's batch may take.
MEMORY_SHARE = 0.25


def block_inlines(shape: tuple[int, int, int], budget: int | None = None) -> int:
    """Inlines per block so that a float32 block of an ``(inline, crossline, sample)`` volume fits ``budget`` bytes.

    Args:
        shape: The volume's canonical shape.
        budget: Bytes per block [default: :data:`BLOCK_BYTES`]; a block holds at least one inline.
    """
    budget = BLOCK_BYTES if budget is None else budget
    return max(1, budget // max(1, shape[1] * shape[2] * 4))


def section_traces(shape: tuple[int, int, int], view: str) -> int:
    """Traces of one section of ``view`` of an ``(inline, crossline, sample)`` volume."""
    return shape[1] if view == "inline" else shape[0]


def section_count(shape: tuple[int, int, int], view: str) -> int:
    """Sections of ``view`` in an ``(inline, crossline, sample)`` volume."""
    return shape[0] if view == "inline" else shape[1]


def model_samples(samples: int, resampling=None) -> int:
    """Samples of a section once at the model's interval (``resampling``: a
    :class:`~impeccable.core.resample.Resampling`, or None)."""
    return samples if resampling is None else resampling.model_length(samples)


def sections_per_batch(reader, view: str, window: tuple[int, int], batch_size: int, resampling=None) -> int:
    """Sections per engine batch: ``batch_size`` windows' worth, a tiled section counting as its tiles (>= 1).

    Args:
        reader: Anything with a canonical ``shape``.
        resampling: The run's resampling to the model's interval (sections are tiled at that interval).
    """
    samples = model_samples(reader.shape[2], resampling)
    tiles = tiling.plan_tiles((1, section_traces(reader.shape, view), samples), window).tiles_per_section
    return max(1, batch_size // tiles)


def sections_per_slab(reader, view: str) -> int:
    """Sections per file access: up to :data:`SLAB_SECTIONS`, within :data:`BLOCK_BYTES` (>= 1).

    Reading or writing one section of the slow direction (a crossline of a time-last file) touches a sliver
    of every part of the file; doing it for a few sections at once costs about the same, so reads and
    writes go by slabs of sections even when an engine batch holds fewer.
    """
    traces = section_traces(reader.shape, view)
    return max(1, min(SLAB_SECTIONS, BLOCK_BYTES // max(1, traces * reader.shape[2] * 4)))


def images_per_call(engine, batch_size: int, tta: bool) -> int:
    """Images one engine call carries: ``batch_size`` sections, twice that with TTA, within the engine's limit."""
    images = batch_size * (2 if tta else 1)
    limit = getattr(engine, "max_batch", None)
    return max(1, min(images, limit) if limit else images)


def memory_budget() -> int:
    """Bytes an engine batch may take: :data:`MEMORY_SHARE` of the memory available now (Linux), else 4 GB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * MEMORY_SHARE)
    except (OSError, ValueError, IndexError):
        pass
    return 4 << 30


def bounded_batch(shape: tuple[int, int, int], views: tuple[str, ...], window: tuple[int, int], requested: int,
                  tta: bool, budget: int | None = None, resampling=None) -> tuple[int, str]:
    """The batch (model windows per engine call before TTA) a run uses, and why it is not ``requested``.

    Bounded by the windows the volume has in its largest view (a bigger batch only costs memory) and by a
    memory budget (:func:`memory_budget`) at :data:`BYTES_PER_PIXEL` per pixel of every image of a call.

    Args:
        shape: Canonical ``(inline, crossline, sample)`` shape.
        views: The views of the run.
        window: The model window ``(rows, cols)``.
        requested: ``--batch-size``.
        tta: Flip TTA (two images per window).
        budget: Bytes [default: :func:`memory_budget`].
        resampling: The run's resampling to the model's interval (sections are tiled at that interval).

    Returns:
        ``(batch, note)``; ``note`` says why when the memory budget bound it ("" otherwise).
    """
    samples = model_samples(shape[2], resampling)
    has = max(section_count(shape, v) * tiling.plan_tiles((1, section_traces(shape, v), samples),
                                                          window).tiles_per_section for v in views)
    budget = memory_budget() if budget is None else budget
    per_window = window[0] * window[1] * BYTES_PER_PIXEL * (2 if tta else 1)
    fits = max(1, budget // per_window)
    batch = max(1, min(int(requested), has, fits))
    if fits >= min(int(requested), has):
        return batch, ""  # bounded by the volume alone: the same calls, nothing to tell
    return batch, (f"--batch-size {requested} reduced to {batch}: memory budget {budget / 1e9:.1f} GB "
                   f"({MEMORY_SHARE:.0%} of the available memory) at ~{per_window / 1e9:.2f} GB per window")
