"""DenoiseConfig refuses a setting no run can use when it is built, not when a run starts."""

from __future__ import annotations

import pytest

from impeccable.core.errors import InputError
from impeccable.runtime.config import DenoiseConfig


@pytest.mark.parametrize(("options", "match"), [
    ({"views": "sideways"}, r"unknown views \| received sideways \| expected auto / inline / crossline / both"),
    ({"scale": "dB"}, r"unknown output scale \| received dB \| expected input / unit / uint8"),
    ({"batch_size": 0}, r"batch size must be positive \| received 0 \| expected >= 1 \| pass --batch-size 4"),
    ({"strength": 1.5}, r"strength out of range \| received 1.5"),
    ({"strength": -0.1}, r"strength out of range"),
])
def test_bad_settings_are_refused_when_the_config_is_built(options, match):
    with pytest.raises(InputError, match=match):
        DenoiseConfig(**options)


def test_the_defaults_and_the_edges_are_accepted():
    assert DenoiseConfig().views == "auto"
    assert DenoiseConfig(strength=0.0, batch_size=1, views="both", scale="uint8").strength == 0.0


@pytest.mark.parametrize(("shape", "views"), [((601, 1, 1501), "crossline"), ((300, 20, 500), "crossline"),
                                              ((1, 534, 1501), "inline"), ((64, 300, 1259), "inline"),
                                              ((10, 12, 100), "inline"), ((300, 300, 1259), "inline")])
def test_auto_views_never_feed_the_model_a_sliver(shape, views):
    """One crossline of a 3-D survey read as (inline, 1, sample) is denoised along the crossline, not as
    601 one-trace "sections"; cubes and 2-D lines keep inline sections."""
    assert DenoiseConfig().for_shape(shape).views == views
    assert DenoiseConfig(views="inline").for_shape(shape).views == "inline"  # an explicit choice stands
