"""The runtime's tiling: :mod:`impeccable.core.tiling`, the one copy of the inference math every stage uses."""

from impeccable.core.tiling import (  # noqa: F401 (re-exported)
    TilePlan,
    blend,
    default_overlap,
    merge,
    plan_tiles,
    predict_sections,
    split,
    window_starts,
)

__all__ = ["TilePlan", "blend", "default_overlap", "merge", "plan_tiles", "predict_sections", "split",
           "window_starts"]
