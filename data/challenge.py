"""The challenge's folder layout: find noisy/clean volume pairs, read them memory-mapped, cache them in HDF5.

The challenge ships each training pair as ``seismic_w_noise_vol_<id>.npy`` (noisy) and
``seismicCubes_RFC_fullstack_2023.<id>.npy`` (clean), usually in a folder ``<id>/``, stored either time
first ``(1259, 300, 300)`` or time last ``(300, 300, 1259)``, and not always the same way within a pair.
Everything here hands volumes out in canonical ``(inline, crossline, sample)`` order (DESIGN §2).

Some real pairs do not correspond (nine are known); :func:`find_pairs` can drop pairs whose noisy-vs-clean
challenge score falls below a threshold, as the seed's ``0.7`` filter did.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from impeccable.core.amplitude import VolumeStats, volume_stats
from impeccable.core.atomic import atomic_write
from impeccable.core.errors import DataError, InputError, OutputError
from impeccable.core.npy import open_npy
from impeccable.core.geometry import resolve_time_axis, to_canonical
from impeccable.data.scoring import score_scoring_sections

#: The challenge's file names: ``<prefix><id>.npy``, the one place the reader and the synthetic writer take them.
NOISY_PREFIX = "seismic_w_noise_vol_"
CLEAN_PREFIX = "seismicCubes_RFC_fullstack_2023."
NOISY_PATTERN = re.compile(rf"^{re.escape(NOISY_PREFIX)}(?P<id>.+)\.npy$")
CLEAN_PATTERN = re.compile(rf"^{re.escape(CLEAN_PREFIX)}(?P<id>.+)\.npy$")


def noisy_name(volume_id: str) -> str:
    """The challenge's file name of a noisy volume: ``seismic_w_noise_vol_<id>.npy``."""
    return f"{NOISY_PREFIX}{volume_id}.npy"


def clean_name(volume_id: str) -> str:
    """The challenge's file name of a clean volume: ``seismicCubes_RFC_fullstack_2023.<id>.npy``."""
    return f"{CLEAN_PREFIX}{volume_id}.npy"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumePair:
    """One training pair of the challenge layout.

    Attributes:
        volume_id: The ``<id>`` shared by both file names.
        noisy: ``seismic_w_noise_vol_<id>.npy``.
        clean: ``seismicCubes_RFC_fullstack_2023.<id>.npy``.
    """

    volume_id: str
    noisy: Path
    clean: Path


def load_volume(path: str | Path, time_axis: int | str = "auto") -> np.ndarray:
    """Memory-map a ``.npy`` volume and view it in canonical order, without copying.

    Args:
        path: A ``.npy`` file holding a 3-D numeric array, in any axis order.
        time_axis: Stored time axis (``0``, ``1``, ``2``) or ``"auto"`` (the unique longest axis).

    Returns:
        A read-only ``(inline, crossline, sample)`` view of the stored dtype.

    Raises:
        InputError: Missing, unreadable, pickled (never unpickled) or non-numeric file, not 3-D, or an
            ambiguous time axis (the runtime's reader raises the same, from :func:`~impeccable.core.npy.open_npy`).
    """
    path = Path(path)
    stored = open_npy(path)
    try:
        axis = resolve_time_axis(stored.shape, time_axis)
    except InputError as exc:
        raise InputError(f"{path.name}: {exc.what}", received=exc.received, expected=exc.expected,
                         todo=exc.todo) from exc
    return to_canonical(stored, axis)


def load_pair(pair: VolumePair, time_axis: int | str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Both volumes of a pair as canonical memory-mapped views.

    Args:
        pair: The pair.
        time_axis: Applied to each file on its own: ``"auto"`` lets the two files differ in orientation;
            an integer is the stored time axis of both.

    Returns:
        ``(noisy, clean)``, each ``(inline, crossline, sample)`` of its stored dtype.

    Raises:
        DataError: A file cannot be read, or the canonical shapes differ.
    """
    noisy = load_volume(pair.noisy, time_axis)
    clean = load_volume(pair.clean, time_axis)
    if noisy.shape != clean.shape:
        raise DataError(f"volume {pair.volume_id}: noisy and clean shapes differ",
                        received=f"noisy {noisy.shape}, clean {clean.shape} (canonical)",
                        expected="the same (inline, crossline, sample) shape", todo="leave the pair out")
    return noisy, clean


def section_score(truth: np.ndarray, prediction: np.ndarray) -> float:
    """The challenge score of one volume against another, reading them in chunks (bounded memory).

    Equal to :func:`impeccable.data.scoring.score_volumes` but never holds a whole float64 copy: the
    per-volume min and max are scanned in chunks, then only the six scoring sections are cast to uint8.

    Args:
        truth: ``(inline, crossline, sample)`` volume, any real dtype.
        prediction: The same shape.
    """
    if truth.shape != prediction.shape:
        raise DataError("volumes to score differ in shape", received=f"{prediction.shape}", expected=f"{truth.shape}",
                        todo="give both in (inline, crossline, sample) order")
    t_stats, p_stats = volume_stats(truth), volume_stats(prediction)
    return score_scoring_sections(truth, prediction, (t_stats.vmin, t_stats.vmax), (p_stats.vmin, p_stats.vmax))


def find_pairs(root: str | Path, min_ssim: float | None = None, time_axis: int | str = "auto",
               report: Callable[[str], None] | None = None, progress: bool = False) -> list[VolumePair]:
    """Find the challenge's noisy/clean pairs anywhere under ``root``, skipping the unusable ones.

    A pair is skipped, with one line given to ``report``, when a partner file is missing, a file cannot be
    read (pickled, truncated, not 3-D, ambiguous time axis), the canonical shapes differ, or (with
    ``min_ssim``) the noisy volume's challenge score against the clean one is below ``min_ssim``. An id
    found in several places is paired within one folder; further copies are reported and ignored.

    Args:
        root: A folder in the challenge layout (files may sit at any depth).
        min_ssim: Minimum noisy-vs-clean challenge score (the seed dropped pairs below 0.7), or ``None``
            for no such check (it reads both volumes of every pair in full).
        time_axis: Stored time axis of every file, or ``"auto"`` (per file).
        report: Receives one line per skipped pair (default: this module's logger, level WARNING).
        progress: Show a progress bar over the pairs (worth it with ``min_ssim`` on full-size volumes).

    Returns:
        The usable pairs, sorted by id.

    Raises:
        DataError: ``root`` is missing, or no usable pair remains.
    """
    report = report or log.warning
    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder not found", received=str(root), expected="a folder in the challenge layout",
                        todo="check --data, or make synthetic pairs with impeccable-synth")
    noisy_files: dict[str, list[Path]] = defaultdict(list)
    clean_files: dict[str, list[Path]] = defaultdict(list)
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            for pattern, found in ((NOISY_PATTERN, noisy_files), (CLEAN_PATTERN, clean_files)):
                match = pattern.match(name)
                if match:
                    found[match["id"]].append(Path(dirpath) / name)
    pairs = []
    for volume_id in tqdm(sorted(set(noisy_files) | set(clean_files)), desc="pairs", unit="volume",
                          disable=not progress):
        pair = _pair_of(volume_id, sorted(noisy_files[volume_id]), sorted(clean_files[volume_id]), report)
        if pair is None:
            continue
        why = _unusable(pair, min_ssim, time_axis)
        if why:
            report(f"skipped volume {volume_id}: {why}")
            continue
        pairs.append(pair)
    if not pairs:
        raise DataError("no usable noisy/clean pair found", received=str(root),
                        expected="seismic_w_noise_vol_<id>.npy beside seismicCubes_RFC_fullstack_2023.<id>.npy",
                        todo="check the folder (skipped pairs were reported above)")
    return pairs


def _pair_of(volume_id: str, noisy: Sequence[Path], clean: Sequence[Path],
             report: Callable[[str], None]) -> VolumePair | None:
    """Pick one noisy and one clean file for an id, preferring files in the same folder."""
    if not noisy or not clean:
        have, lacks = ("noisy", "clean") if noisy else ("clean", "noisy")
        report(f"skipped volume {volume_id}: {have} file without a {lacks} partner ({(noisy or clean)[0]})")
        return None
    same_folder = [(n, c) for n in noisy for c in clean if n.parent == c.parent]
    n, c = same_folder[0] if same_folder else (noisy[0], clean[0])
    extra = len(noisy) + len(clean) - 2
    if extra:
        report(f"volume {volume_id}: {extra} more file(s) with this id ignored; using {n} and {c}")
    return VolumePair(volume_id, n, c)


def _unusable(pair: VolumePair, min_ssim: float | None, time_axis: int | str) -> str | None:
    """Why a pair cannot be used, or None."""
    try:
        noisy, clean = load_pair(pair, time_axis)
    except (DataError, InputError) as exc:
        return str(exc)
    if min_ssim is not None:
        score = section_score(clean, noisy)
        if not score >= min_ssim:
            return f"noisy-vs-clean score {score:.4f} below {min_ssim} (a mismatched pair?)"
    return None


# ---------------------------------------------------------------------------------------------------------
# HDF5 section cache (the seed's float16 + lzf cache).
#
# Layout: one group per volume id, datasets ``noisy`` and ``clean``, canonical (inline, crossline, sample)
# float16, lzf-compressed, chunked in 4 x 4 trace tiles over the whole trace length, so that an inline section
# (vol[i]) and a crossline section (vol[:, x]) each read the same number of chunks (75 for 300 x 300 x 1259).
# Measured on a (64, 300, 1259) synthetic volume: a full inline 29 ms, a 128 x 640 crop 6 ms; one-inline
# chunks read an inline in 7 ms but a crossline 60x slower. lzf barely compresses seismic float16 (~2 %).
# Group attributes hold the min/max of the float32 source volumes (before the float16 cast), which the
# per-volume min-max normalization needs.

CACHE_FORMAT = "impeccable-section-cache/1"
CACHE_CHUNK = (4, 4, 4096)  # clipped to each volume's shape
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class CacheEntry:
    """One pair read from a section cache (the training set's source of it is ``train.dataset.CachedPair``).

    Attributes:
        volume_id: The pair's id.
        noisy: ``(inline, crossline, sample)`` float16 dataset; slicing it reads only the chunks needed.
        clean: Same shape and dtype.
        noisy_stats: Min/max of the float32 noisy source volume.
        clean_stats: Min/max of the float32 clean source volume.
    """

    volume_id: str
    noisy: h5py.Dataset
    clean: h5py.Dataset
    noisy_stats: VolumeStats
    clean_stats: VolumeStats


class SectionCache:
    """A read-only section cache: ``cache[volume_id]`` is a :class:`CacheEntry`.

    h5py handles must not cross a ``fork``: open the cache inside each data-loader worker.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("section cache not found", received=str(self.path), expected="an .h5 file",
                            todo="build it with build_section_cache")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataError("cannot open the section cache", received=str(exc), expected="an HDF5 file",
                            todo="rebuild it with build_section_cache") from exc
        if self._file.attrs.get("format") != CACHE_FORMAT:
            found = self._file.attrs.get("format")
            self._file.close()
            raise DataError("not a section cache of this version", received=f"format {found!r}",
                            expected=CACHE_FORMAT, todo="rebuild it with build_section_cache")
        self.volume_ids: list[str] = sorted(self._file)

    def __getitem__(self, volume_id: str) -> CacheEntry:
        if volume_id not in self._file:
            raise DataError("volume not in the section cache", received=volume_id,
                            expected=f"one of {len(self.volume_ids)} ids", todo="rebuild the cache")
        group = self._file[volume_id]
        a = group.attrs

        def stats(name: str) -> VolumeStats:  # older caches lack *_fill, *_center, *_spread: None
            def opt(key: str) -> float | None:
                value = a.get(f"{name}_{key}")
                return None if value is None else float(value)

            return VolumeStats(float(a[f"{name}_min"]), float(a[f"{name}_max"]), int(a[f"{name}_nonfinite"]),
                               opt("fill"), opt("center"), opt("spread"))

        return CacheEntry(volume_id, group["noisy"], group["clean"], stats("noisy"), stats("clean"))

    def __iter__(self) -> Iterator[CacheEntry]:
        return (self[v] for v in self.volume_ids)

    def __len__(self) -> int:
        return len(self.volume_ids)

    def close(self) -> None:
        """Close the file (datasets of this cache become unreadable)."""
        self._file.close()

    def __enter__(self) -> SectionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_section_cache(path: str | Path) -> SectionCache:
    """Open a cache written by :func:`build_section_cache` for reading."""
    return SectionCache(path)


def build_section_cache(pairs: Iterable[VolumePair], cache_path: str | Path, time_axis: int | str = "auto",
                        chunks: tuple[int, int, int] = CACHE_CHUNK, overwrite: bool = False,
                        progress: bool = True) -> Path:
    """Write the pairs into one HDF5 file of canonical float16 volumes, for fast section reads.

    Volumes stream through in blocks of inlines; the file is written under a temporary name and renamed at
    the end, so a failed build leaves no cache behind.

    Args:
        pairs: Pairs from :func:`find_pairs`.
        cache_path: The ``.h5`` file to write.
        time_axis: Stored time axis of every file, or ``"auto"``.
        chunks: HDF5 chunk shape ``(inline, crossline, sample)``, clipped to each volume's shape.
        overwrite: Replace an existing cache.
        progress: Show a progress bar.

    Returns:
        ``cache_path``.

    Raises:
        OutputError: The cache exists and ``overwrite`` is false.
        DataError: A pair cannot be read, or its amplitudes do not fit float16.
    """
    cache_path = Path(cache_path)
    if cache_path.exists() and not overwrite:
        raise OutputError("section cache exists", received=str(cache_path), expected="a new path",
                          todo="pass overwrite=True or pick another path")
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    pairs = list(pairs)
    with atomic_write(cache_path, overwrite=overwrite, what="cannot write the section cache") as out:
        with h5py.File(out.tmp, "w") as f:
            f.attrs["format"] = CACHE_FORMAT
            f.attrs["axes"] = "(inline, crossline, sample)"
            for pair in tqdm(pairs, desc="section cache", unit="volume", disable=not progress):
                _write_pair(f, pair, time_axis, chunks)
    return cache_path


def _write_pair(f: h5py.File, pair: VolumePair, time_axis: int | str, chunks: tuple[int, int, int]) -> None:
    noisy, clean = load_pair(pair, time_axis)
    if pair.volume_id in f:
        raise DataError("two pairs share an id", received=pair.volume_id, expected="unique ids",
                        todo="pass each pair once")
    group = f.create_group(pair.volume_id)
    group.attrs["noisy_source"] = str(pair.noisy)
    group.attrs["clean_source"] = str(pair.clean)
    for name, volume in (("noisy", noisy), ("clean", clean)):
        stats = volume_stats(volume)
        if max(abs(stats.vmin), abs(stats.vmax)) > FLOAT16_MAX:
            raise DataError(f"volume {pair.volume_id}: {name} amplitudes overflow float16",
                            received=f"range {stats.vmin:g}..{stats.vmax:g}", expected=f"|x| <= {FLOAT16_MAX:g}",
                            todo="rescale the volume or train from the .npy files")
        group.attrs[f"{name}_min"] = stats.vmin
        group.attrs[f"{name}_max"] = stats.vmax
        group.attrs[f"{name}_nonfinite"] = stats.nonfinite
        for key in ("fill", "center", "spread"):  # the robust scaling's figures too
            if getattr(stats, key) is not None:
                group.attrs[f"{name}_{key}"] = getattr(stats, key)
        chunk = tuple(min(c, n) for c, n in zip(chunks, volume.shape))
        ds = group.create_dataset(name, shape=volume.shape, dtype=np.float16, chunks=chunk, compression="lzf")
        step = chunk[0]  # whole chunk rows per write: no chunk is compressed twice
        for start in range(0, volume.shape[0], step):
            ds[start:start + step] = np.asarray(volume[start:start + step], dtype=np.float16)
