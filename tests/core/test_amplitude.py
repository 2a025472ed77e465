import numpy as np
import pytest

from impeccable.core.amplitude import VolumeStats, denormalize, normalize, to_uint8, volume_stats
from impeccable.core.errors import InputError


def test_volume_stats_chunked_equals_direct():
    rng = np.random.default_rng(0)
    vol = rng.normal(223, 24, size=(37, 11, 13)).astype(np.float32)
    stats = volume_stats(vol, chunk=5)
    assert stats.vmin == pytest.approx(vol.min()) and stats.vmax == pytest.approx(vol.max())
    assert stats.nonfinite == 0


def test_nonfinite_are_counted_left_out_and_filled_with_the_finite_mean():
    vol = np.full((4, 3, 5), 10.0, dtype=np.float32)
    vol[0, 0, 0] = np.nan
    vol[1, 1, 1] = np.inf
    vol[2, 2, 2] = 20.0
    stats = volume_stats(vol, chunk=2)
    assert (stats.vmin, stats.vmax, stats.nonfinite) == (10.0, 20.0, 2)  # DESIGN §3: finite samples only
    mean = (57 * 10.0 + 20.0) / 58
    assert stats.fill == pytest.approx(mean) and stats.fill_value == pytest.approx(mean)
    unit = normalize(vol, stats)
    assert np.isfinite(unit).all()
    assert unit[0, 1, 1] == 0 and unit[2, 2, 2] == 1
    assert unit[0, 0, 0] == unit[1, 1, 1] == pytest.approx((mean - 10.0) / 10.0)


def test_fill_of_old_stats_is_zero_clipped_into_the_range():
    assert VolumeStats(144.0, 373.0, 1).fill_value == 144.0
    assert VolumeStats(-5.0, 5.0, 1).fill_value == 0.0


def test_normalize_denormalize_round_trip_and_integer_input():
    vol = np.arange(-50, 50, dtype=np.int16).reshape(4, 5, 5)
    stats = volume_stats(vol)
    unit = normalize(vol, stats)
    assert unit.dtype == np.float32 and unit.min() == 0 and unit.max() == 1
    assert np.allclose(denormalize(unit, stats), vol, atol=1e-4)


@pytest.mark.parametrize(("stats", "match"), [(VolumeStats(3.0, 3.0), "constant"),
                                               (VolumeStats(0.0, 0.0, nonfinite=12), r"besides 12 NaN"),
                                               (VolumeStats(np.inf, -np.inf, nonfinite=5), "no finite sample")])
def test_constant_volume_is_refused(stats, match):
    with pytest.raises(InputError, match=match):
        stats.check_not_constant()


def test_to_uint8_truncates_like_the_official_scorer():
    p = np.array([0.0, 0.5, 1.0, 0.999], dtype=np.float32)
    assert to_uint8(p, 0.0, 1.0).tolist() == [0, 127, 255, 254]
