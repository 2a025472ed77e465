import json

import pytest

from impeccable.core.card import DEFAULT_SMP, new_card, read_card, write_card
from impeccable.core.errors import ModelError


def test_new_card_defaults_to_the_seed_network():
    card = new_card()
    assert card["smp"] == DEFAULT_SMP
    assert card["smp"]["encoder_name"] == "tu-tf_efficientnetv2_s" and card["smp"]["arch"] == "UnetPlusPlus"
    assert card["input_size"] == [320, 1280] and card["output_activation"] == "sigmoid"


def test_window_must_be_multiple_of_32():
    with pytest.raises(ModelError, match="multiple of 32"):
        new_card(input_size=(300, 1259))


def test_card_round_trip(tmp_path):
    card = new_card({"encoder_name": "tu-test_resnet"}, input_size=(64, 128), name="tiny")
    write_card(card, tmp_path)
    assert read_card(tmp_path) == json.loads(json.dumps(card))


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "has no card"), ("{not json", "not valid JSON"), ('{"smp": {}}', "incomplete")],
)
def test_bad_cards(tmp_path, content, match):
    if content is not None:
        (tmp_path / "model.json").write_text(content)
    with pytest.raises(ModelError, match=match):
        read_card(tmp_path)


def test_missing_model_dir(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        read_card(tmp_path / "nope")
