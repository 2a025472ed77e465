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


def test_nonfinite_are_counted_and_read_as_zero():
    vol = np.full((4, 3, 5), 10.0, dtype=np.float32)
    vol[0, 0, 0] = np.nan
    vol[1, 1, 1] = np.inf
    vol[2, 2, 2] = 20.0
    stats = volume_stats(vol, chunk=2)
    assert (stats.vmin, stats.vmax, stats.nonfinite) == (0.0, 20.0, 2)
    unit = normalize(vol, stats)
    assert np.isfinite(unit).all()
    assert unit[0, 0, 0] == 0 and unit[2, 2, 2] == 1 and unit[0, 1, 1] == pytest.approx(0.5)


def test_normalize_denormalize_round_trip_and_integer_input():
    vol = np.arange(-50, 50, dtype=np.int16).reshape(4, 5, 5)
    stats = volume_stats(vol)
    unit = normalize(vol, stats)
    assert unit.dtype == np.float32 and unit.min() == 0 and unit.max() == 1
    assert np.allclose(denormalize(unit, stats), vol, atol=1e-4)


@pytest.mark.parametrize(("stats", "match"), [(VolumeStats(3.0, 3.0), "constant"),
                                               (VolumeStats(0.0, 0.0, nonfinite=12), "after replacing 12 NaN")])
def test_constant_volume_is_refused(stats, match):
    with pytest.raises(InputError, match=match):
        stats.check_not_constant()


def test_to_uint8_truncates_like_the_official_scorer():
    p = np.array([0.0, 0.5, 1.0, 0.999], dtype=np.float32)
    assert to_uint8(p, 0.0, 1.0).tolist() == [0, 127, 255, 254]
