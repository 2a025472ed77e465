"""What a model expects of its input, read once from its card: window, scaling, padding, sample interval.

Every stage that feeds sections to a network (the runtime's drivers, training's validation, adaptation, the
exporter's checks) asks this one object, so that a model is always fed as it was trained (DESIGN §2-3)::

    io = ModelIO.from_card(card)
    unit = io.normalize(raw_sections, stats)                        # volume units -> model units
    pred = tiling.predict_sections(unit, engine, io.window, tta, batch,
                                   pad_value=io.pad_value, resampling=io.resampling(data_interval_ms),
                                   guard=io.output_guard, gain=io.section_gain)
    out = io.scaling.denormalize(pred, stats)                       # model units -> volume units
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from impeccable.core.amplitude import Scaling, VolumeStats
from impeccable.core.errors import InputError
from impeccable.core.output_guard import OutputGuard
from impeccable.core.resample import Resampling
from impeccable.core.section_gain import SectionGain

#: The challenge's and the synthetic generators' sample interval: what cards without one were trained at.
DEFAULT_INTERVAL_MS = 4.0


@dataclass(frozen=True)
class ModelIO:
    """A model's input contract.

    Attributes:
        window: ``(traces, samples)`` of one model image.
        scaling: Volume units <-> model units.
        interval_ms: The sample interval the model was trained at, in ms (or m for depth-trained models).
        output_guard: What is done to each output section before the amplitude fit
            (:mod:`impeccable.core.output_guard`: the band guard, signal recovery): the card's ``output_guard``;
            field-ready cards without one get the band guard, min-max cards (v5, seed imports) nothing, so they
            run as before bit for bit.
        section_gain: The amplitude trend each section is balanced with before the network
            (:mod:`impeccable.core.section_gain`), or None (cards before v8).
    """

    window: tuple[int, int]
    scaling: Scaling
    interval_ms: float = DEFAULT_INTERVAL_MS
    output_guard: OutputGuard = OutputGuard()
    section_gain: SectionGain | None = None

    @classmethod
    def from_card(cls, card: dict) -> ModelIO:
        """The contract a model card states (older cards: min-max, zero padding, 4 ms)."""
        rows, cols = card["input_size"]
        interval = (card.get("sampling") or {}).get("interval_ms", DEFAULT_INTERVAL_MS)
        scaling = Scaling.of(card)
        guard = OutputGuard.from_card(card, robust=scaling.kind == "robust")
        return cls((int(rows), int(cols)), scaling, float(interval), guard, SectionGain.from_card(card))

    def with_window(self, window: tuple[int, int]) -> ModelIO:
        """The same contract with an engine's window (everything else, guard and gain included, is the card's)."""
        return replace(self, window=(int(window[0]), int(window[1])))

    def with_removal_floor(self, floor: float | str | None, coherence: float | None = None) -> ModelIO:
        """The contract with a run's removal floor (:mod:`impeccable.core.removal_floor`): dB, ``off``, or None
        for the card's; and how far it rises for a laterally coherent removed part (dB, or None for the card's).
        Only a field-ready card's output is in its input's units, which the floor compares."""
        if floor is None and coherence is None:
            return self
        if self.scaling.kind != "robust":
            raise InputError("a removal floor needs a field-ready model", received=f"{self.scaling.kind} scaling",
                             expected="a model whose card has robust scaling (v7 on)",
                             todo="leave out --removal-floor, or pick a field-ready model with --model")
        guard = self.output_guard
        if floor is not None:
            guard = replace(guard, removal_floor_db=None if floor == "off" else float(floor))
        if coherence is not None:
            if guard.removal_floor_db is None:
                raise InputError("a coherence raise needs a removal floor",
                                 received="no removal floor (the card's, or --removal-floor off)",
                                 expected="a floor in dB, e.g. -13",
                                 todo="leave out --removal-floor-coherence, or pass --removal-floor -13")
            guard = replace(guard, removal_floor_coherence_db=float(coherence))
        return replace(self, output_guard=guard)

    @property
    def pad_value(self) -> float:
        """What fills a model image beyond the data (the card's padding)."""
        return self.scaling.pad_value

    def normalize(self, block: np.ndarray, stats: VolumeStats) -> np.ndarray:
        """A block of a volume, any shape and real dtype, in the model's units (float32)."""
        return self.scaling.normalize(block, stats)

    def resampling(self, data_interval_ms: float | None) -> Resampling | None:
        """The resampling from data at ``data_interval_ms`` to the model's interval; None when unknown or equal."""
        return Resampling.between(data_interval_ms, self.interval_ms)
