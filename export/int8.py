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
symmetric (zero point 0: TensorRT accepts nothing else), weights per output channel, activations per tensor,
min-max calibration; only convolutions are quantized (:data:`QUANTIZED_OPS`). The graph is first pre-processed by ``quant_pre_process`` (shape inference and constant
folding: the exported graph casts the SE blocks' fp16-held weights to float32 at run time, and a weight behind a
``Cast`` would be quantized as an activation, per tensor).

Calibration: normalized sections as the runtime feeds them (per-volume min-max of the noisy volume, inline
sections cut to the window and zero-padded at the end of both axes), from the shipped generator's synthetic
volumes (:func:`impeccable.data.synth.synthesize_pair`, seeds from :data:`CALIBRATION_SEED`, random noise
levels), or from the user's own ``.npy`` volumes (``--calibration DIR``).

Sensitivity (what stays float): the nodes are grouped by the module they come from (encoder stem and each
encoder stage, each decoder depth ``x_<i>_*``). Each group is quantized alone and its denoised field compared
with float32 on sections the calibration did not see (the challenge's SSIM on uint8, as
:func:`impeccable.export.fp16.compare_fields` measures); then, starting from everything in INT8, the costliest
groups are put back to float one at a time until the whole graph's deviation is within :data:`SENSITIVITY_TARGET`
(at most :data:`MAX_FLOAT_GROUPS` groups). Always float, not searched: the output head (last Conv and Sigmoid;
one output channel, a negligible share of the FLOPs, and quantizing it would leave the output with at most 256
levels before the challenge's own uint8 step), as in the FP16 graph.

Cost check before anything is written: the challenge score (:func:`impeccable.data.scoring.score_volumes`) of
the INT8 and the float32 graph, each through the denoising pipeline on ONNX Runtime CPU with flip TTA, on
held-out synthetic volumes (seeds from :data:`HELD_OUT_SEED`, never used in training or calibration). If the
loss on any volume exceeds ``max_loss`` the export is refused (:class:`Int8LossError`) and no INT8 file is left.
The audit (calibration, sensitivity table, float nodes, held-out scores) goes into the graph's metadata
(``int8_audit``) and beside it (``model.int8.audit.json``), and later into a TensorRT plan's manifest.
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

from impeccable.core.card import ONNX_INT8_NAME, sha256_file, window_of
from impeccable.core.errors import ExportError, InputError
from impeccable.export.onnx_export import INPUT_NAME, OUTPUT_NAME, check_graph, metadata, save_checked, set_metadata

if TYPE_CHECKING:
    import onnx

AUDIT_FORMAT = 1
DEFAULT_MAX_LOSS = 0.002
DEFAULT_SECTIONS = 16
#: Synthetic calibration volumes; the held-out check uses HELD_OUT_SEED and up (as benchmarks/quality does),
#: the training runs derive theirs from ``--seed`` through a hash and meet neither.
CALIBRATION_SEED = 700001
HELD_OUT_SEED = 900001
HELD_OUT_LEVELS = ("moderate", "strong")
#: The sensitivity pass stops putting groups back to float once 1 - SSIM(int8, fp32) is at most this.
SENSITIVITY_TARGET = 0.002
MAX_FLOAT_GROUPS = 4
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
            longest) [None: synthetic volumes from the shipped generator].
        sections: Calibration sections.
        sensitivity_sections: Sections the sensitivity pass compares on (not used for calibration).
        max_loss: Largest accepted challenge-score loss (fp32 - int8) on any held-out volume.
        held_out: Held-out synthetic volumes for the loss check (levels alternate moderate / strong).
        held_out_shape: ``(inline, crossline, sample)`` of each held-out volume [None: 8 x the challenge section,
            cut to the model window].
        batch: Sections per engine call in the held-out check (flip TTA doubles the images).
    """

    calibration: Path | None = None
    sections: int = DEFAULT_SECTIONS
    sensitivity_sections: int = 2
    max_loss: float = DEFAULT_MAX_LOSS
    held_out: int = 4
    held_out_shape: tuple[int, int, int] | None = None
    batch: int = 2

    def __post_init__(self) -> None:
        if not (self.sections >= 1 and self.sensitivity_sections >= 1 and self.held_out >= 1):
            raise ExportError("INT8 calibration needs sections and held-out volumes",
                              received=f"sections {self.sections}, sensitivity {self.sensitivity_sections}, "
                                       f"held-out {self.held_out}", expected=">= 1 each", todo="pass positive counts")
        if not 0 <= self.max_loss < 1:
            raise ExportError("--max-loss out of range", received=self.max_loss,
                              expected="0 <= loss < 1 (default 0.002)", todo="pass --max-loss 0.002")

    def settings(self) -> dict[str, Any]:
        """What decides the INT8 graph (an up-to-date file was made with the same)."""
        return {"calibration": str(self.calibration.resolve()) if self.calibration else "synthetic",
                "sections": self.sections, "sensitivity_sections": self.sensitivity_sections,
                "max_loss": self.max_loss, "held_out": self.held_out,
                "held_out_shape": list(self.held_out_shape) if self.held_out_shape else None}


def audit_path(int8_onnx: str | Path) -> Path:
    """The audit JSON beside an INT8 graph: ``model.int8.onnx`` -> ``model.int8.audit.json``."""
    int8_onnx = Path(int8_onnx)
    return int8_onnx.with_name(int8_onnx.name.removesuffix(".onnx") + ".audit.json")


def read_audit(int8_onnx: str | Path) -> dict[str, Any] | None:
    """The audit JSON beside an INT8 graph (None when missing or unreadable)."""
    try:
        return json.loads(audit_path(int8_onnx).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ---- calibration data ------------------------------------------------------------------------------------------

def _cut(volume: np.ndarray, window: tuple[int, int], count: int) -> np.ndarray:
    """``count`` evenly spaced inline sections of a normalized ``(inline, crossline, sample)`` float32 volume,
    each cut to the window's top-left corner (the runtime's first tile) and zero-padded to it:
    ``float32[count, 1, rows, cols]``."""
    from impeccable.core.geometry import pad_sections

    picks = np.unique(np.linspace(0, volume.shape[0] - 1, count).round().astype(int))
    return pad_sections(np.ascontiguousarray(volume[picks, :window[0], :window[1]]), window)


def _normalized(volume: np.ndarray) -> np.ndarray:
    from impeccable.core.amplitude import normalize, volume_stats

    stats = volume_stats(volume)
    stats.check_not_constant()
    return normalize(volume, stats)


def synthetic_calibration(window: tuple[int, int], count: int, seed: int = CALIBRATION_SEED,
                          per_volume: int = 4) -> np.ndarray:
    """Normalized synthetic noisy sections padded to the window, ``per_volume`` from each of several volumes.

    Each volume is :func:`~impeccable.data.synth.synthesize_pair` (random noise level) of shape
    ``(8, traces, samples)``, the challenge's section cut to the window, normalized over the whole noisy volume.

    Returns:
        ``float32[count, 1, rows, cols]`` in ``[0, 1]``.
    """
    from impeccable.data.synth import synthesize_pair

    shape = (8, max(8, min(window[0], CHALLENGE_SECTION[0])), max(32, min(window[1], CHALLENGE_SECTION[1])))
    out, volume = [], 0
    while sum(len(o) for o in out) < count:
        _, noisy = synthesize_pair(seed + volume, shape=shape)
        out.append(_cut(_normalized(noisy), window, per_volume))
        volume += 1
    return np.concatenate(out)[:count]


def folder_calibration(folder: Path, window: tuple[int, int], count: int) -> np.ndarray:
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
    out = []
    for path in files:
        try:
            stored = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError("calibration volume is unreadable", received=f"{path}: {exc}".splitlines()[0],
                             expected="a .npy array", todo="check the file") from exc
        volume = to_canonical(stored, resolve_time_axis(stored.shape))
        out.append(_cut(_normalized(np.asarray(volume, dtype=np.float32)), window, per_file))
    return np.concatenate(out)[:count]


class SectionReader:
    """ONNX Runtime ``CalibrationDataReader`` over ``float32[N, 1, rows, cols]`` sections, one per call."""

    def __init__(self, sections: np.ndarray):
        self.sections = sections
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.sections):
            return None
        self.index += 1
        return {INPUT_NAME: np.ascontiguousarray(self.sections[self.index - 1:self.index])}

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

def quantize(pre_path: Path, out_path: Path, cache: Path, float_nodes: Iterable[str],
             reader: SectionReader | None = None) -> None:
    """``quantize_static`` (Q/DQ, symmetric INT8, per-channel weights) with the calibration cache ``cache``.

    The first call (``reader`` given, no cache yet) calibrates and writes the cache; later calls reuse it.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(str(pre_path), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=sorted(set(float_nodes)),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
                    calibration_cache_path=str(cache))


def _session(path: Path) -> Any:
    import onnxruntime as ort

    from impeccable.core.cpu import physical_cores

    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _predict(path: Path, sections: np.ndarray) -> np.ndarray:
    """Unpadded ``(n, traces, samples)`` float32 predictions of the graph at ``path`` on ``sections``."""
    session = _session(path)
    out = np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: sections[i:i + 1]})[0]
                          for i in range(len(sections))])
    return out[:, 0]


def deviation(reference: np.ndarray, candidate: np.ndarray, extent: tuple[int, int]) -> dict[str, float]:
    """How far a candidate's denoised sections are from the float32 ones: ``1 - mean SSIM`` (challenge SSIM on
    uint8, each stack scaled by its own extremes), min SSIM and max abs on the unit scale."""
    from impeccable.export.fp16 import compare_fields

    stats = compare_fields(reference[:, :extent[0], :extent[1]], candidate[:, :extent[0], :extent[1]])
    return {"deviation": 1.0 - stats["mean_ssim"], "min_ssim": stats["min_ssim"], "max_abs": stats["max_abs"]}


def sensitivity_pass(pre_path: Path, groups: dict[str, str], cache: Path, sections: np.ndarray,
                     reference: np.ndarray, extent: tuple[int, int], work: Path,
                     echo: Callable[[str], None] = print) -> tuple[list[str], dict[str, Any]]:
    """Measure each group's cost alone, then put the costliest back to float until the graph is within target.

    Returns:
        The float node names (head included) and the pass's record (per-group costs, greedy steps).
    """
    head = [n for n, g in groups.items() if g == "head"]
    names = sorted({g for g in groups.values() if g != "head"})
    candidate = work / "candidate.onnx"
    costs = []
    for name in names:
        others = [n for n, g in groups.items() if g != name]
        quantize(pre_path, candidate, cache, others)
        cost = deviation(reference, _predict(candidate, sections), extent)
        costs.append({"group": name, "nodes": sum(1 for g in groups.values() if g == name), **cost})
        echo(f"  {name}: 1 - SSIM {cost['deviation']:.2e} alone in INT8")
    ranked = sorted(costs, key=lambda c: -c["deviation"])
    floated: list[str] = []
    steps = []
    while True:
        float_nodes = head + [n for n, g in groups.items() if g in floated]
        quantize(pre_path, candidate, cache, float_nodes)
        cost = deviation(reference, _predict(candidate, sections), extent)
        steps.append({"float_groups": list(floated), **cost})
        echo(f"  float {floated or 'head only'}: 1 - SSIM {cost['deviation']:.2e}")
        if cost["deviation"] <= SENSITIVITY_TARGET or len(floated) >= min(MAX_FLOAT_GROUPS, len(ranked)):
            break
        floated.append(ranked[len(floated)]["group"])
    # The last step is the one kept, even past the target: the held-out check decides whether it is good enough.
    record = {"metric": "1 - mean challenge SSIM (uint8) of the denoised field against float32",
              "sections": int(len(sections)), "target": SENSITIVITY_TARGET, "max_float_groups": MAX_FLOAT_GROUPS,
              "groups": costs, "steps": steps, "float_groups": floated}
    return float_nodes, record


# ---- the held-out cost -----------------------------------------------------------------------------------------

def held_out_scores(fp32_path: Path, int8_path: Path, window: tuple[int, int], config: Int8Config,
                    echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Challenge score of float32 and INT8 on each held-out volume (ONNX Runtime CPU, the runtime's math).

    Each volume is normalized per volume and its inline sections denoised with the runtime's tiling and flip
    TTA (:func:`impeccable.core.tiling.predict_sections`), so the scores are those of ``impeccable-denoise
    --scale unit``, without the export stage importing the runtime (the stage graph, DESIGN §1).

    Returns:
        One dict per volume: ``seed``, ``level``, ``fp32``, ``int8``, ``loss`` (fp32 - int8).
    """
    from impeccable.core.amplitude import normalize, volume_stats
    from impeccable.core.tiling import predict_sections
    from impeccable.data.scoring import score_volumes
    from impeccable.data.synth import NOISE_LEVELS, synthesize_pair

    shape = config.held_out_shape or (8, min(window[0], CHALLENGE_SECTION[0]), min(window[1], CHALLENGE_SECTION[1]))
    sessions = {"fp32": _session(fp32_path), "int8": _session(int8_path)}
    rows = []
    for i in range(config.held_out):
        seed, level = HELD_OUT_SEED + i, HELD_OUT_LEVELS[i % len(HELD_OUT_LEVELS)]
        clean, noisy = synthesize_pair(seed, shape=shape, noise_level=NOISE_LEVELS[level])
        sections = normalize(noisy, volume_stats(noisy))  # (inline, crossline, sample): inline sections
        row: dict[str, Any] = {"seed": seed, "level": level}
        for key, session in sessions.items():
            def run(x, session=session):
                return session.run(None, {session.get_inputs()[0].name: x})[0]

            row[key] = score_volumes(clean, predict_sections(sections, run, window, tta=True, batch=2 * config.batch))
        row["loss"] = row["fp32"] - row["int8"]
        echo(f"  held-out seed {seed} ({level}): fp32 {row['fp32']:.4f}, int8 {row['int8']:.4f}, "
             f"loss {row['loss']:+.4f}")
        rows.append(row)
    return rows


def check_loss(rows: list[dict[str, Any]], max_loss: float) -> None:
    """Refuse when the INT8 loss on any held-out volume exceeds ``max_loss``.

    Raises:
        Int8LossError: One line naming the worst volume.
    """
    worst = max(rows, key=lambda r: r["loss"])
    if worst["loss"] > max_loss:
        raise Int8LossError("INT8 costs more challenge score than allowed; no INT8 file written",
                            received=f"loss {worst['loss']:.4f} on held-out seed {worst['seed']} ({worst['level']}): "
                                     f"fp32 {worst['fp32']:.4f}, int8 {worst['int8']:.4f}",
                            expected=f"<= {max_loss:g} on every held-out volume (--max-loss)",
                            todo="calibrate on your own volumes (--calibration DIR), allow more (--max-loss), or run "
                                 "fp32 / bf16")


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
    window = window_of(json.loads(props["card"]))
    check_graph(graph, window)
    extent = (min(window[0], CHALLENGE_SECTION[0]), min(window[1], CHALLENGE_SECTION[1]))
    groups = node_groups(graph)

    total = config.sections + config.sensitivity_sections
    if calibration is not None:
        sections, source = np.asarray(calibration, dtype=np.float32), "given sections"
    elif config.calibration is not None:
        sections, source = folder_calibration(config.calibration, window, total), str(config.calibration)
    else:
        sections, source = synthetic_calibration(window, total), f"synthetic seeds {CALIBRATION_SEED}+"
    if len(sections) < 2:
        raise InputError("too few calibration sections", received=len(sections), expected=">= 2",
                         todo="pass a --calibration folder with more volumes")
    split = max(1, len(sections) - config.sensitivity_sections)
    calib, probe = sections[:split], sections[split:]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".int8-") as tmp:
        work = Path(tmp)
        pre, cache, candidate = work / "pre.onnx", work / "calibration.json", work / out_path.name
        try:
            quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
            echo(f"calibrating on {len(calib)} normalized sections ({source}) ...")
            quantize(pre, candidate, cache, [], SectionReader(calib))
        except Exception as exc:  # the quantizer raises ValueError, RuntimeError, onnx errors...
            raise ExportError("INT8 quantization failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                              expected="a float32 graph written by impeccable-export",
                              todo="re-export it: impeccable-export MODEL_DIR --force") from exc
        reference = _predict(onnx_path, probe)
        echo(f"sensitivity pass: {len(set(groups.values())) - 1} node groups, each alone in INT8, on "
             f"{len(probe)} section(s) ...")
        float_nodes, sensitivity = sensitivity_pass(pre, groups, cache, probe, reference, extent, work, echo)
        quantize(pre, candidate, cache, float_nodes)
        echo(f"checking the challenge score on {config.held_out} held-out volume(s) (fp32 vs int8, TTA) ...")
        rows = held_out_scores(onnx_path, candidate, window, config, echo)
        check_loss(rows, config.max_loss)

        int8 = onnx.load(str(candidate))
        check_graph(int8, window)
        ops: dict[str, int] = {}
        for node in int8.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        audit: dict[str, Any] = {
            "format_version": AUDIT_FORMAT,
            "quantizer": {"package": "onnxruntime", "version": onnxruntime.__version__, "api": "quantize_static",
                          "format": "QDQ", "ops": list(QUANTIZED_OPS), "activations": "int8 symmetric per tensor",
                          "weights": "int8 symmetric per output channel", "calibration_method": "MinMax",
                          "pre_process": "quant_pre_process (constant folding, shape inference)"},
            "calibration": {"source": source, "sections": int(len(calib)), "window": list(window),
                            "normalization": "min-max per volume, inline sections cut and zero-padded to the window"},
            "settings": config.settings(),
            "sensitivity": sensitivity,
            "float_nodes": sorted(float_nodes),
            "quantized_ops": {k: ops.get(k, 0) for k in ("QuantizeLinear", "DequantizeLinear")},
            "held_out": {"engine": "onnxruntime cpu", "tta": True, "max_loss": config.max_loss, "volumes": rows,
                         "worst_loss": max(r["loss"] for r in rows)},
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
    return out_path


def audit_summary(audit: dict[str, Any]) -> dict[str, Any]:
    """The part of an audit that goes into ONNX metadata and a plan manifest."""
    sens = audit.get("sensitivity", {})
    return {"quantizer": audit.get("quantizer"), "calibration": audit.get("calibration"),
            "float_groups": sens.get("float_groups"), "float_nodes": len(audit.get("float_nodes", [])),
            "deviation": (sens.get("steps") or [{}])[-1].get("deviation"),
            "held_out": audit.get("held_out"), "settings": audit.get("settings"),
            "source_onnx_sha256": audit.get("source_onnx_sha256")}
