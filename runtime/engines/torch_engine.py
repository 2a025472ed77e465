"""The PyTorch reference: fp32 on the CPU; bf16 autocast and channels-last on CUDA, as the seed ran.

The only runtime module that imports torch, and only when this engine is chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from impeccable.core.errors import EngineError
from impeccable.models.checkpoint import load_model
from impeccable.core.model_files import resolve_window
from impeccable.runtime.engines import ENGINES
from impeccable.runtime.engines.base import EngineBase


class TorchEngine(EngineBase):
    """The network rebuilt from ``model.json`` with ``model.safetensors``.

    Args:
        model: Model directory.
        batch_size: Images per call the caller plans (eager mode takes any batch: not a limit).
        device: ``cpu``, ``cuda``, ``cuda:<index>`` or ``auto`` (CUDA when available).
        precision: ``fp32`` or ``bf16`` (autocast) [default: fp32 on the CPU, bf16 on CUDA].

    Raises:
        ModelError: Missing or inconsistent model directory.
        EngineError: Bad option, or not a model directory.
    """

    name = "torch"

    def __init__(self, model: str | Path, batch_size: int = 8, device: str = "auto", precision: str | None = None):
        model = Path(model)
        if model.suffix in (".onnx", ".plan"):
            raise EngineError("the torch engine needs a model directory", received=str(model),
                              expected="a directory with model.json and model.safetensors",
                              todo="pass the model directory, or --engine onnxruntime for a .onnx file")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.torch_device = torch.device(device)
        except RuntimeError as exc:
            raise EngineError("unknown torch device", received=device, expected="cpu, cuda, cuda:<n> or auto",
                              todo="pass device cpu or cuda") from exc
        on_cuda = self.torch_device.type == "cuda"
        self.precision = precision or ("bf16" if on_cuda else "fp32")
        ENGINES[self.name].check_precision(self.precision)
        self.model, card = load_model(model, device=self.torch_device)
        self.window = resolve_window(card, [], model)
        if on_cuda:
            # cuDNN's fastest bf16 convolutions want NHWC.
            self.model = self.model.to(memory_format=torch.channels_last)
        self.memory_format = torch.channels_last if on_cuda else torch.contiguous_format
        self.device = str(self.torch_device)

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.torch_device, memory_format=self.memory_format)
        with torch.autocast(self.torch_device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            y = self.model(x)
        return np.ascontiguousarray(y.float().cpu().numpy())

    def release(self) -> None:
        self.model = None
