"""The PyTorch reference: fp32 on the CPU; bf16 autocast + channels-last on a GPU, as the seed ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from impeccable.core.errors import EngineError
from impeccable.models.checkpoint import load_model
from impeccable.runtime.engines.base import EngineBase, engine_failure, window_from


class TorchEngine(EngineBase):
    """The network from ``model.safetensors`` + ``model.json``.

    Args:
        model: Model directory.
        batch_size: Largest batch expected (unused: eager mode takes any batch).
        device: ``cpu``, ``cuda`` or ``auto``.
        precision: ``fp32`` or ``bf16`` (autocast; the default on CUDA).
    """

    name = "torch"

    def __init__(self, model: Path, batch_size: int = 8, device: str = "auto", precision: str | None = None):
        if not model.is_dir():
            raise EngineError("the torch engine needs a model directory", received=str(model),
                              expected="a directory with model.safetensors and model.json",
                              todo="pass --model MODEL_DIR or choose --engine onnxruntime for .onnx files")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.torch_device = torch.device(device)
        self.precision = precision or ("bf16" if self.torch_device.type == "cuda" else "fp32")
        if self.precision not in ("fp32", "bf16"):
            raise EngineError("unknown torch precision", received=self.precision, expected="fp32 or bf16",
                              todo="pass precision fp32 or bf16")
        self.model, card = load_model(model, device=self.torch_device)
        if self.torch_device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.window = window_from(card)
        self.device = str(self.torch_device)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = self.check(batch)
        try:
            x = torch.from_numpy(batch).to(self.torch_device)
            if self.torch_device.type == "cuda":
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(self.torch_device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                y = self.model(x)
            return y.float().cpu().numpy()
        except Exception as exc:
            raise engine_failure(self.name, exc) from exc

    def close(self) -> None:
        self.model = None
