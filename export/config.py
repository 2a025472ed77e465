"""The export stage's settings: one frozen dataclass, validated when built (``impeccable-export`` maps its flags
onto it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from impeccable.core.errors import ExportError

DEFAULT_OPSET = 18
DEFAULT_MARGIN = 16.0


@dataclass(frozen=True)
class ExportConfig:
    """What ``impeccable-export`` writes, and how.

    Attributes:
        model_dir: Model directory (``model.safetensors`` + ``model.json``).
        out: Output directory [None: ``model_dir``].
        fp16: Also write ``model.fp16.onnx`` and, where possible, the TensorRT plan.
        batch: TensorRT profile's optimal batch (the runtime's batch size).
        max_batch: TensorRT profile's largest batch.
        opset: ONNX opset.
        dynamo: Dynamo exporter (else the legacy TorchScript one, constant-folded).
        fp16_margin: FP16 audit margin: nodes peaking above ``65504 / margin`` stay FP32.
        engine: With ``fp16``, build the TensorRT plan (False: stop after the ONNX files, exit 0).
        force: Re-export even when the files on disk are up to date with the weights.
        int8: Also write ``model.int8.onnx`` (Q/DQ, calibrated, sensitivity-searched, loss-checked) and, where
            possible, its TensorRT plan.
        calibration: Folder of ``.npy`` volumes to calibrate INT8 on [None: synthetic sections].
        max_loss: Largest accepted challenge-score loss of INT8 against float32 on any held-out volume.
    """

    model_dir: Path
    out: Path | None = None
    fp16: bool = False
    batch: int = 8
    max_batch: int = 32
    opset: int = DEFAULT_OPSET
    dynamo: bool = True
    fp16_margin: float = DEFAULT_MARGIN
    engine: bool = True
    force: bool = False
    int8: bool = False
    calibration: Path | None = None
    max_loss: float = 0.002

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= self.max_batch:
            raise ExportError("batch sizes out of order", received=f"--batch {self.batch} --max-batch {self.max_batch}",
                              expected="1 <= batch <= max batch", todo="pass --batch B --max-batch M with B <= M")
        if not self.fp16_margin >= 1:
            raise ExportError("FP16 margin below 1", received=self.fp16_margin, expected=">= 1 (default 16)",
                              todo="pass --fp16-margin 16 or more")
        if self.calibration is not None and not self.int8:
            raise ExportError("--calibration without --int8", received=str(self.calibration),
                              expected="--int8 --calibration DIR", todo="add --int8, or drop --calibration")
        self.int8_config()  # checks --max-loss

    def int8_config(self):
        """The INT8 step's settings."""
        from impeccable.export.int8 import Int8Config

        return Int8Config(calibration=self.calibration, max_loss=self.max_loss)

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.model_dir
