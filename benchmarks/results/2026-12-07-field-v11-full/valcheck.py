"""v11's validation of syn-0003 (and syn-0001) with the current train/validate.py: compare with val3.log."""
import sys
from pathlib import Path
import torch
from impeccable.train import dataset as ds
from impeccable.train.validate import validate
from impeccable.models.checkpoint import load_model
from impeccable.core.model_io import ModelIO
torch.set_num_threads(1)
run = Path(sys.argv[1])
sources = ds.synthetic_sources(64, (1259, 128, 128), 7, Path("runs/v11/synthetic"), progress=False,
                               log=lambda m: None, family="mix")
stats = ds.pair_stats(sources, Path("runs/v11/volume_stats.json"), progress=False)
vs = ds.VolumeSet(sources, stats)
model, card = load_model(run)
idx = [vs.ids.index(v) for v in sys.argv[2:]]
io = ModelIO.from_card(card) if hasattr(ModelIO, "from_card") else None
print(validate(model, vs, idx, (320, 1280), 8, False, "cpu", None, scaling="robust", io=io)["volumes"], flush=True)
