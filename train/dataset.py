"""Training data: noisy/clean volume pairs, their per-volume statistics, and the sections the network sees.

A *source* is one noisy/clean pair that can be opened as canonical ``(inline, crossline, sample)`` arrays
(in memory, memory-mapped ``.npy``, the challenge layout, or an HDF5 section cache). A :class:`VolumeSet`
holds the sources with their min/max, opened lazily in each process (data-loader workers included: h5py
handles and memory maps must not cross a fork). :class:`SectionDataset` turns a key
``(section, augmentation seed)`` into one ``(noisy, clean)`` training image, so the whole sample order is a
pure function of the run's seed, the epoch and the step: a resumed run sees exactly the batches an
uninterrupted one would have seen, whatever the number of workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from impeccable.core.amplitude import ROBUST, VolumeStats, normalize, slice_figures, volume_stats
from impeccable.core.atomic import atomic_write
from impeccable.core.errors import DataError, InputError

INLINE, CROSSLINE = 0, 1
AXIS_NAMES = {INLINE: "inline", CROSSLINE: "crossline"}


# ---------------------------------------------------------------------------------------------------------
# Sources


class PairSource(Protocol):
    """One noisy/clean pair.

    Attributes:
        volume_id: Unique id (the challenge's ``<id>``, or ``syn-<i>``).
        cache_key: Identifies the files' content for the statistics cache; ``None``: never cached.
        known_stats: ``(noisy, clean)`` statistics when the source already stores them, else ``None``.
    """

    volume_id: str
    cache_key: str | None
    known_stats: tuple[VolumeStats, VolumeStats] | None

    def open(self) -> tuple[Any, Any]:
        """``(noisy, clean)``, each ``(inline, crossline, sample)`` array-like (numpy, memmap or h5py)."""


@dataclass
class ArrayPair:
    """A pair already in memory (tests, notebooks)."""

    volume_id: str
    noisy: np.ndarray
    clean: np.ndarray
    cache_key: str | None = None
    known_stats: tuple[VolumeStats, VolumeStats] | None = None

    def open(self) -> tuple[np.ndarray, np.ndarray]:
        return self.noisy, self.clean


def _file_key(*paths: Path) -> str:
    parts = []
    for p in paths:
        st = Path(p).stat()
        parts.append(f"{Path(p).resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


@dataclass
class NpyPair:
    """Two canonical ``(inline, crossline, sample)`` ``.npy`` files, memory-mapped (the synthetic cache)."""

    volume_id: str
    noisy_path: Path
    clean_path: Path
    known_stats: tuple[VolumeStats, VolumeStats] | None = None

    @property
    def cache_key(self) -> str:
        return _file_key(self.noisy_path, self.clean_path)

    def open(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.load(self.noisy_path, mmap_mode="r", allow_pickle=False),
                np.load(self.clean_path, mmap_mode="r", allow_pickle=False))


@dataclass
class ChallengePair:
    """A pair of the challenge layout, read through :func:`impeccable.data.challenge.load_pair`."""

    pair: Any  # impeccable.data.challenge.VolumePair
    time_axis: int | str = "auto"
    known_stats: tuple[VolumeStats, VolumeStats] | None = None

    @property
    def volume_id(self) -> str:
        return self.pair.volume_id

    @property
    def cache_key(self) -> str:
        return _file_key(self.pair.noisy, self.pair.clean)

    def open(self) -> tuple[np.ndarray, np.ndarray]:
        from impeccable.data.challenge import load_pair

        return load_pair(self.pair, time_axis=self.time_axis)


@dataclass
class CachedPair:
    """A pair inside an HDF5 section cache (:func:`impeccable.data.challenge.build_section_cache`)."""

    path: Path
    volume_id: str
    known_stats: tuple[VolumeStats, VolumeStats] | None = None
    cache_key: str | None = None

    def open(self) -> tuple[Any, Any]:
        from impeccable.data.challenge import open_section_cache

        entry = open_section_cache(self.path)[self.volume_id]
        return entry.noisy, entry.clean


def synthetic_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the synthetic volumes: volume ``i`` gets the same seed whatever ``n`` is (prefix-stable)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def synthetic_sources(n: int, shape: tuple[int, int, int], seed: int, cache_dir: Path,
                      progress: bool = True, log: Callable[[str], None] = print, family: str = "a") -> list[NpyPair]:
    """Generate (or reuse) ``n`` synthetic pairs as canonical ``.npy`` files in ``cache_dir``.

    Args:
        n: Number of volumes.
        shape: ``(T, IL, XL)`` of each volume; files hold ``(IL, XL, T)`` float32 (canonical, time last).
        seed: Run seed; volume ``i`` uses ``synthetic_seeds(seed, n)[i]``.
        cache_dir: Folder of the cache (kept across ``--resume``).
        progress: Show a progress bar.
        log: Receives one line when a generator changed and its cached volumes are rebuilt.
        family: ``a``, ``b`` or ``mix`` (:mod:`impeccable.data.families`). A family-``b`` file carries ``-b-``
            in its name, so the families never share a cached volume; family ``a`` keeps the older names.
    """
    from impeccable.data.families import check_family, family_of, generator_fingerprint, synthesize_family_pair

    check_family(family)
    t, il, xl = (int(v) for v in shape)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = cache_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    fingerprints = {"a": generator_fingerprint("a"), "b": generator_fingerprint("b")}
    for single, key in (("a", "generator"), ("b", "generator_b")):
        if manifest.get(key) not in (None, fingerprints[single]):
            log(f"synthetic generator {single} changed since {cache_dir} was written: regenerating its volumes")
            for p in cache_dir.glob("syn-*.npy"):
                if ("-b-s" in p.name) == (single == "b"):
                    p.unlink()
    manifest = {"generator": fingerprints["a"], "generator_b": fingerprints["b"],
                "axes": "(inline, crossline, sample)", "dtype": "float32"}
    with atomic_write(manifest_path) as f:
        f.tmp.write_text(json.dumps(manifest, indent=2) + "\n")

    sources = []
    seeds = synthetic_seeds(seed, n)
    todo = []
    for i, s in enumerate(seeds):
        single = family_of(family, i)
        tag = "" if single == "a" else f"-{single}"
        stem = f"syn-{i:04d}{tag}-s{s}-{t}x{il}x{xl}"
        src = NpyPair(f"syn-{i:04d}", cache_dir / f"{stem}-noisy.npy", cache_dir / f"{stem}-clean.npy")
        sources.append(src)
        if not (src.noisy_path.is_file() and src.clean_path.is_file()):
            todo.append((i, src, s))
    for i, src, s in tqdm(todo, desc="synthetic volumes", unit="volume", disable=not progress or not todo):
        clean, noisy = synthesize_family_pair(family, i, s, (il, xl, t))
        for path, volume in ((src.clean_path, clean), (src.noisy_path, noisy)):
            _save_npy_atomic(path, np.ascontiguousarray(volume, dtype=np.float32))
    return sources


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_write(path, what="cannot write a synthetic training volume") as out, out.open() as fh:
        np.save(fh, array, allow_pickle=False)


def challenge_sources(root: Path, min_ssim: float | None = None, time_axis: int | str = "auto",
                      log: Callable[[str], None] = print) -> list[PairSource]:
    """Pairs of a challenge-layout folder, or of an HDF5 section cache when ``root`` is an ``.h5`` file."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() in (".h5", ".hdf5"):
        from impeccable.data.challenge import open_section_cache

        with open_section_cache(root) as cache:
            out = [CachedPair(root, p.volume_id, (p.noisy_stats, p.clean_stats)) for p in cache]
        if not out:
            raise DataError("section cache holds no volume", received=str(root), expected="at least one pair")
        return out
    from impeccable.data.challenge import find_pairs

    time_axis = int(time_axis) if str(time_axis).isdigit() else time_axis
    pairs = find_pairs(root, min_ssim=min_ssim, time_axis=time_axis, report=log)
    return [ChallengePair(p, time_axis) for p in pairs]


# ---------------------------------------------------------------------------------------------------------
# Statistics and the volume set


def pair_stats(sources: Sequence[PairSource], cache_path: Path | None = None,
               progress: bool = True) -> list[tuple[VolumeStats, VolumeStats]]:
    """``(noisy, clean)`` min/max of every source, from the source, the JSON cache, or a chunked scan.

    Scanning a challenge pair reads ~900 MB, so results are kept in ``cache_path`` keyed by file path, size
    and modification time, and a resumed run starts at once.
    """
    cache: dict[str, Any] = {}
    if cache_path is not None and cache_path.is_file():
        cache = json.loads(cache_path.read_text())
    out, changed = [], False
    for src in tqdm(sources, desc="volume statistics", unit="volume", disable=not progress, leave=False):
        if src.known_stats is not None:
            out.append(src.known_stats)
            continue
        key = src.cache_key
        if key is not None and key in cache:
            n, c = cache[key]
            out.append((VolumeStats(**n), VolumeStats(**c)))
            continue
        noisy, clean = src.open()
        stats = (volume_stats(noisy), volume_stats(clean))
        for name, s in zip(("noisy", "clean"), stats):
            if not s.vmax > s.vmin:
                raise DataError(f"volume {src.volume_id}: {name} volume is constant", received=f"value {s.vmin:g}",
                                expected="a volume with at least two distinct values", todo="leave the pair out")
        out.append(stats)
        if key is not None:
            cache[key] = [vars(stats[0]), vars(stats[1])]
            changed = True
    if changed and cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache_path, what="cannot write the volume statistics cache") as cache_file:
            cache_file.tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return out


class VolumeSet:
    """The run's volumes with their statistics, opened lazily once per process.

    Args:
        sources: The pairs.
        stats: ``(noisy, clean)`` statistics of each pair (:func:`pair_stats`).
    """

    def __init__(self, sources: Sequence[PairSource], stats: Sequence[tuple[VolumeStats, VolumeStats]]):
        if len(sources) != len(stats):
            raise ValueError("one statistics pair per source")
        self.sources = list(sources)
        self.stats = list(stats)
        self._opened: dict[int, tuple[Any, Any]] = {}
        self._pid = os.getpid()
        self.shapes = [tuple(int(v) for v in self.arrays(i)[0].shape) for i in range(len(self.sources))]
        for i, shape in enumerate(self.shapes):
            if len(shape) != 3:
                raise DataError(f"volume {self.ids[i]} is not 3-D", received=shape,
                                expected="(inline, crossline, sample)")

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def ids(self) -> list[str]:
        return [s.volume_id for s in self.sources]

    def __getstate__(self) -> dict:
        # Workers started with "spawn" re-open their own memory maps / HDF5 handles instead of pickling data.
        state = dict(self.__dict__)
        state["_opened"] = {}
        return state

    def arrays(self, i: int) -> tuple[Any, Any]:
        """``(noisy, clean)`` of volume ``i``, canonical ``(inline, crossline, sample)``, opened in this process."""
        if os.getpid() != self._pid:  # a forked worker: never share the parent's file handles
            self._opened, self._pid = {}, os.getpid()
        if i not in self._opened:
            self._opened[i] = self.sources[i].open()
        return self._opened[i]

    def section(self, i: int, axis: int, index: int, normalized: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One vertical section of volume ``i``, noisy and clean.

        Args:
            i: Volume index.
            axis: ``INLINE`` (``vol[index, :, :]``) or ``CROSSLINE`` (``vol[:, index, :]``).
            index: Section position on that axis.
            normalized: Min-max scale each with its own volume's statistics (noisy with the noisy volume's,
                clean with the clean volume's), NaN/Inf read as 0; else the raw float32 samples.

        Returns:
            ``(noisy, clean)``, each ``(traces, samples)`` float32.
        """
        noisy, clean = self.arrays(i)
        sel = (index, slice(None), slice(None)) if axis == INLINE else (slice(None), index, slice(None))
        n, c = np.asarray(noisy[sel], dtype=np.float32), np.asarray(clean[sel], dtype=np.float32)
        if not normalized:
            return n, c
        n_stats, c_stats = self.stats[i]
        return normalize(n, n_stats), normalize(c, c_stats)


def split_volumes(n_volumes: int, val_volumes: int, seed: int) -> tuple[list[int], list[int]]:
    """Split volume indices into training and validation, by volume (never by section).

    Returns:
        ``(train, val)`` sorted index lists; a seeded shuffle picks the validation volumes.

    Raises:
        InputError: Nothing would be left for training.
    """
    if val_volumes >= n_volumes:
        raise InputError("no volume left for training", received=f"{n_volumes} volume(s), --val-volumes {val_volumes}",
                         expected=f"--val-volumes < {n_volumes}", todo="add volumes or hold out fewer")
    order = np.random.default_rng([seed, 0x5E17]).permutation(n_volumes)
    return sorted(int(i) for i in order[val_volumes:]), sorted(int(i) for i in order[:val_volumes])


@dataclass(frozen=True)
class SectionRef:
    """One section: volume index, axis (``INLINE``/``CROSSLINE``) and position on that axis."""

    volume: int
    axis: int
    index: int


def section_refs(volumes: VolumeSet, indices: Sequence[int], stride: int) -> list[SectionRef]:
    """Every ``stride``-th inline and crossline section of the given volumes (the seed took 1 in 5)."""
    refs = []
    for i in indices:
        n_il, n_xl, _ = volumes.shapes[i]
        refs += [SectionRef(i, INLINE, k) for k in range(0, n_il, stride)]
        refs += [SectionRef(i, CROSSLINE, k) for k in range(0, n_xl, stride)]
    return refs


def section_size(volumes: VolumeSet, ref: SectionRef) -> tuple[int, int]:
    """``(traces, samples)`` of a section."""
    n_il, n_xl, n_t = volumes.shapes[ref.volume]
    return (n_xl if ref.axis == INLINE else n_il), n_t


# ---------------------------------------------------------------------------------------------------------
# Sections as training images


def _crop_start(valid: int, window: int, crop: int, rng: np.random.Generator) -> int:
    """Start of a ``crop``-long span in a ``window``-long axis whose first ``valid`` entries hold data.

    Starts are drawn so that at least half of the span (or all the data, when there is less) is data: crops
    of mostly zero padding would waste compute, while some padding keeps the network used to the padded
    border it meets at inference.
    """
    last = min(window - crop, max(0, valid - crop // 2))
    return int(rng.integers(0, last + 1))


def place_in_window(noisy: np.ndarray, clean: np.ndarray, window: tuple[int, int], rng: np.random.Generator,
                    flip: bool = True, crop: tuple[int, int] | None = None,
                    pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The training image of one section: window-sized crop if larger, flip, pad at the end, crop.

    Args:
        noisy: ``(traces, samples)`` float32 in ``[0, 1]``.
        clean: Same shape.
        window: ``(rows, cols)`` model window.
        rng: Source of the random crop offsets and flip.
        flip: Mirror the trace axis with probability 1/2 (before padding, as flip TTA does at inference).
        crop: ``(rows, cols)`` random crop of the padded window, or ``None``.
        pad_value: What fills the window beyond the data, in input and target alike (the card's padding, as
            the runtime pads).

    Returns:
        ``(noisy, clean)``, each ``(1, rows, cols)`` float32 (``crop`` or ``window`` sized).
    """
    rows, cols = noisy.shape
    # A section larger than the window: a random window-sized piece (inference tiles such sections).
    r0 = int(rng.integers(0, rows - window[0] + 1)) if rows > window[0] else 0
    c0 = int(rng.integers(0, cols - window[1] + 1)) if cols > window[1] else 0
    noisy, clean = noisy[r0:r0 + window[0], c0:c0 + window[1]], clean[r0:r0 + window[0], c0:c0 + window[1]]
    if flip and rng.random() < 0.5:
        noisy, clean = noisy[::-1], clean[::-1]
    rows, cols = noisy.shape
    out = np.full((2, window[0], window[1]), pad_value, dtype=np.float32)
    out[0, :rows, :cols] = noisy
    out[1, :rows, :cols] = clean
    if crop is not None:
        a = _crop_start(rows, window[0], crop[0], rng)
        b = _crop_start(cols, window[1], crop[1], rng)
        out = out[:, a:a + crop[0], b:b + crop[1]]
    return np.ascontiguousarray(out[0:1]), np.ascontiguousarray(out[1:2])


class SectionDataset(Dataset):
    """Training images of sections; the key ``(section number, augmentation seed)`` fixes everything random.

    Args:
        volumes: The volume set.
        refs: The sections to draw from.
        window: ``(rows, cols)`` model window.
        crop: Optional random crop ``(rows, cols)``.
        flip: Random trace-axis flip.
        clean_fraction: Probability that an image's input is its clean section (an identity example), drawn from
            the key's augmentation seed so the stream stays a pure function of the key.
        scaling: ``minmax`` (the seed's: input and target each on its own volume's min-max, zero padding) or
            ``robust`` (field-ready, :func:`robust_pair`: field-like traits, the target in the input's units,
            robust scaling, padding at the data's zero level).
        field_mix: With ``robust``: how often field-like traits are drawn (:mod:`impeccable.data.synth_field`).
        section_gain: With ``robust``: the card's section gain (:mod:`impeccable.core.section_gain`), which
            balances input and target alike, computed from the whole section's input as at inference; or None.
    """

    def __init__(self, volumes: VolumeSet, refs: Sequence[SectionRef], window: tuple[int, int],
                 crop: tuple[int, int] | None = None, flip: bool = True, clean_fraction: float = 0.0,
                 scaling: str = "minmax", field_mix=None, section_gain=None):
        from impeccable.data.synth_field import FieldMix

        self.volumes, self.refs, self.window, self.crop, self.flip = volumes, list(refs), window, crop, flip
        self.clean_fraction = clean_fraction
        self.scaling = scaling
        self.field_mix = field_mix or FieldMix()
        self.section_gain = section_gain

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        number, aug_seed = key
        ref = self.refs[number]
        if self.scaling == "robust":
            return self._robust_item(ref, np.random.default_rng(aug_seed))
        noisy, clean = self.volumes.section(ref.volume, ref.axis, ref.index)
        rng = np.random.default_rng(aug_seed)
        # Drawn only when asked for, so that runs without identity examples keep their exact sample stream.
        if self.clean_fraction > 0 and rng.random() < self.clean_fraction:
            noisy = clean
        x, y = place_in_window(noisy, clean, self.window, rng, flip=self.flip, crop=self.crop)
        return torch.from_numpy(x), torch.from_numpy(y)


    def _robust_item(self, ref: SectionRef, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        from impeccable.data.synth_field import field_section

        noisy, clean = self.volumes.section(ref.volume, ref.axis, ref.index, normalized=False)
        noisy, clean = field_section(np.nan_to_num(noisy), np.nan_to_num(clean), rng, self.field_mix)
        if self.clean_fraction > 0 and rng.random() < self.clean_fraction:
            noisy = clean
        x, y = robust_pair(noisy, clean, rng)
        if self.section_gain is not None:
            gains = self.section_gain.gains(x[None])
            x, y = self.section_gain.balance(x[None], gains)[0], self.section_gain.target(y[None], gains)[0]
        x, y = place_in_window(x, y, self.window, rng, flip=self.flip, crop=self.crop, pad_value=ROBUST.pad_value)
        return torch.from_numpy(x), torch.from_numpy(y)


def robust_pair(noisy: np.ndarray, clean: np.ndarray, rng: np.random.Generator | None = None,
                jitter: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Input and target of a field-ready model: both scaled with the NOISY section's robust figures.

    The target is the clean section in the input's units (:func:`impeccable.data.synth_field.in_input_units`
    made them share units), so nothing in it is a level or a gain the input does not determine (DESIGN §3).
    At inference the figures are the whole volume's, not the section's: ``jitter`` (a random factor
    ``exp(+-jitter)`` on the spread, and a shift of the center by up to a tenth of it) teaches the network that
    they vary.

    Args:
        noisy: ``(traces, samples)`` float32, input units.
        clean: Same shape and units.
        rng: Draws the jitter; None: none.
        jitter: Log-range of the spread's random factor.

    Returns:
        ``(x, y)`` float32: ``x`` clipped as the runtime clips, ``y`` not (the network's output is linear).
    """
    center, spread = slice_figures(noisy)
    if rng is not None:
        spread *= float(np.exp(rng.uniform(-jitter, jitter)))
        center += float(rng.uniform(-0.1, 0.1)) * spread
    stats = VolumeStats(float(noisy.min()), float(noisy.max()), center=center, spread=spread)
    offset, gain = ROBUST.affine(stats)
    y = ((clean - np.float32(offset)) * np.float32(gain) + np.float32(0.5)).astype(np.float32)
    return ROBUST.normalize(noisy, stats), y


def epoch_keys(n_sections: int, steps: int, global_batch: int, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The ``(section, augmentation seed)`` keys of one epoch, ``steps * global_batch`` of them.

    Sections come in seeded random permutations, chained when an epoch needs more than one pass, so every
    batch is full and equally long on every process.
    """
    rng = np.random.default_rng([seed, epoch, 0xE70C])
    need = steps * global_batch
    order = np.concatenate([rng.permutation(n_sections) for _ in range(-(-need // n_sections))])[:need]
    aug = rng.integers(0, 2**63 - 1, size=need, dtype=np.int64)
    return [(int(a), int(b)) for a, b in zip(order, aug)]


def process_keys(keys: Sequence[tuple[int, int]], start_step: int, batch: int, rank: int,
                 world: int) -> list[tuple[int, int]]:
    """This process's keys from ``start_step`` on: slice ``rank`` of every global batch."""
    out = []
    global_batch = batch * world
    for s in range(start_step * global_batch, len(keys), global_batch):
        out += keys[s + rank * batch: s + (rank + 1) * batch]
    return out
