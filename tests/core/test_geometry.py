import numpy as np
import pytest

from impeccable.core.errors import InputError
from impeccable.core.geometry import from_canonical, pad_sections, resolve_time_axis, to_canonical


@pytest.mark.parametrize(
    ("shape", "axis", "expected"),
    [((1259, 300, 300), "auto", 0), ((300, 300, 1259), "auto", 2), ((300, 1259, 300), 1, 1),
     ((300, 300, 300), 0, 0), ((300, 300, 300), 2, 2), ((10, 20, 30), "2", 2)],
)
def test_resolve_time_axis(shape, axis, expected):
    assert resolve_time_axis(shape, axis) == expected


@pytest.mark.parametrize(
    ("shape", "axis", "match"),
    [((300, 300, 300), "auto", "not unique"), ((1259, 1259, 30), "auto", "not unique"),
     ((1, 534, 500), "auto", "middle one"), ((300, 1259, 300), "auto", "middle one"),
     ((10, 20), "auto", "2 dimension"), ((1, 2, 3, 4), "auto", "4 dimension"), ((10, 20, 30), 5, "out of range")],
)
def test_resolve_time_axis_errors(shape, axis, match):
    with pytest.raises(InputError, match=match):
        resolve_time_axis(shape, axis)


def test_time_first_keeps_inline_crossline_order():
    # (T, IL, XL) with distinct sizes: the canonical view must be (IL, XL, T), not (XL, IL, T) as .T gives.
    stored = np.arange(7 * 3 * 5, dtype=np.float32).reshape(7, 3, 5)
    canon = to_canonical(stored, 0)
    assert canon.shape == (3, 5, 7)
    assert canon[1, 4, 6] == stored[6, 1, 4]
    assert np.shares_memory(canon, stored)
    assert np.array_equal(from_canonical(canon, 0), stored)


def test_pad_sections_puts_section_top_left_and_zeros_elsewhere():
    sections = np.ones((2, 300, 1259), dtype=np.float32)
    padded = pad_sections(sections)
    assert padded.shape == (2, 1, 320, 1280) and padded.dtype == np.float32
    assert padded[:, 0, :300, :1259].min() == 1
    assert padded[:, 0, 300:, :].max() == 0 and padded[:, 0, :, 1259:].max() == 0


def test_pad_sections_refuses_larger_sections():
    with pytest.raises(InputError, match="larger than the model window"):
        pad_sections(np.zeros((1, 321, 10), np.float32))
