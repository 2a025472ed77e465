"""The synthetic families by name: ``a`` (:mod:`impeccable.data.synth`), ``b`` (:mod:`impeccable.data.synth_b`),
and ``mix`` (volume ``i`` of a set is family ``a`` for even ``i``, ``b`` for odd ``i``).

Both generators share one convention, ``(seed, shape, noise_level) -> (clean, noisy)``, each
``(inline, crossline, sample)`` float32, so a caller picks one by name and never branches on the family.
A named noise level (``light``, ``moderate``, ``strong``) resolves in the family's own calibration table.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from impeccable.core.errors import InputError

FAMILIES = ("a", "b", "mix")


def check_family(family: str) -> str:
    """Return ``family`` if it names a family or the mixture.

    Raises:
        InputError: Anything else.
    """
    if family not in FAMILIES:
        raise InputError("unknown synthetic family", received=repr(family), expected=" or ".join(FAMILIES),
                         todo="pass a (the original generator), b (the independent one) or mix (alternating)")
    return family


def family_of(family: str, index: int) -> str:
    """The single family (``a`` or ``b``) of volume ``index`` of a set drawn from ``family``."""
    check_family(family)
    if family == "mix":
        return "a" if index % 2 == 0 else "b"
    return family


def synthesize_family_pair(family: str, index: int, seed: int, shape: tuple[int, int, int],
                           noise_level: float | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(clean, noisy)`` of volume ``index`` of a ``family`` set, each ``(inline, crossline, sample)`` float32.

    Args:
        family: ``a``, ``b`` or ``mix``.
        index: Position of the volume in its set (decides the family under ``mix``).
        seed: The volume's generator seed.
        shape: ``(inline, crossline, sample)``.
        noise_level: A number, a name of the family's table, or None (drawn per volume).
    """
    if family_of(family, index) == "a":
        from impeccable.data.synth import resolve_noise_level, synthesize_pair

        return synthesize_pair(seed, shape, resolve_noise_level(noise_level))
    from impeccable.data.synth_b import synthesize_pair_b

    return synthesize_pair_b(seed, shape, noise_level)


def generator_name(family: str) -> str:
    """Dotted name of the generator(s) behind ``family`` (for model cards)."""
    names = {"a": "impeccable.data.synth.synthesize_pair", "b": "impeccable.data.synth_b.synthesize_pair_b"}
    check_family(family)
    return names[family] if family != "mix" else f"{names['a']} (even volumes) + {names['b']} (odd volumes)"


def generator_fingerprint(single: str) -> str:
    """Hash of the source of family ``a`` or ``b``, so that a changed generator never reuses stale volumes."""
    if single == "a":
        import impeccable.data.synth as module
    else:
        import impeccable.data.synth_b as module
    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]
