"""PyTorch -> ONNX, with the checks that keep the graph deployable and the parity test built in.

The graph takes ``input`` float32 ``[batch, 1, rows, cols]`` (symbolic batch, static window from the card) and
returns ``output`` of the same shape in ``[0, 1]`` (the sigmoid is inside). The default is the dynamo exporter
(``dynamo=True``): for the ``tf_`` encoder's TF-"SAME" convolutions it folds the asymmetric padding into the
convolutions' ``pads`` instead of emitting run-time ``Shape -> Pad`` chains that TensorRT parsers choke on. The
legacy exporter (``dynamo=False``) is kept as a fallback; its graph goes through Polygraphy's constant folding.

Nothing is written at the target path unless every check passes: the graph is saved to a temporary file beside
it, checked (symbolic batch, static window, no ``Shape``, constant ``Pad`` inputs, ``onnx.checker`` full check),
compared with PyTorch in ONNX Runtime (batch 1 and 3, random and synthetic sections, max abs <= 1e-4), and only
then renamed into place.

``torch`` and ``onnx`` are imported inside the functions that use them: :func:`synthetic_sections` and
:func:`check_graph` serve the TensorRT build too, which may run where only ``impeccable[gpu]`` is installed.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from impeccable.core.atomic import atomic_write
from impeccable.core.card import ONNX_NAME, window_of
from impeccable.core.errors import ExportError, ParityError

if TYPE_CHECKING:
    import onnx
    import torch

PARITY_ATOL = 1e-4
DEFAULT_OPSET = 18
#: ONNX's protobuf limit: a larger graph needs its weights in an external file.
PROTOBUF_LIMIT = 2**31 - 2**20
INPUT_NAME, OUTPUT_NAME = "input", "output"
PRODUCER = "impeccable-export"


def synthetic_sections(window: tuple[int, int], count: int = 3, seed: int = 0) -> np.ndarray:
    """Normalized synthetic noisy sections, padded to the model window: what the engine sees in production.

    A small synthetic pair (:func:`impeccable.data.synth.synthesize_pair`) is min-max normalized over its
    noisy volume (:mod:`impeccable.core.amplitude`), cut into inline sections no larger than the window
    (challenge-sized, 300 x 1259, for the shipped 320 x 1280), and zero-padded at the end of both axes.

    Args:
        window: ``(rows, cols)`` model window.
        count: Number of sections.
        seed: Synthetic volume seed.

    Returns:
        ``(count, 1, rows, cols)`` float32 in ``[0, 1]``.
    """
    from impeccable.core.amplitude import normalize, volume_stats
    from impeccable.core.geometry import pad_sections
    from impeccable.data.synth import synthesize_pair

    rows, cols = window
    shape = (max(8, count), max(8, min(rows, 300)), max(32, min(cols, 1259)))
    _, noisy = synthesize_pair(seed, shape=shape)
    sections = normalize(noisy, volume_stats(noisy))[:count, :rows, :cols]
    return pad_sections(sections, window)


def parity_inputs(window: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """The parity batches: randomized and plain normalized synthetic sections, each at batch 1 and 3.

    The randomized ones are another synthetic volume's sections plus white noise (std 0.03), clipped to [0, 1].
    Not uniform noise on [0, 1]: a trained denoiser drives such out-of-distribution input to logits of +-100s,
    where float32 rounding in either framework flips saturated sigmoids and the comparison measures nothing
    but that (max abs 1 on a model whose production inputs agree to 1e-6).
    """
    rng = np.random.default_rng(seed)
    sections = synthetic_sections(window, 3, seed)
    jitter = rng.normal(0.0, 0.03, (3, 1, *window)).astype(np.float32)
    randoms = np.clip(synthetic_sections(window, 3, seed + 1) + jitter, 0.0, 1.0)
    return [randoms[:1], randoms, sections[:1], sections]


def check_graph(model: onnx.ModelProto, window: tuple[int, int]) -> None:
    """Refuse a graph whose batch is not symbolic, whose window is not static, or that computes shapes at run time.

    Raises:
        ExportError: What is wrong, and what was expected.
    """
    todo = "export with dynamo=True (the default), or report the model card"
    ios = list(model.graph.input) + list(model.graph.output)
    names = [t.name for t in ios]
    if names != [INPUT_NAME, OUTPUT_NAME]:
        raise ExportError("graph inputs/outputs are not named as the runtime expects", received=names,
                          expected=[INPUT_NAME, OUTPUT_NAME], todo=todo)
    for tensor in ios:
        elem = tensor.type.tensor_type.elem_type
        if elem != 1:  # onnx.TensorProto.FLOAT
            raise ExportError(f"{tensor.name} is not float32", received=f"ONNX element type {elem}",
                              expected="1 (float32)", todo=todo)
        dims = tensor.type.tensor_type.shape.dim
        if len(dims) != 4:
            raise ExportError(f"{tensor.name} is not 4-D", received=len(dims), expected="[batch, 1, rows, cols]", todo=todo)
        batch, rest = dims[0], [d.dim_value for d in dims[1:]]
        if batch.HasField("dim_value") or not batch.dim_param:
            raise ExportError(f"{tensor.name}'s batch dimension is not symbolic", received=batch.dim_value,
                              expected="a named dynamic dimension", todo="export with a batch >= 2 and dynamic shapes")
        if rest != [1, *window]:
            raise ExportError(f"{tensor.name} is not 1 x {window[0]} x {window[1]}", received=rest,
                              expected=[1, *window], todo="check the card's input_size")
    shape_ops = [n.name for n in model.graph.node if n.op_type == "Shape"]
    if shape_ops:
        raise ExportError("graph computes shapes at run time", received=f"{len(shape_ops)} Shape op(s)",
                          expected="none (the window is static)", todo=todo)
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Pad" and any(name and name not in constants for name in node.input[1:]):
            raise ExportError("a Pad's pads are computed at run time", received=node.name,
                              expected="constant pads", todo=todo)


def max_abs_diff(session: Any, model: torch.nn.Module, inputs: list[np.ndarray]) -> float:
    """Largest |ONNX Runtime - PyTorch| over ``inputs`` (``float32[N, 1, rows, cols]`` batches)."""
    import torch

    worst = 0.0
    for x in inputs:
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if got.shape != ref.shape:
            raise ParityError("ONNX output shape differs from PyTorch", received=list(got.shape),
                              expected=list(ref.shape), todo="the export is wrong: report it with the model card")
        diff = np.abs(got.astype(np.float64) - ref)
        worst = max(worst, float(diff.max()) if np.isfinite(diff).all() else float("inf"))
    return worst


def check_parity(onnx_path: str | Path, model: torch.nn.Module, window: tuple[int, int],
                 atol: float = PARITY_ATOL) -> float:
    """Max |ONNX Runtime CPU - PyTorch| over random and synthetic inputs at batch 1 and 3.

    Raises:
        ParityError: The difference exceeds ``atol`` (or is not finite).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = max_abs_diff(session, model, parity_inputs(window))
    if not worst <= atol:
        raise ParityError("the ONNX graph's output differs from PyTorch", received=f"max abs {worst:.3g}",
                          expected=f"<= {atol:g} (ONNX Runtime CPU vs PyTorch, batch 1 and 3)",
                          todo="the export is wrong: try --no-dynamo, or report it with the model card")
    return worst


def export_graph(model: torch.nn.Module, path: Path, window: tuple[int, int], opset: int, dynamo: bool) -> None:
    """Run ``torch.onnx.export`` (no checks) to ``path``; the weights may land in external files beside it."""
    import torch

    # A batch >= 2: torch.export specializes a dimension of size 1 to a constant.
    dummy = torch.rand(2, 1, *window)
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(model, (dummy,), str(path), dynamo=True, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes=({0: batch},), optimize=True, verbose=False)
    else:
        with warnings.catch_warnings():  # the legacy exporter was asked for: its deprecation notice is noise here
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})


def save_model(graph: onnx.ModelProto, path: Path) -> None:
    """Save one self-contained file; only a graph over protobuf's 2 GB limit gets an external ``.data`` file."""
    import onnx

    large = graph.ByteSize() > PROTOBUF_LIMIT
    onnx.save(graph, str(path), save_as_external_data=large, all_tensors_to_one_file=True,
              location=path.name + ".data")


def save_checked(graph: onnx.ModelProto, path: Path, what: str = "exported graph") -> None:
    """:func:`save_model`, then ``onnx.checker`` with the full check on the saved file.

    Raises:
        ExportError: The file is not valid ONNX (``what`` names the graph in the message).
    """
    import onnx

    save_model(graph, path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the {what} is not valid ONNX", received=str(exc).splitlines()[0],
                          expected="onnx.checker full check to pass", todo="report it with the model card") from exc


def set_metadata(graph: onnx.ModelProto, **props: str) -> None:
    """Set ``metadata_props`` entries (replacing those with the same keys)."""
    kept = [(p.key, p.value) for p in graph.metadata_props if p.key not in props]
    del graph.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        graph.metadata_props.add(key=key, value=value)


def restamp_card(path: str | Path, card: dict) -> Path:
    """Write ``card`` into an exported ONNX file's metadata, graph and weights untouched (atomically, checked).

    For a card whose runtime fields changed (output guard, scaling notes, metrics): the graph does not depend on
    them, so no export and no parity run are needed (:func:`impeccable.export.cli._only_card_is_stale` decides).
    """
    import onnx

    path = Path(path)
    graph = onnx.load(str(path))
    set_metadata(graph, card=json.dumps(card, sort_keys=True))
    with atomic_write(path) as f:
        onnx.save(graph, str(f.tmp))
        onnx.checker.check_model(str(f.tmp), full_check=True)
    return path


def metadata(graph: onnx.ModelProto) -> dict[str, str]:
    """The graph's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in graph.metadata_props}


def export_onnx(model_dir: str | Path, out_path: str | Path | None = None, opset: int = DEFAULT_OPSET,
                dynamo: bool = True, atol: float = PARITY_ATOL) -> Path:
    """Export a model directory to ONNX, check the graph, and compare it with PyTorch.

    Args:
        model_dir: Directory with ``model.safetensors`` and ``model.json``.
        out_path: Target file [default: ``model_dir/model.onnx``].
        opset: ONNX opset.
        dynamo: The dynamo exporter (recommended) or the legacy TorchScript one (constant-folded afterwards).
        atol: Largest accepted |ONNX Runtime - PyTorch|.

    Returns:
        The written ONNX path; it exists only if every check passed.

    Raises:
        ModelError: The model directory cannot be loaded.
        ExportError: The exporter failed or the graph fails a check.
        ParityError: ONNX Runtime and PyTorch disagree beyond ``atol``.
    """
    import onnx

    from impeccable.models.checkpoint import load_model

    model_dir = Path(model_dir)
    model, card = load_model(model_dir)
    window = window_of(card)
    out_path = Path(out_path) if out_path else model_dir / ONNX_NAME
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            export_graph(model, raw, window, opset, dynamo)
        except Exception as exc:  # the exporters raise many types
            raise ExportError("torch.onnx.export failed", received=f"{type(exc).__name__}: {exc}".splitlines()[0],
                              expected="a traceable model", todo="try --no-dynamo, or report it with the model card") from exc
        graph = onnx.load(str(raw))  # pulls external weights (if any) into memory: the result is one file
        if not dynamo:
            graph = fold_constants(graph)
        check_graph(graph, window)
        set_metadata(graph, card=json.dumps(card, sort_keys=True), weights_sha256=str(card.get("weights_sha256", "")),
                     producer=PRODUCER, exporter="dynamo" if dynamo else "torchscript", opset=str(opset),
                     precision="fp32")
        candidate = Path(tmp) / out_path.name
        save_checked(graph, candidate)
        worst = check_parity(candidate, model, window, atol)
        set_metadata(graph, parity_max_abs=f"{worst:.3g}")  # metadata only: the checked graph is unchanged
        save_model(graph, candidate)
        commit_file(candidate, out_path)
        data, old_data = candidate.with_name(candidate.name + ".data"), out_path.with_name(out_path.name + ".data")
        if data.exists():
            commit_file(data, old_data)
        elif old_data.exists():  # left by an earlier export of a larger graph: not this one's
            old_data.unlink()
    return out_path


def commit_file(finished: Path, target: Path) -> Path:
    """Move a finished file into place through :func:`impeccable.core.atomic.atomic_write`.

    The file was written under its final name in a scratch folder beside ``target`` (so that an external
    ``.data`` file keeps the name the graph records), then checked; a reader never sees half of it.

    Raises:
        OutputError: The move failed (one line; the target is untouched).
    """
    with atomic_write(target) as f:
        os.replace(finished, f.tmp)
    return target


def fold_constants(graph: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the legacy exporter's ``Shape -> ... -> Pad`` chains into constants (Polygraphy's folder)."""
    import importlib.util

    missing = [m for m in ("polygraphy", "onnx_graphsurgeon") if importlib.util.find_spec(m) is None]
    if missing:  # Polygraphy would only warn and leave the graph unfolded
        raise ExportError("the legacy exporter's graph needs constant folding (Polygraphy + ONNX GraphSurgeon)",
                          received=f"{', '.join(missing)} not installed", expected="polygraphy, onnx-graphsurgeon",
                          todo="pip install polygraphy onnx-graphsurgeon, or export with --dynamo (the default)")
    from polygraphy.backend.onnx import fold_constants as polygraphy_fold
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.ERROR):  # one line per folding pass otherwise
        return polygraphy_fold(graph, fold_shapes=True)
