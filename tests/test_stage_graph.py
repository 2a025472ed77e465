"""The stage graph of DESIGN §1, read from the code: core <- data <- models <- {train, export}, core <- runtime.

One more edge: ``impeccable-train --adapt`` reads the user's survey with the runtime's readers (and its
section reader and statistics), so that it trains on sections exactly as the runtime feeds them; only the
adaptation's survey module imports the runtime (the runtime never imports train, so there is no loop).

Every ``import impeccable.<stage>...`` / ``from impeccable.<stage>... import`` in every module (function-level
imports included: a lazy import is still a dependency) is an edge between stages. The graph must have no loop,
and each stage may only import the stages below it. The runtime reaches models only for the torch engine and
the default model path, and never imports train or export.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("core", "data", "models", "train", "export", "runtime", "benchmarks")

#: stage -> the stages it may import.
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "models": {"core", "data"},
    "train": {"core", "data", "models", "runtime"},
    "export": {"core", "data", "models"},
    "runtime": {"core", "data", "models"},
    "benchmarks": {"core", "data", "models", "train", "export", "runtime"},
}
#: The only runtime modules that may import models (the torch engine; the default model directory).
RUNTIME_TO_MODELS = {"runtime/engines/torch_engine.py", "runtime/config.py"}
#: The only train module that may import the runtime (the survey reader of ``--adapt``).
TRAIN_TO_RUNTIME = {"train/survey.py"}


def imported_stages(path: Path) -> set[str]:
    """The stages a module imports (``impeccable.<stage>``), at any depth of the module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "impeccable":  # from impeccable import runtime
                names = [f"impeccable.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "impeccable" and len(parts) > 1 and parts[1] in STAGES:
                found.add(parts[1])
    return found


def stage_edges(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(importing stage, imported stage) -> the modules that make the edge (self-edges left out)."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for stage in STAGES:
        for path in sorted((root / stage).rglob("*.py")):
            for target in imported_stages(path) - {stage}:
                edges[stage, target].append(path.relative_to(root).as_posix())
    return dict(edges)


def find_loop(edges) -> list[str] | None:
    """One cycle of the stage graph (as a path that ends where it starts), or None."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else path + [nxt]
            if nxt not in state and (loop := visit(nxt, path + [nxt])):
                return loop
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (loop := visit(start, [start])):
            return loop
    return None


def test_the_stage_graph_has_no_loop():
    loop = find_loop(stage_edges())
    assert loop is None, f"the stages import each other in a loop: {' -> '.join(loop)}"


def test_each_stage_imports_only_the_stages_below_it():
    wrong = {edge: modules for edge, modules in stage_edges().items() if edge[1] not in ALLOWED[edge[0]]}
    assert not wrong, "\n".join(f"{a} -> {b}: {modules}" for (a, b), modules in sorted(wrong.items()))


def test_runtime_reaches_models_only_for_the_torch_engine_and_the_default_model():
    modules = set(stage_edges().get(("runtime", "models"), []))
    assert modules <= RUNTIME_TO_MODELS, sorted(modules - RUNTIME_TO_MODELS)


def test_train_reaches_the_runtime_only_to_read_a_survey():
    modules = set(stage_edges().get(("train", "runtime"), []))
    assert modules <= TRAIN_TO_RUNTIME, sorted(modules - TRAIN_TO_RUNTIME)


@pytest.mark.parametrize(("code", "expected"), [
    ("import impeccable.export.manifest\n", {"export"}),
    ("def f():\n    from impeccable.train.loop import train\n", {"train"}),
    ("from impeccable import runtime\n", {"runtime"}),
    ("from .base import x\nimport numpy\n", set()),
])
def test_imports_are_read_at_any_depth(tmp_path, code, expected):
    path = tmp_path / "m.py"
    path.write_text(code)
    assert imported_stages(path) == expected


def test_a_loop_is_found():
    assert find_loop({("runtime", "export"): [], ("export", "runtime"): []}) in (
        ["export", "runtime", "export"], ["runtime", "export", "runtime"])
    assert find_loop({("runtime", "core"): [], ("export", "core"): []}) is None
