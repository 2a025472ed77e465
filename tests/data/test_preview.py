"""The run preview: one clip, labelled axes, spectra (impeccable.data.preview)."""

from __future__ import annotations

import numpy as np
import pytest

from impeccable.core.errors import InputError
from impeccable.data.preview import draw_run_preview, save_run_preview, section_axes


class Reader:
    """A SEG-Y-like reader: inline/crossline numbers and a time axis in ms (what segyio gives)."""

    def __init__(self, vol, samples=None):
        self.vol, self.shape = vol, vol.shape
        self.ilines, self.xlines = np.arange(100, 100 + vol.shape[0]), np.arange(300, 300 + 2 * vol.shape[1], 2)
        if samples is not None:
            self.samples = samples

    def read(self, inlines=slice(None), crosslines=slice(None)):
        return self.vol[inlines, crosslines]


def test_axes_say_numbers_and_time_or_that_the_interval_is_unknown():
    vol = np.zeros((4, 3, 50), np.float32)
    known = section_axes(Reader(vol, samples=np.arange(50) * 4.0 + 100), ("inline", 2))
    assert known["trace_label"] == "crossline" and known["sample_interval"] == 4.0 and known["start"] == 100
    assert known["section_label"] == "inline 102" and list(known["trace_numbers"]) == [300, 302, 304]
    across = section_axes(Reader(vol), ("crossline", 1))
    assert across["trace_label"] == "inline" and across["sample_interval"] is None
    assert across["section_label"] == "crossline 302"


@pytest.mark.parametrize("section", [("inline", 1), ("crossline", 0)])
def test_the_run_preview_is_written_for_either_section(tmp_path, section):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(5, 6, 120)).astype(np.float32)
    den = (0.5 * vol).astype(np.float32)
    kept = den[1:2] if section[0] == "inline" else den[:, 0:1]
    png = save_run_preview(tmp_path / "p.png", Reader(vol, samples=np.arange(120) * 2.0), section, kept, title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sections_of_different_shapes_are_refused(tmp_path):
    with pytest.raises(InputError, match="differ in shape"):
        draw_run_preview(tmp_path / "p.png", np.zeros((3, 40)), np.zeros((3, 41)))
