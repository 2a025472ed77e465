"""The sample interval a volume file records, and whether its vertical axis is depth.

Readers report ``sample_interval`` (milliseconds, or metres for depth; None when the file does not say) and
``depth`` (bool). SEG-Y reads its headers; HDF5, Zarr and MDIO their attributes (:data:`INTERVAL_KEYS`) and, for
Zarr/MDIO, the coordinate array of the sample dimension; ``.npy`` records nothing. ``--sample-interval MS``
overrides what a file says (and is the only source for ``.npy``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Attribute names read as the sample interval, in order; values in ms (a value under :data:`SECONDS_BELOW` is
#: taken as seconds: ``dt = 0.004``).
INTERVAL_KEYS = ("sample_interval_ms", "sample_interval", "sampling_interval", "sample_rate", "dt_ms", "dt")
#: Attribute values below this are seconds, not milliseconds (no survey is sampled finer than 0.1 ms).
SECONDS_BELOW = 0.1
#: Attribute names whose value ``depth`` marks a depth volume.
DOMAIN_KEYS = ("domain", "vertical_domain", "z_domain", "sample_domain")
#: Names of a sample dimension that is depth.
DEPTH_NAMES = ("depth", "z")


def positive(value) -> float | None:
    """``value`` as a positive finite float, else None."""
    try:
        out = float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return out if np.isfinite(out) and out > 0 else None


def interval_from_attrs(*attrs: Mapping) -> float | None:
    """The first sample interval any of ``attrs`` records (ms), None when none does."""
    for mapping in attrs:
        for key in INTERVAL_KEYS:
            if key in mapping:
                value = positive(mapping[key])
                if value is not None:
                    return value * 1000.0 if value < SECONDS_BELOW and not key.endswith("_ms") else value
    return None


def depth_from_attrs(*attrs: Mapping, dimension: str | None = None) -> bool:
    """Whether attributes (or the sample dimension's name) say the vertical axis is depth."""
    if dimension is not None and str(dimension).lower() in DEPTH_NAMES:
        return True
    return any(str(mapping.get(key, "")).lower() == "depth" for mapping in attrs for key in DOMAIN_KEYS)


def interval_from_coordinate(values: np.ndarray) -> float | None:
    """The spacing of a sample coordinate (1-D, its units), when regular; None otherwise."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size < 2:
        return None
    steps = np.diff(values)
    step = float(np.median(steps))
    if not step > 0 or np.abs(steps - step).max() > 1e-6 * max(1.0, step):
        return None
    return step
