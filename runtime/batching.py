"""How much one step of a run holds: inlines per block, sections per engine batch and per file access, images
per engine call (every driver sizes its work with these; the batch a memory budget allows is
:mod:`impeccable.runtime.memory`'s)."""

from __future__ import annotations

from impeccable.core import tiling

#: Bytes of float32 samples per block when scanning statistics or writing the output (at least one inline).
BLOCK_BYTES = 32 << 20
#: Most sections per read or write of a view (see :func:`sections_per_slab`).
SLAB_SECTIONS = 8


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


def model_shape(shape: tuple[int, int, int], resampling=None) -> tuple[int, int, int]:
    """An ``(inline, crossline, sample)`` shape with its samples at the model's interval (what is tiled)."""
    return (shape[0], shape[1], model_samples(shape[2], resampling))


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
