"""The challenge's folder layout, filled with synthetic pairs (``impeccable-synth``).

``OUT_DIR/<id>/seismicCubes_RFC_fullstack_2023.<id>.npy`` (clean) and ``OUT_DIR/<id>/seismic_w_noise_vol_<id>.npy``
(noisy), the names :mod:`impeccable.data.challenge` reads (its constants), from the generators of
:mod:`impeccable.data.families`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from impeccable.core.atomic import atomic_write
from impeccable.core.errors import InputError, OutputError
from impeccable.data.challenge import clean_name, noisy_name
from impeccable.data.config import SynthConfig
from impeccable.data.synth import MIN_SHAPE, resolve_noise_level


def volume_ids(seed: int, volumes: int) -> list[str]:
    """Distinct 8-digit ids for ``volumes`` volumes, a deterministic function of ``seed`` and the index."""
    ids: list[str] = []
    for index in range(volumes):
        attempt = 0
        while True:
            rng = np.random.default_rng((int(seed), 0x1D5, index, attempt))
            vid = str(int(rng.integers(10_000_000, 100_000_000)))
            if vid not in ids:
                break
            attempt += 1
        ids.append(vid)
    return ids


def volume_seed(seed: int, index: int) -> int:
    """The :func:`synthesize_pair` seed of volume ``index`` of a layout written with ``seed``."""
    return int(np.random.SeedSequence((int(seed), 0x5EED, index)).generate_state(1, np.uint64)[0] >> 1)


def write_challenge_layout(out_dir: str | Path, volumes: int, shape_tl: tuple[int, int, int] = (1259, 300, 300),
                           seed: int = 0, time_first: bool = True, noise_level: float | str | None = None,
                           progress: bool = True,
                           on_pair: Callable[[str, np.ndarray, np.ndarray], None] | None = None,
                           family: str = "a") -> list[tuple[str, Path, Path]]:
    """Write synthetic pairs in the challenge's layout.

    ``OUT_DIR/<id>/seismicCubes_RFC_fullstack_2023.<id>.npy`` (clean) and
    ``OUT_DIR/<id>/seismic_w_noise_vol_<id>.npy`` (noisy), float32, each written to a temporary file and
    renamed, so an interrupted run leaves no half-written volume.

    Args:
        out_dir: Output folder (created).
        volumes: Number of pairs (>= 1).
        shape_tl: ``(sample, inline, crossline)``, e.g. ``(1259, 300, 300)``.
        seed: Layout seed: ids and per-volume seeds derive from it and the volume index.
        time_first: Store ``(sample, inline, crossline)`` (``np.moveaxis(v, -1, 0)``), else
            ``(inline, crossline, sample)``.
        noise_level: As in :func:`synthesize_pair`, or a name of ``NOISE_LEVELS``; None draws per volume.
        progress: Show a tqdm bar.
        on_pair: Called as ``on_pair(id, clean, noisy)`` with the canonical ``(inline, crossline, sample)``
            float32 arrays of each pair after it is written (the CLI scores them).
        family: Generator: ``a`` (this module), ``b`` (:mod:`impeccable.data.synth_b`) or ``mix``
            (alternating by volume index), see :mod:`impeccable.data.families`.

    Returns:
        ``[(id, noisy_path, clean_path), ...]`` in volume order.

    Raises:
        InputError: Bad count, shape, seed, noise level or family.
        OutputError: The folder cannot be written.
    """
    from tqdm import tqdm

    if volumes < 1:
        raise InputError("number of synthetic volumes is below 1", received=volumes, expected=">= 1")
    if len(tuple(shape_tl)) != 3:
        raise InputError("synthetic shape is not 3 numbers", received=shape_tl, expected="(T, IL, XL)")
    t, il, xl = (int(v) for v in shape_tl)
    if min(il, xl) < MIN_SHAPE[0] or t < MIN_SHAPE[2]:
        raise InputError("synthetic volume shape is too small", received=f"T,IL,XL = {t},{il},{xl}",
                         expected=f"T >= {MIN_SHAPE[2]}, IL and XL >= {MIN_SHAPE[0]}")
    shape = (il, xl, t)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("synthetic seed is not a non-negative integer", received=seed, expected="0, 1, 2, ...")
    from impeccable.data.families import check_family, synthesize_family_pair

    check_family(family)
    resolve_noise_level(noise_level)  # fail before any work on a bad value
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError("cannot create the output folder", received=str(out_dir),
                          todo="pick a writable folder") from exc
    written = []
    ids = volume_ids(seed, volumes)
    for index, vid in enumerate(tqdm(ids, desc="synth", unit="vol", disable=not progress)):
        clean, noisy = synthesize_family_pair(family, index, volume_seed(seed, index), shape, noise_level)
        folder = out_dir / vid
        clean_path = folder / clean_name(vid)
        noisy_path = folder / noisy_name(vid)
        stored = (lambda v: np.moveaxis(v, -1, 0)) if time_first else (lambda v: v)
        save_volume(clean_path, stored(clean))
        save_volume(noisy_path, stored(noisy))
        written.append((vid, noisy_path, clean_path))
        if on_pair is not None:
            on_pair(vid, clean, noisy)
    return written


def save_volume(path: Path, array: np.ndarray) -> None:
    """``np.save`` through :func:`impeccable.core.atomic.atomic_write`: no partial file under the final name."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError("cannot write a synthetic volume", received=f"{path} ({exc.strerror or exc})",
                          todo="check free disk space and permissions") from exc
    with atomic_write(path, what="cannot write a synthetic volume") as out, out.open() as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def synthesize_layout(config: SynthConfig, echo: Callable[[str], None] = print) -> list[tuple[str, Path, Path, float]]:
    """Write the pairs of ``config``; report each id with its noisy-vs-clean challenge score.

    Returns:
        ``[(id, noisy_path, clean_path, score), ...]``.
    """
    from impeccable.data.synth import pair_score

    scores: dict[str, float] = {}

    def on_pair(vid, clean, noisy):
        scores[vid] = pair_score(clean, noisy)
        echo(f"{vid}  score {scores[vid]:.4f}")
        if config.preview is not None and len(scores) == 1:
            from impeccable.data.preview import save_pair_preview

            save_pair_preview(config.preview, clean, noisy,
                              title=f"synthetic {vid}: noisy vs clean score {scores[vid]:.3f}")

    written = write_challenge_layout(config.out_dir, config.volumes, config.shape_tl, config.seed,
                                     time_first=config.time_first, noise_level=config.noise_level,
                                     progress=config.progress, on_pair=on_pair, family=config.family)
    return [(vid, noisy, clean, scores[vid]) for vid, noisy, clean in written]


__all__ = ["save_volume", "synthesize_layout", "volume_ids", "volume_seed", "write_challenge_layout"]
