"""The data stage's settings: one frozen dataclass per job (``impeccable-synth`` maps its flags onto
:class:`SynthConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SynthConfig:
    """What ``impeccable-synth`` makes.

    Attributes:
        out_dir: Output folder: ``OUT_DIR/<id>/seismicCubes_RFC_fullstack_2023.<id>.npy`` (clean) and
            ``OUT_DIR/<id>/seismic_w_noise_vol_<id>.npy`` (noisy).
        volumes: Number of pairs.
        shape_tl: ``(sample, inline, crossline)`` of each volume.
        seed: Layout seed (ids and volumes derive from it).
        time_first: Store ``(sample, inline, crossline)``; else ``(inline, crossline, sample)``.
        noise_level: Noise RMS / clean RMS, a name (``moderate``, ``strong``), or None to draw a target
            score per volume.
        preview: PNG of the first pair, or None.
        progress: Show a progress bar.
        family: Generator family: ``a``, ``b`` or ``mix`` (alternating by volume index).
    """

    out_dir: Path
    volumes: int = 1
    shape_tl: tuple[int, int, int] = (1259, 300, 300)
    seed: int = 0
    time_first: bool = True
    noise_level: float | str | None = None
    preview: Path | None = None
    progress: bool = True
    family: str = "a"

    def __post_init__(self) -> None:
        """Refuse a noise level neither generator family reads, before any work."""
        from impeccable.data.synth import resolve_noise_level
        from impeccable.data.synth_b import resolve_noise_level_b

        resolve_noise_level(self.noise_level)
        resolve_noise_level_b(self.noise_level)
