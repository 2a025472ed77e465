"""INT8 after training (``model.int8.onnx``): one Q/DQ graph for ONNX Runtime, OpenVINO and TensorRT.

Quantizer: ONNX Runtime's own tools, ``onnxruntime.quantization.quantize_static`` with ``QuantFormat.QDQ``.
Why this one: onnxruntime is already the runtime's CPU engine (no new dependency); it writes standard
``QuantizeLinear``/``DequantizeLinear`` pairs, the explicit-quantization form that all three runtimes read
(ORT fuses them into its VNNI/AMX integer kernels, OpenVINO's ONNX frontend turns them into FakeQuantize for its
low-precision pipeline, TensorRT 10/11 builds a strongly typed INT8 network from them: its implicit calibrator
is gone); and its calibration cache (``calibration_cache_path``) lets the sensitivity pass calibrate once and
quantize many candidates in seconds each. NNCF would do the same for OpenVINO and ORT with its own range
statistics but adds a dependency tree (nncf, pymoo, ...) for what ORT does here; NVIDIA ModelOpt targets TensorRT
and pulls in torch/CUDA extras. The choice of what stays float is ours (the measured pass below), not a library's.

Settings, fixed by TensorRT's rules so that one file serves every runtime: INT8 activations and weights, both
symmetric (zero point 0: TensorRT accepts nothing else), weights per output channel, activations per tensor; only
convolutions are quantized (:data:`QUANTIZED_OPS`). The graph is first pre-processed by ``quant_pre_process``
(shape inference and constant folding: the exported graph casts the SE blocks' fp16-held weights to float32 at run
time, and a weight behind a ``Cast`` would be quantized as an activation, per tensor).

Calibration: normalized sections as the runtime feeds them (per-volume min-max of the noisy volume, inline
sections cut to the window and zero-padded at the end of both axes), from synthetic volumes of both families the
shipped model was trained on (:mod:`impeccable.data.families` ``a`` and ``b`` alternating, seeds from
:data:`CALIBRATION_SEED`, random noise levels), or from the user's own ``.npy`` volumes (``--calibration DIR``).
Ranges: MinMax and Percentile (:data:`PERCENTILE`) are both calibrated and the one whose all-INT8 graph loses less
score on the search volumes is kept (``calibration_method`` picks one instead).

One measure decides everything, the gate's own: the challenge score (:func:`impeccable.data.scoring.score_volumes`)
of the pipeline's output (the runtime's tiling and flip TTA, :func:`impeccable.core.tiling.predict_sections`, ONNX
Runtime CPU) on synthetic volumes with a clean truth, as a loss against the float32 graph on the same volumes
(the worst volume counts). A 1 - SSIM between INT8 and float32 outputs, the earlier figure, did not predict it
(issue 30: 1.4e-3 on the probe sections, then a 0.0029 loss at the gate).

Search (what stays float): the nodes are grouped by the module they come from (encoder stem and each encoder
stage, each decoder depth ``x_<i>_*``). Each group's loss alone in INT8 ranks them; then, from everything in INT8,
the costliest groups go back to float until the worst loss on the search volumes (:data:`SEARCH_SEED`, families and
levels alternating) is at most :data:`SEARCH_MARGIN` of ``max_loss``. Always float, not searched: the output head
(last Conv and Sigmoid; one output channel, a negligible share of the FLOPs, and quantizing it would leave the
output with at most 256 levels before the challenge's own uint8 step), as in the FP16 graph.

Gate, before anything is written: the same measure on held-out volumes (:data:`HELD_OUT_SEED`, never used in
training, calibration or the search), through every CPU engine that runs the file and is installed
(:data:`GATE_ENGINES`), each INT8 run against the same engine's float32 run: OpenVINO fuses the Q/DQ pairs into
its own INT8 kernels and loses more than ONNX Runtime (v5: 0.0074 against 0.0051 on a held-out volume outside an
ONNX-Runtime-only gate that had passed). While the loss on any volume and engine exceeds ``max_loss``, the next
group of the ranking goes back to float and the gate runs again; when no group would be left in INT8 the export
is refused (:class:`Int8LossError`) and no INT8 file is left. The audit (calibration, search table, float nodes,
the FLOP share left in INT8, held-out scores and the seconds fp32 and INT8 spent on the gate's volumes, per
engine) goes into the graph's metadata (``int8_audit``) and beside it (``model.int8.audit.json``), and later
into a TensorRT plan's manifest.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from impeccable.core.card import ONNX_INT8_NAME, sha256_file
from impeccable.core.errors import ExportError, InputError
from impeccable.export.onnx_export import INPUT_NAME, OUTPUT_NAME, check_graph, metadata, save_checked, set_metadata

if TYPE_CHECKING:
    import onnx

    from impeccable.core.model_io import ModelIO

#: 3: held-out rows and speed per gate engine (``held_out.engines``, ``speed.by_engine``).
AUDIT_FORMAT = 3
DEFAULT_MAX_LOSS = 0.002
#: Calibration sections, half from each synthetic family the shipped model was trained on (a and b).
DEFAULT_SECTIONS = 24
#: Synthetic calibration volumes (CALIBRATION_SEED and up), the search's volumes (SEARCH_SEED and up) and the
#: gate's held-out volumes (HELD_OUT_SEED and up, as benchmarks/quality uses): three disjoint sets; the training
#: runs derive theirs from ``--seed`` through a hash and meet none.
CALIBRATION_SEED = 700001
SEARCH_SEED = 800001
HELD_OUT_SEED = 900001
HELD_OUT_LEVELS = ("moderate", "strong")
#: The CPU engines the gate runs the INT8 graph through, each where installed (ONNX Runtime always is): the file
#: is promised to every engine that takes ``--precision int8``, and each quantizes the Q/DQ graph its own way.
#: OpenVINO runs it as its engine does (:mod:`impeccable.runtime.engines.ov_engine`: float islands in f32).
GATE_ENGINES = ("onnxruntime", "openvino")
#: The search puts groups back to float until its worst score loss is at most this share of ``max_loss``: the
#: gate then meets other volumes, whose losses scatter around the search's.
SEARCH_MARGIN = 0.5
#: ``calibration_method`` values: ORT's range estimators; ``auto`` calibrates with MinMax and Percentile and keeps
#: the one whose all-INT8 graph loses less score on the search volumes (Entropy is opt-in: its histograms of every
#: convolution input take minutes on the real model for what Percentile gives).
CALIBRATION_METHODS = ("auto", "minmax", "percentile", "entropy")
#: Percentile calibration keeps this share of each activation's |values| inside its range (ORT's default).
PERCENTILE = 99.999
#: |INT8 - FP32| on the unit-scale denoised field that a TensorRT INT8 plan may show against the float graph
#: (its check before the plan is kept: catches miscompiles, not rounding).
INT8_ATOL = 0.1
CHALLENGE_SECTION = (300, 1259)
#: Only the convolutions (all of the network's arithmetic) get Q/DQ. ORT's default also quantizes SiLU's Sigmoid
#: and Mul, the SE blocks, Add, Concat and Resize: they save no arithmetic but add requantization steps and error;
#: measured on the shipped model with OpenVINO (4 sections): all ops INT8 1.18 s, convolutions only 0.84 s,
#: float bf16 0.94 s.
QUANTIZED_OPS = ("Conv",)


class Int8LossError(ExportError):
    """The INT8 graph costs more challenge score than allowed on a held-out volume."""


@dataclass(frozen=True)
class Int8Config:
    """How ``model.int8.onnx`` is calibrated, searched and checked.

    Attributes:
        calibration: Folder of the user's own ``.npy`` volumes (any orientation with the time axis the unique
            longest) [None: synthetic volumes of both families the shipped model was trained on].
        sections: Calibration sections.
        calibration_method: One of :data:`CALIBRATION_METHODS`.
        search: Synthetic volumes the sensitivity search scores on (families alternate a / b, levels
            moderate / strong; seeds :data:`SEARCH_SEED` and up, never the gate's).
        search_shape: ``(inline, crossline, sample)`` of each search volume [None: 8 x the challenge section,
            cut to the model window].
        max_loss: Largest accepted challenge-score loss (fp32 - int8) on any held-out volume.
        held_out: Held-out synthetic volumes for the gate (families and levels alternate as in the search).
        held_out_shape: ``(inline, crossline, sample)`` of each held-out volume [None: 8 x the challenge section,
            cut to the model window].
        batch: Sections per engine call in the search and the gate (flip TTA doubles the images).
    """

    calibration: Path | None = None
    sections: int = DEFAULT_SECTIONS
    calibration_method: str = "auto"
    search: int = 4
    search_shape: tuple[int, int, int] | None = None
    max_loss: float = DEFAULT_MAX_LOSS
    held_out: int = 4
    held_out_shape: tuple[int, int, int] | None = None
    batch: int = 2

    def __post_init__(self) -> None:
        if not (self.sections >= 1 and self.search >= 1 and self.held_out >= 1):
            raise ExportError("INT8 calibration needs sections, search and held-out volumes",
                              received=f"sections {self.sections}, search {self.search}, held-out {self.held_out}",
                              expected=">= 1 each", todo="pass positive counts")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ExportError("unknown INT8 calibration method", received=self.calibration_method,
                              expected=" or ".join(CALIBRATION_METHODS), todo="pass auto")
        if not 0 <= self.max_loss < 1:
            raise ExportError("--max-loss out of range", received=self.max_loss,
                              expected="0 <= loss < 1 (default 0.002)", todo="pass --max-loss 0.002")

    def settings(self) -> dict[str, Any]:
        """What decides the INT8 graph (an up-to-date file was made with the same)."""
        return {"calibration": str(self.calibration.resolve()) if self.calibration else "synthetic a+b",
                "sections": self.sections, "calibration_method": self.calibration_method, "search": self.search,
                "search_shape": list(self.search_shape) if self.search_shape else None,
                "max_loss": self.max_loss, "held_out": self.held_out,
                "held_out_shape": list(self.held_out_shape) if self.held_out_shape else None}


def _beside(int8_onnx: str | Path, suffix: str) -> Path:
    int8_onnx = Path(int8_onnx)
    return int8_onnx.with_name(int8_onnx.name.removesuffix(".onnx") + suffix)


def audit_path(int8_onnx: str | Path) -> Path:
    """The audit JSON beside an INT8 graph: ``model.int8.onnx`` -> ``model.int8.audit.json``."""
    return _beside(int8_onnx, ".audit.json")


def journal_path(int8_onnx: str | Path) -> Path:
    """The search journal beside an INT8 graph: ``model.int8.onnx`` -> ``model.int8.search.json``."""
    return _beside(int8_onnx, ".search.json")


class SearchJournal:
    """The scores of every graph the search and the gate have measured, on disk, so that an export cut short
    (the search takes hours on a small CPU) or refused resumes where it stopped: a rerun with the same source,
    calibration and volumes takes each measured graph's scores from here instead of running it again (a rerun
    with another ``--max-loss`` measures only the graphs its search and gate did not reach before). Written
    after every graph (atomic replace); removed once the INT8 graph is written, whose audit then holds the record.

    Args:
        path: The journal file (:func:`journal_path`).
        key: Everything that decides a graph's scores (source graph hash, calibration digest, volumes, batch);
            a journal with another key is ignored and replaced.
    """

    def __init__(self, path: Path, key: dict[str, Any]):
        self.path, self.key = path, key
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data = None
        self.entries: dict[str, Any] = data["entries"] if isinstance(data, dict) and data.get("key") == key else {}

    @staticmethod
    def name(kind: str, method: str, floated: list[str]) -> str:
        return f"{kind}|{method}|{','.join(sorted(floated))}"

    def get(self, kind: str, method: str, floated: list[str]) -> Any:
        """A measured result (None if this graph was not measured)."""
        return self.entries.get(self.name(kind, method, floated))

    def put(self, kind: str, method: str, floated: list[str], value: Any) -> Any:
        self.entries[self.name(kind, method, floated)] = value
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"key": self.key, "entries": self.entries}, indent=1) + "\n")
        os.replace(tmp, self.path)
        return value

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_audit(int8_onnx: str | Path) -> dict[str, Any] | None:
    """The audit JSON beside an INT8 graph (None when missing or unreadable)."""
    try:
        return json.loads(audit_path(int8_onnx).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ---- calibration data ------------------------------------------------------------------------------------------

def _cut(volume: np.ndarray, window: tuple[int, int], count: int, io: ModelIO) -> np.ndarray:
    """``count`` evenly spaced inline sections of a normalized ``(inline, crossline, sample)`` float32 volume, as
    the network sees them: balanced by the card's section gain (computed on the whole section, as the runtime
    does), cut to the window's top-left corner (the runtime's first tile) and padded with the card's value:
    ``float32[count, 1, rows, cols]``."""
    from impeccable.core.geometry import pad_sections

    picks = np.unique(np.linspace(0, volume.shape[0] - 1, count).round().astype(int))
    sections = np.ascontiguousarray(volume[picks], dtype=np.float32)
    if io.section_gain is not None:
        sections = io.section_gain.balance(sections, io.section_gain.gains(sections))
    return pad_sections(np.ascontiguousarray(sections[:, :window[0], :window[1]]), window, io.pad_value)


def _io(window: tuple[int, int], io: ModelIO | None) -> ModelIO:
    """The model's input contract [default: the seed's min-max scaling and zero padding, for ``window``]."""
    from impeccable.core.amplitude import Scaling
    from impeccable.core.model_io import ModelIO

    return io if io is not None else ModelIO(tuple(window), Scaling())


def _normalized(volume: np.ndarray, io: ModelIO) -> np.ndarray:
    """A volume in the model's units, as the runtime feeds it (the card's scaling over the whole volume)."""
    from impeccable.core.amplitude import volume_stats

    stats = volume_stats(volume)
    stats.check_not_constant()
    return io.normalize(volume, stats)


def synthetic_calibration(window: tuple[int, int], count: int, seed: int = CALIBRATION_SEED,
                          per_volume: int = 4, io: ModelIO | None = None) -> np.ndarray:
    """Normalized synthetic noisy sections padded to the window, ``per_volume`` from each of several volumes.

    Volume ``i`` is family ``a`` for even ``i``, ``b`` for odd ``i`` (:mod:`impeccable.data.families`: the
    shipped model was trained on both), random noise level, of shape ``(8, traces, samples)``, the challenge's
    section cut to the window, normalized over the whole noisy volume.

    Returns:
        ``float32[count, 1, rows, cols]`` in ``[0, 1]``.
    """
    from impeccable.data.families import synthesize_family_pair

    io = _io(window, io)
    shape = (8, max(8, min(window[0], CHALLENGE_SECTION[0])), max(32, min(window[1], CHALLENGE_SECTION[1])))
    out, volume = [], 0
    while sum(len(o) for o in out) < count:
        _, noisy = synthesize_family_pair("mix", volume, seed + volume, shape)
        out.append(_cut(_normalized(noisy, io), window, per_volume, io))
        volume += 1
    return np.concatenate(out)[:count]


def folder_calibration(folder: Path, window: tuple[int, int], count: int,
                       io: ModelIO | None = None) -> np.ndarray:
    """Normalized sections from the ``.npy`` volumes in ``folder``, spread over the files.

    Each volume is read memory-mapped (``allow_pickle=False``), its time axis found as the unique longest one
    and moved last, min-max normalized over the whole volume, and cut into inline sections.

    Returns:
        ``float32[count, 1, rows, cols]``.

    Raises:
        InputError: No folder, no ``.npy`` file, or a volume that is not 3-D or constant.
    """
    from impeccable.core.geometry import resolve_time_axis, to_canonical

    files = sorted(Path(folder).glob("*.npy")) if Path(folder).is_dir() else []
    if not files:
        raise InputError("no calibration volumes", received=str(folder), expected="a folder of .npy volumes",
                         todo="pass --calibration DIR with your own volumes, or leave it out (synthetic sections)")
    per_file = -(-count // len(files))
    io = _io(window, io)
    out = []
    for path in files:
        try:
            stored = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError("calibration volume is unreadable", received=f"{path}: {exc}".splitlines()[0],
                             expected="a .npy array", todo="check the file") from exc
        volume = to_canonical(stored, resolve_time_axis(stored.shape))
        out.append(_cut(_normalized(np.asarray(volume, dtype=np.float32), io), window, per_file, io))
    return np.concatenate(out)[:count]


class SectionReader:
    """ONNX Runtime ``CalibrationDataReader`` over ``float32[N, 1, rows, cols]`` sections, one per call.

    ``set_range`` lets the quantizer collect in strides (``CalibStridedMinMax``): the histogram calibrators keep
    every convolution input of a stride in memory, so one section at a time bounds them to one section's.
    """

    def __init__(self, sections: np.ndarray):
        self.sections = sections
        self.index, self.stop = 0, len(sections)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= self.stop:
            return None
        self.index += 1
        return {INPUT_NAME: np.ascontiguousarray(self.sections[self.index - 1:self.index])}

    def set_range(self, start_index: int, end_index: int) -> None:
        self.index, self.stop = int(start_index), min(int(end_index), len(self.sections))

    def __len__(self) -> int:
        return len(self.sections)


# ---- node groups -----------------------------------------------------------------------------------------------

def group_of(scopes: list[str]) -> str:
    """The sensitivity group of a node from its module scopes (outermost first; see fp16.node_scopes)."""
    inner = scopes[-1] if scopes else ""
    parts = inner.split(".")
    if inner.startswith("segmentation_head"):
        return "head"
    if inner.startswith("encoder"):
        if "blocks" in parts and parts.index("blocks") + 1 < len(parts):
            return "encoder.blocks." + parts[parts.index("blocks") + 1]
        if "layers" in parts and parts.index("layers") + 1 < len(parts):
            return "encoder.layers." + parts[parts.index("layers") + 1]
        return "encoder.stem"
    if inner.startswith("decoder"):
        block = next((p for p in parts if p.startswith("x_")), None)
        return f"decoder.{block.rsplit('_', 1)[0]}" if block else "decoder"
    return "other"


def node_groups(graph: onnx.ModelProto) -> dict[str, str]:
    """Node name -> sensitivity group, for the exporter's graph (module scopes in metadata or names)."""
    from impeccable.export.fp16 import head_nodes, node_scopes

    groups = {node.name: group_of(node_scopes(node)) for node in graph.graph.node}
    for name in head_nodes(graph):  # the head by graph structure too: last Conv and what follows it
        groups[name] = "head"
    return groups


# ---- quantization ----------------------------------------------------------------------------------------------

_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def quantize(pre_path: Path, out_path: Path, cache: Path, float_nodes: Iterable[str],
             reader: SectionReader | None = None, method: str = "minmax") -> None:
    """``quantize_static`` (Q/DQ, symmetric INT8, per-channel weights) with the calibration cache ``cache``.

    The first call (``reader`` given, no cache yet) calibrates with ``method`` (one section at a time) and writes
    the cache; later calls with the same ``method`` reuse it.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "CalibTensorRangeSymmetric": True}
    if method == "percentile":
        extra["CalibPercentile"] = PERCENTILE
    if reader is not None:
        extra["CalibStridedMinMax"] = 1  # any calibrator, despite the name: collect one section at a time
    quantize_static(str(pre_path), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, _METHODS[method]),
                    nodes_to_exclude=sorted(set(float_nodes)), extra_options=extra,
                    calibration_cache_path=str(cache))


def gate_engines() -> list[str]:
    """The :data:`GATE_ENGINES` installed here (ONNX Runtime first: the export needs it anyway)."""
    import importlib.util

    return [e for e in GATE_ENGINES if e == "onnxruntime" or importlib.util.find_spec(e) is not None]


def _runner(path: Path, engine: str = "onnxruntime") -> Callable[[np.ndarray], np.ndarray]:
    """A CPU function ``float32[N, 1, rows, cols] -> float32[N, 1, rows, cols]`` running the graph at ``path``."""
    if engine == "openvino":
        import openvino as ov

        # As the runtime's OpenVINO engine compiles an INT8 graph: the float islands in f32 (its HINTS["int8"]).
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                             "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return lambda x: request.infer({0: np.ascontiguousarray(x)})[0].copy()
    session = _session(path)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _session(path: Path) -> Any:
    import onnxruntime as ort

    from impeccable.core.cpu import physical_cores

    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def conv_flops(graph: onnx.ModelProto) -> dict[str, float]:
    """FLOP per input image (2 per multiply-add) of each convolution of ``graph``, by node name (shape inference
    with the batch pinned to 1; benchmarks/flops.py counts the same for the whole graph)."""
    import onnx
    from onnx import shape_inference

    model = onnx.ModelProto()
    model.CopyFrom(graph)
    for tensor in list(model.graph.input) + list(model.graph.output):
        dims = tensor.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
              for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    shapes.update({init.name: tuple(init.dims) for init in model.graph.initializer})
    out = {}
    for node in model.graph.node:
        result, weight = shapes.get(node.output[0]), shapes.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Conv" and result and weight and all(result) and all(weight):
            out[node.name] = 2.0 * float(np.prod(result)) * float(np.prod(weight[1:]))
    return out


# ---- the gate's measure: challenge score of the pipeline's output ----------------------------------------------

@dataclass(frozen=True)
class ScoredVolume:
    """One synthetic volume the search or the gate scores on: its clean truth and normalized noisy sections."""

    seed: int
    family: str
    level: str
    clean: np.ndarray
    sections: np.ndarray


def scoring_volumes(first_seed: int, count: int, shape: tuple[int, int, int],
                    io: ModelIO | None = None) -> list[ScoredVolume]:
    """``count`` synthetic ``(inline, crossline, sample)`` volumes from ``first_seed``: families alternate a / b,
    levels alternate moderate / strong (by pairs, so both families meet both levels); normalized per volume."""
    from impeccable.core.amplitude import volume_stats
    from impeccable.data.families import synthesize_family_pair

    io = _io(shape[1:], io)
    out = []
    for i in range(count):
        family, level = "ab"[i % 2], HELD_OUT_LEVELS[(i // 2) % len(HELD_OUT_LEVELS)]
        clean, noisy = synthesize_family_pair(family, 0, first_seed + i, shape, level)
        out.append(ScoredVolume(first_seed + i, family, level, clean, io.normalize(noisy, volume_stats(noisy))))
    return out


def pipeline_scores(path: Path, volumes: list[ScoredVolume], window: tuple[int, int], batch: int,
                    io: ModelIO | None = None, engine: str = "onnxruntime") -> tuple[list[float], float]:
    """Challenge score of the graph at ``path`` on each volume, denoised as the runtime does (tiles, flip TTA,
    :func:`impeccable.core.tiling.predict_sections` with the card's padding, section gain and output guard,
    ``engine`` on the CPU: one of :data:`GATE_ENGINES`), and the seconds spent in the graph."""
    from impeccable.data.scoring import score_volumes

    outputs, spent = pipeline_outputs(path, volumes, window, batch, io, engine)
    return [score_volumes(v.clean, out) for v, out in zip(volumes, outputs)], spent


def pipeline_outputs(path: Path, volumes: list[ScoredVolume], window: tuple[int, int], batch: int,
                     io: ModelIO | None = None, engine: str = "onnxruntime") -> tuple[list[np.ndarray], float]:
    """What :func:`pipeline_scores` scores: each volume's denoised ``(inline, crossline, sample)`` float32 field
    in the card's normalized units, and the seconds spent in the graph."""
    from impeccable.core.tiling import predict_sections

    graph = _runner(path, engine)
    spent = [0.0]

    def run(x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = graph(x)
        spent[0] += time.perf_counter() - t0
        return out

    io = _io(window, io)
    outputs = [predict_sections(v.sections, run, window, tta=True, batch=2 * batch, pad_value=io.pad_value,
                                guard=io.output_guard, gain=io.section_gain)
               for v in volumes]
    return outputs, spent[0]


def uint8_split(clean: np.ndarray, reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """What a candidate output's challenge-score loss against a reference output is made of.

    The challenge scales each predicted volume to uint8 by its own minimum and maximum, so a candidate that moves
    the volume's single most extreme sample moves every grey level, and SSIM charges for that although the
    sections are otherwise unchanged (issue 30: most of v12's INT8 losses at the gate were this). The candidate is
    scored once as the challenge scores it and once scaled by the reference output's range.

    Args:
        clean: The volume's clean truth, ``(inline, crossline, sample)``.
        reference: The float32 graph's output, same shape.
        candidate: The INT8 graph's output, same shape.

    Returns:
        ``loss`` (the gate's), ``loss_at_reference_range`` (what changed inside the sections), and both outputs'
        ``[min, max]``.
    """
    from impeccable.data.scoring import score_scoring_sections, score_volumes

    ref_range = (float(reference.min()), float(reference.max()))
    base = score_volumes(clean, reference)
    scaled = score_scoring_sections(clean, candidate, (float(clean.min()), float(clean.max())), ref_range)
    return {"loss": base - score_volumes(clean, candidate), "loss_at_reference_range": base - scaled,
            "reference_range": list(ref_range), "candidate_range": [float(candidate.min()), float(candidate.max())]}


def _span(value_range: list[float]) -> str:
    return f"[{value_range[0]:.3f}, {value_range[1]:.3f}]"


def _digest(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes, shape and dtype (the calibration sections a journal was measured with)."""
    import hashlib

    h = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def worst_loss(reference: list[float], candidate: list[float]) -> float:
    """The gate's measure: the largest score loss (reference - candidate) over the volumes."""
    return max(r - c for r, c in zip(reference, candidate))


# ---- the search: what stays float ------------------------------------------------------------------------------

def search_float_groups(groups: list[str], loss_of: Callable[[list[str]], float], target: float,
                        echo: Callable[[str], None] = print) -> tuple[list[str], dict[str, Any]]:
    """Rank the groups by the score each loses alone in INT8, then put the costliest back to float until the
    worst loss is at most ``target``.

    Args:
        groups: Names of the node groups that may be quantized (the output head is never among them).
        loss_of: The worst score loss of the graph with these groups in float (everything else INT8).
        target: The loss to reach (a share of the gate's ``max_loss``: :data:`SEARCH_MARGIN`).
        echo: Progress lines.

    Returns:
        The float groups, and the record: per-group losses, the ranking and the greedy steps. Every group may end
        in float (the gate then has nothing to pass: see :func:`gate_float_groups`).
    """
    costs = []
    for name in groups:
        loss = loss_of([g for g in groups if g != name])
        costs.append({"group": name, "loss_alone": loss})
        echo(f"  {name}: loss {loss:+.4f} alone in INT8")
    # Ties (common: many groups cost nothing alone) keep the given order, which lists the groups by FLOPs.
    ranked = [c["group"] for c in sorted(costs, key=lambda c: -c["loss_alone"])]
    floated: list[str] = []
    steps = []
    while True:
        loss = loss_of(floated)
        steps.append({"float_groups": list(floated), "loss": loss})
        echo(f"  float {floated or 'none'}: worst loss {loss:+.4f}")
        if loss <= target or len(floated) == len(ranked):
            break
        floated.append(ranked[len(floated)])
    return floated, {"groups": costs, "ranked": ranked, "steps": steps, "target": target}


def gate_float_groups(ranked: list[str], floated: list[str], gate: Callable[[list[str]], list[dict[str, Any]]],
                      max_loss: float, echo: Callable[[str], None] = print) -> tuple[list[str], list[dict], int]:
    """Check the searched graph on the held-out volumes; while its worst loss exceeds ``max_loss``, put the next
    group of the ranking back to float and check again.

    Returns:
        The float groups that passed, the gate's rows for them, and how many graphs the gate checked.

    Raises:
        Int8LossError: No graph with a group left in INT8 passes (nothing is written).
    """
    floated, attempts, worst_row = list(floated), 0, None
    while True:
        if len(floated) >= len(ranked):
            received = ("the search put every group back in float" if worst_row is None else
                        f"loss {worst_row['loss']:.4f} on held-out seed {worst_row['seed']} ({worst_row['level']}"
                        f"{', ' + worst_row['engine'] if 'engine' in worst_row else ''}): "
                        f"fp32 {worst_row['fp32']:.4f}, int8 {worst_row['int8']:.4f}, after {attempts} graph(s)"
                        + (f"; {worst_row['uint8_split']['loss_at_reference_range']:+.4f} of it inside the sections"
                           if "uint8_split" in worst_row else ""))
            raise Int8LossError("INT8 costs more challenge score than allowed; no INT8 file written",
                                received=received, expected=f"<= {max_loss:g} on every held-out volume (--max-loss) "
                                "with a group left in INT8",
                                todo="calibrate on your own volumes (--calibration DIR), allow more (--max-loss), "
                                     "or run fp32 / bf16")
        rows = gate(floated)
        attempts += 1
        worst_row = max(rows, key=lambda r: r["loss"])
        if worst_row["loss"] <= max_loss:
            return floated, rows, attempts
        echo(f"  gate: worst loss {worst_row['loss']:+.4f} > {max_loss:g}: {ranked[len(floated)]} back to float")
        floated.append(ranked[len(floated)])


# ---- the whole step --------------------------------------------------------------------------------------------

def convert_int8(onnx_path: str | Path, out_path: str | Path | None = None, config: Int8Config = Int8Config(),
                 calibration: np.ndarray | None = None, echo: Callable[[str], None] = print) -> Path:
    """Calibrate, search what stays float, check the held-out cost, then write ``model.int8.onnx`` + audit.

    Args:
        onnx_path: The checked float32 ``model.onnx`` (its metadata carries the card).
        out_path: Target [default: ``model.int8.onnx`` beside ``onnx_path``]; the audit goes beside it.
        config: Calibration source, counts and the loss limit.
        calibration: Already normalized ``float32[N, 1, rows, cols]`` calibration sections, overriding
            ``config.calibration`` (library use and tests: the check refuses a badly calibrated graph).
        echo: Progress lines.

    Returns:
        The INT8 graph's path; it and its audit exist only if the held-out check passed.

    Raises:
        ExportError: ``model.onnx`` missing or not ours, or the quantizer failed.
        InputError: Unusable ``--calibration`` folder.
        Int8LossError: The loss on a held-out volume exceeds ``config.max_loss`` (nothing written).
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path = Path(onnx_path)
    out_path = Path(out_path) if out_path is not None else onnx_path.with_name(ONNX_INT8_NAME)
    if not onnx_path.is_file():
        raise ExportError("float32 ONNX not found", received=str(onnx_path), expected="model.onnx",
                          todo="export it first: impeccable-export MODEL_DIR")
    graph = onnx.load(str(onnx_path))
    props = metadata(graph)
    if "card" not in props:
        raise ExportError("not a graph written by impeccable-export", received=str(onnx_path),
                          expected="metadata with the model card", todo="re-export it: impeccable-export MODEL_DIR")
    from impeccable.core.model_io import ModelIO

    io = ModelIO.from_card(json.loads(props["card"]))  # fed as the runtime feeds it: the card's scaling, padding
    window = io.window
    check_graph(graph, window)
    extent = (min(window[0], CHALLENGE_SECTION[0]), min(window[1], CHALLENGE_SECTION[1]))
    groups = node_groups(graph)

    if calibration is not None:
        calib, source = np.asarray(calibration, dtype=np.float32), "given sections"
    elif config.calibration is not None:
        calib, source = folder_calibration(config.calibration, window, config.sections, io), str(config.calibration)
    else:
        calib, source = (synthetic_calibration(window, config.sections, io=io),
                         f"synthetic families a+b, seeds {CALIBRATION_SEED}+")
    if len(calib) < 1:
        raise InputError("too few calibration sections", received=len(calib), expected=">= 1",
                         todo="pass a --calibration folder with more volumes")
    flops = conv_flops(graph)
    total_flops = sum(flops.values()) or 1.0
    group_flops: dict[str, float] = {}
    for node, group in groups.items():
        group_flops[group] = group_flops.get(group, 0.0) + flops.get(node, 0.0)
    # Searchable groups: those with convolutions (a group of Concat/Resize alone has nothing to quantize, and
    # "left in INT8" must mean arithmetic in INT8), largest arithmetic first (the order ties keep); the head
    # stays float, always.
    names = sorted({g for g in groups.values() if g != "head" and group_flops.get(g, 0.0) > 0},
                   key=lambda g: (-group_flops[g], g))
    head = [n for n, g in groups.items() if g == "head"]

    def float_nodes_of(floated: list[str]) -> list[str]:
        return head + [n for n, g in groups.items() if g in floated]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    search_shape = config.search_shape or (8, extent[0], extent[1])
    held_shape = config.held_out_shape or (8, extent[0], extent[1])
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".int8-") as tmp:
        work = Path(tmp)
        pre, candidate = work / "pre.onnx", work / out_path.name
        methods = ["minmax", "percentile"] if config.calibration_method == "auto" else [config.calibration_method]
        try:
            quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
            for method in methods:
                echo(f"calibrating ({method}) on {len(calib)} normalized sections ({source}) ...")
                quantize(pre, candidate, work / f"{method}.json", [], SectionReader(calib), method)
        except Exception as exc:  # the quantizer raises ValueError, RuntimeError, onnx errors...
            raise ExportError("INT8 quantization failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                              expected="a float32 graph written by impeccable-export",
                              todo="re-export it: impeccable-export MODEL_DIR --force") from exc

        search = scoring_volumes(SEARCH_SEED, config.search, search_shape, io)
        reference, _ = pipeline_scores(onnx_path, search, window, config.batch, io)
        echo(f"search volumes (fp32): {', '.join(f'{x:.4f}' for x in reference)}")
        journal = SearchJournal(journal_path(out_path), {
            "source_onnx_sha256": sha256_file(onnx_path), "calibration_sha256": _digest(calib),
            **{k: v for k, v in config.settings().items() if k != "max_loss"}, "batch": config.batch,
            "gate_engines": gate_engines(), "quantized_ops": list(QUANTIZED_OPS), "percentile": PERCENTILE})
        if journal.entries:
            echo(f"resuming: {len(journal.entries)} graph(s) already measured ({journal.path.name})")

        def loss_with(method: str) -> Callable[[list[str]], float]:
            def loss_of(floated: list[str]) -> float:
                known = journal.get("search", method, floated)
                if known is not None:
                    return float(known)
                quantize(pre, candidate, work / f"{method}.json", float_nodes_of(floated), method=method)
                scores, _ = pipeline_scores(candidate, search, window, config.batch, io)
                return journal.put("search", method, floated, worst_loss(reference, scores))
            return loss_of

        # Better ranges where they pay: each calibration's all-INT8 graph on the search volumes, the better kept.
        calibrations = {m: loss_with(m)([]) for m in methods}
        method = min(methods, key=lambda m: calibrations[m])
        echo("calibration: " + ", ".join(f"{m} loss {x:+.4f}" for m, x in calibrations.items()) + f" -> {method}")
        loss_of = loss_with(method)
        echo(f"sensitivity search: {len(names)} node groups, challenge score on {len(search)} search volume(s) ...")
        floated, sensitivity = search_float_groups(names, loss_of, SEARCH_MARGIN * config.max_loss, echo)

        held_out = scoring_volumes(HELD_OUT_SEED, config.held_out, held_shape, io)
        engines = gate_engines()
        fp32_scores, timing = {}, {}
        for engine in engines:
            fp32_scores[engine], seconds = pipeline_scores(onnx_path, held_out, window, config.batch, io,
                                                           engine=engine)
            timing[engine] = {"fp32_s": seconds}

        def gate(floated: list[str]) -> list[dict[str, Any]]:
            echo(f"gate: challenge score on {len(held_out)} held-out volume(s) through {', '.join(engines)}, "
                 f"float {floated or 'none'} ...")
            known = journal.get("gate", method, floated)
            quantized = known is None  # the candidate file on disk is this graph
            if known is None:
                quantize(pre, candidate, work / f"{method}.json", float_nodes_of(floated), method=method)
                known = {"rows": [], "int8_s": {}}
                for engine in engines:
                    scores, known["int8_s"][engine] = pipeline_scores(candidate, held_out, window, config.batch,
                                                                      io, engine=engine)
                    known["rows"] += [{"engine": engine, "seed": v.seed, "family": v.family, "level": v.level,
                                       "fp32": f, "int8": q, "loss": f - q}
                                      for v, f, q in zip(held_out, fp32_scores[engine], scores)]
                journal.put("gate", method, floated, known)
            rows = known["rows"]
            for engine in engines:
                timing[engine]["int8_s"] = known["int8_s"][engine]
            for r in rows:
                echo(f"  held-out seed {r['seed']} ({r['family']}, {r['level']}, {r['engine']}): fp32 "
                     f"{r['fp32']:.4f}, int8 {r['int8']:.4f}, loss {r['loss']:+.4f}")
            worst = max(rows, key=lambda r: r["loss"])
            if worst["loss"] > config.max_loss and "uint8_split" not in worst:
                # Why it fails, for the echo, the journal and a refusal: inside the sections, or the range.
                if not quantized:
                    quantize(pre, candidate, work / f"{method}.json", float_nodes_of(floated), method=method)
                volume = next(v for v in held_out if v.seed == worst["seed"])
                outs = [pipeline_outputs(p, [volume], window, config.batch, io, worst["engine"])[0][0]
                        for p in (onnx_path, candidate)]
                worst["uint8_split"] = uint8_split(volume.clean, *outs)
                journal.put("gate", method, floated, known)
            if "uint8_split" in worst:
                split = worst["uint8_split"]
                echo(f"  seed {worst['seed']} ({worst['engine']}): {split['loss_at_reference_range']:+.4f} of it "
                     f"inside the sections (scaled by the float32 output's range); the output's range moved "
                     f"{_span(split['reference_range'])} -> {_span(split['candidate_range'])}")
            return rows

        try:
            floated, rows, attempts = gate_float_groups(sensitivity["ranked"], floated, gate, config.max_loss, echo)
        except Int8LossError:
            echo(f"the measured graphs stay in {journal.path}: a rerun (another --max-loss, say) resumes from them")
            raise
        # The INT8 graph is rebuilt for the groups that passed (the last graph quantized may be another when
        # the gate's result came from the journal).
        quantize(pre, candidate, work / f"{method}.json", float_nodes_of(floated), method=method)
        float_nodes = float_nodes_of(floated)
        int8_share = sum(f for n, f in flops.items() if n not in set(float_nodes)) / total_flops
        sensitivity.update(float_groups=floated, gate_attempts=attempts,
                           group_flop_share={g: group_flops.get(g, 0.0) / total_flops for g in names})

        int8 = onnx.load(str(candidate))
        check_graph(int8, window)
        ops: dict[str, int] = {}
        for node in int8.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        audit: dict[str, Any] = {
            "format_version": AUDIT_FORMAT,
            "quantizer": {"package": "onnxruntime", "version": onnxruntime.__version__, "api": "quantize_static",
                          "format": "QDQ", "ops": list(QUANTIZED_OPS), "activations": "int8 symmetric per tensor",
                          "weights": "int8 symmetric per output channel", "calibration_method": method,
                          "pre_process": "quant_pre_process (constant folding, shape inference)"},
            "calibration": {"source": source, "sections": int(len(calib)), "window": list(window), "method": method,
                            "percentile": PERCENTILE if method == "percentile" else None,
                            "search_losses": calibrations,
                            "normalization": f"{io.scaling.kind} per volume (the card's), inline sections cut and "
                                             f"padded with {io.pad_value:g} to the window"},
            "settings": config.settings(),
            "sensitivity": sensitivity,
            "float_nodes": sorted(float_nodes),
            "quantized_ops": {k: ops.get(k, 0) for k in ("QuantizeLinear", "DequantizeLinear")},
            "search": {"measure": "worst challenge-score loss (fp32 - int8) of the pipeline's output (tiles, flip "
                                  "TTA, ONNX Runtime CPU)", "volumes": [[v.seed, v.family, v.level] for v in search],
                       "shape": list(search_shape), "fp32": reference},
            "held_out": {"engines": [f"{e} cpu" for e in engines], "tta": True, "max_loss": config.max_loss,
                         "volumes": rows, "shape": list(held_shape), "worst_loss": max(r["loss"] for r in rows)},
            "flops": {"per_image": total_flops, "int8_share": int8_share},
            "speed": {"engine": "onnxruntime cpu", **timing["onnxruntime"],
                      "speedup": timing["onnxruntime"]["fp32_s"] / max(timing["onnxruntime"]["int8_s"], 1e-9),
                      "by_engine": {e: {**t, "speedup": t["fp32_s"] / max(t["int8_s"], 1e-9)}
                                    for e, t in timing.items()},
                      "note": "seconds inside the graph on the gate's volumes, this run, this machine"},
            "seconds": round(time.perf_counter() - started, 1),
            "source_onnx_sha256": sha256_file(onnx_path),
        }
        # The audit travels with the graph (metadata) and beside it (JSON), and later into a plan's manifest.
        set_metadata(int8, precision="int8", source_onnx_sha256=audit["source_onnx_sha256"],
                     int8_audit=json.dumps(audit_summary(audit), sort_keys=True))
        save_checked(int8, candidate, "INT8 graph")
        report = work / "audit.json"
        report.write_text(json.dumps(audit, indent=2) + "\n")
        os.replace(candidate, out_path)
        os.replace(report, audit_path(out_path))
        journal.remove()
    return out_path


def audit_summary(audit: dict[str, Any]) -> dict[str, Any]:
    """The part of an audit that goes into ONNX metadata and a plan manifest."""
    sens = audit.get("sensitivity", {})
    return {"quantizer": audit.get("quantizer"), "calibration": audit.get("calibration"),
            "float_groups": sens.get("float_groups"), "float_nodes": len(audit.get("float_nodes", [])),
            "search_loss": (sens.get("steps") or [{}])[-1].get("loss"), "gate_attempts": sens.get("gate_attempts"),
            "held_out": audit.get("held_out"), "flops": audit.get("flops"), "speed": audit.get("speed"),
            "settings": audit.get("settings"),
            "source_onnx_sha256": audit.get("source_onnx_sha256")}
