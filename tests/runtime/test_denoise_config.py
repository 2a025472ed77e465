"""DenoiseConfig refuses a setting no run can use when it is built, not when a run starts."""

from __future__ import annotations

import pytest

from impeccable.core.errors import InputError
from impeccable.runtime.config import DenoiseConfig


@pytest.mark.parametrize(("options", "match"), [
    ({"views": "sideways"}, r"unknown views \| received sideways \| expected inline / crossline / both"),
    ({"scale": "dB"}, r"unknown output scale \| received dB \| expected input / unit / uint8"),
    ({"batch_size": 0}, r"batch size must be positive \| received 0 \| expected >= 1 \| pass --batch-size 4"),
    ({"strength": 1.5}, r"strength out of range \| received 1.5"),
    ({"strength": -0.1}, r"strength out of range"),
])
def test_bad_settings_are_refused_when_the_config_is_built(options, match):
    with pytest.raises(InputError, match=match):
        DenoiseConfig(**options)


def test_the_defaults_and_the_edges_are_accepted():
    assert DenoiseConfig().views == "inline"
    assert DenoiseConfig(strength=0.0, batch_size=1, views="both", scale="uint8").strength == 0.0
