"""The denoising run's settings: one frozen dataclass, ``None`` meaning "the default", resolved in one place."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from impeccable.core.amplitude import SCALES
from impeccable.core.errors import InputError

VIEWS = ("auto", "inline", "crossline", "both")
#: ``auto`` takes crossline sections when inline sections would be narrower than this and the crossline ones
#: wider (one crossline of a 3-D survey, a thin slab): a 1-trace "section" gives the network nothing to see.
NARROW_SECTION = 32


def _within(value, low: float, high: float) -> bool:
    """Whether ``value`` is a number in ``[low, high]`` (NaN, infinities and words are not)."""
    try:
        return low <= float(value) <= high
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class DenoiseConfig:
    """How to denoise one volume.

    Attributes:
        model: Model directory, ``.onnx`` or ``.plan`` [default: the shipped model].
        engine: Engine name [default: the fastest installed one for the model].
        tta: Flip TTA: also predict the trace-mirrored section and average.
        views: ``auto`` (inline sections, or crossline sections when the inline ones would be narrower than
            :data:`NARROW_SECTION` traces and the crossline ones wider: one crossline of a 3-D survey),
            ``inline``, ``crossline`` or ``both`` (average of the two section directions).
        batch_size: Model windows per engine call before TTA: sections, when they fit the window (a section
            tiled into k windows counts k). With TTA each call carries twice as many images.
        time_axis: Stored time axis of npy/HDF5 input: ``0``, ``2`` or ``auto``.
        scale: ``input`` (the volume's units, amplitude-preserving: the prediction mapped by a per-volume
            least-squares gain and offset fitted to the input), ``unit`` ([0, 1]) or ``uint8`` (challenge scale).
        strength: 0..1: output = input - strength x the estimated noise (1: the full denoising; 0: the input).
        removal_floor: A field-ready model's removal floor (:mod:`impeccable.core.removal_floor`): dB (-60 to 0)
            of the local output's power under which the removed part is left in, ``off``, or None for the card's.
        removal_floor_coherence: How many dB (0 to 30) that floor rises where the removed part is laterally
            coherent (reflector energy a network took for noise looks so; random and erratic noise does not), or
            None for the card's (the shipped card's: 10; 0 when a card is silent).
        overwrite: Replace an existing output.
        preview: PNG path for a noisy/denoised/difference picture of one inline.
        dataset: HDF5 dataset path.
        engine_options: Extra engine keyword arguments (``precision``, ``device``...).
        progress: Show a progress bar.
        iline_byte: SEG-Y trace-header byte of the inline number.
        xline_byte: SEG-Y trace-header byte of the crossline number.
        line_key: SEG-Y: read 2-D lines told apart by this trace-header byte [default: 3-D when the
            inline/crossline bytes give every trace its own cell, else 2-D lines keyed by the inline byte].
        cdp_byte: SEG-Y trace-header byte that orders the traces along a 2-D line (CDP).
        cluster: ``local`` (a new Dask cluster on this machine) or ``tcp://HOST:PORT`` (a running scheduler);
            None: one process (:mod:`impeccable.runtime.distributed`).
        workers: Workers of a ``local`` cluster [default: one per GPU, else half the cores].
        sample_interval: Milliseconds between samples (metres for depth) [default: what the file records; a
            ``.npy`` records nothing]. Sections are resampled to the model's interval and back when they differ;
            unknown, the data are taken to be at the model's interval (the run says so).
    """

    model: Path | None = None
    engine: str | None = None
    tta: bool = True
    views: str = "auto"
    batch_size: int = 4
    time_axis: int | str = "auto"
    scale: str = "input"
    strength: float = 1.0
    removal_floor: float | str | None = None
    removal_floor_coherence: float | None = None
    overwrite: bool = False
    preview: Path | None = None
    dataset: str | None = None
    engine_options: dict = field(default_factory=dict)
    progress: bool = True
    iline_byte: int = 189
    xline_byte: int = 193
    line_key: int | None = None
    cdp_byte: int = 21
    cluster: str | None = None
    workers: int | None = None
    sample_interval: float | None = None

    def __post_init__(self) -> None:
        """Refuse a setting no run can use, when the config is built (each message names the flag)."""
        if self.views not in VIEWS:
            raise InputError("unknown views", received=self.views, expected=" / ".join(VIEWS),
                             todo="pass --views auto, inline, crossline or both")
        if self.scale not in SCALES:
            raise InputError("unknown output scale", received=self.scale, expected=" / ".join(SCALES),
                             todo="pass --scale input, unit or uint8")
        if int(self.batch_size) < 1:
            raise InputError("batch size must be positive", received=self.batch_size, expected=">= 1",
                             todo="pass --batch-size 4")
        if self.sample_interval is not None and not float(self.sample_interval) > 0:
            raise InputError("sample interval must be positive", received=self.sample_interval,
                             expected="milliseconds between samples, e.g. 2 or 4", todo="pass --sample-interval 4")
        if self.removal_floor is not None and self.removal_floor != "off":
            if not _within(self.removal_floor, -60.0, 0.0):
                raise InputError("removal floor out of range", received=self.removal_floor,
                                 expected="dB from -60 to 0 (e.g. -13; lower: more of the model's removal applied) "
                                          "or off", todo="pass --removal-floor -13, or --removal-floor off")
        if self.removal_floor_coherence is not None:
            if not _within(self.removal_floor_coherence, 0.0, 30.0):
                raise InputError("removal floor coherence out of range", received=self.removal_floor_coherence,
                                 expected="dB from 0 to 30 (e.g. 10 for processed stacks; 0: off)",
                                 todo="pass --removal-floor-coherence 10, or leave it out")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise InputError("strength out of range", received=self.strength, expected="0..1 (1: the full denoising)",
                             todo="pass --strength 0.5, say")

    @property
    def view_list(self) -> tuple[str, ...]:
        """The section directions of the run, in the order they are predicted: ``views`` spelled out (``auto``
        before :meth:`for_shape` resolved it: inline)."""
        if self.views == "both":
            return ("inline", "crossline")
        return ("inline",) if self.views == "auto" else (self.views,)

    def for_shape(self, shape: tuple[int, int, int]) -> DenoiseConfig:
        """This config with ``views="auto"`` resolved for a canonical ``(inline, crossline, sample)`` shape."""
        if self.views != "auto":
            return self
        narrow = shape[1] < NARROW_SECTION and shape[0] > shape[1]
        return replace(self, views="crossline" if narrow else "inline")

    def segy_options(self) -> dict:
        """The SEG-Y reader's header-byte arguments."""
        return {"iline": self.iline_byte, "xline": self.xline_byte, "line_key": self.line_key, "cdp": self.cdp_byte}

    def resolved_model(self) -> Path:
        """The model path, the shipped model when none was given."""
        from impeccable.models import DEFAULT_MODEL_DIR

        return Path(self.model) if self.model is not None else DEFAULT_MODEL_DIR

    def resolved_engine(self) -> str:
        """The engine name, the fastest installed one when none was given."""
        from impeccable.runtime.engines import default_engine_name

        return self.engine or default_engine_name(self.resolved_model())
