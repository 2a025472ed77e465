"""The seed's checkpoint (a torch.save'd wrapper state dict, keys ``segmentor.*``) imports as a model directory."""

from __future__ import annotations

import pytest
import torch

from impeccable.core.errors import ModelError
from impeccable.models.builder import build_model
from impeccable.models.checkpoint import import_seed_checkpoint, load_model


def test_seed_checkpoint_round_trip(tmp_path, tiny_card):
    torch.manual_seed(3)
    seed_net = build_model(tiny_card).eval()
    wrapper_state = {f"segmentor.{k}": v for k, v in seed_net.state_dict().items()}
    torch.save(wrapper_state, tmp_path / "0_EMA.pth")
    import_seed_checkpoint(tmp_path / "0_EMA.pth", tmp_path / "imported", card=tiny_card)
    model, card = load_model(tmp_path / "imported")
    x = torch.rand(2, 1, 64, 256)
    with torch.no_grad():
        torch.testing.assert_close(model(x), seed_net(x), rtol=0, atol=0)
    assert card["smp"] == tiny_card["smp"] and card["weights_sha256"]


def test_not_a_seed_checkpoint(tmp_path, tiny_card):
    torch.save({"model.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="not a seed checkpoint"):
        import_seed_checkpoint(tmp_path / "other.pth", tmp_path / "out", card=tiny_card)
