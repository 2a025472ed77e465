"""A command whose extra is missing says which extra to install, in one line, exit 1; importing train needs no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from impeccable.core import extras
from impeccable.core.errors import ImpeccableError

# Runs with torch made unimportable (sys.modules[name] = None: find_spec answers None, import raises).
NO_TORCH = "import sys; sys.modules['torch'] = None; "


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH + code], capture_output=True, text=True, timeout=120)


def test_import_impeccable_train_needs_no_torch():
    result = _run("import impeccable.train; print('torch' in sys.modules and sys.modules['torch'] is not None)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_impeccable_train_without_torch_names_the_extra_in_one_line():
    result = _run("sys.argv = ['impeccable-train', '--synthetic', '2', '--out', 'x']; import impeccable.train; "
                  "impeccable.train.main()")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: impeccable-train needs the [train] extra | received torch")
    assert "pip install '.[train]' in the impeccable clone (not on PyPI)" in result.stderr


@pytest.mark.parametrize("command", ["impeccable-train", "impeccable-denoise", "impeccable-export", "impeccable-synth",
                                     "impeccable-score"])
def test_every_command_help_exits_0_without_torch(command):
    result = _run(f"sys.argv = ['{command}', '--help']; from importlib.metadata import entry_points; "
                  f"[e for e in entry_points(group='console_scripts') if e.name == '{command}'][0].load()()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: {command} [OPTIONS]") and "--help" in result.stdout
    assert "Traceback" not in result.stderr


def test_require_passes_where_the_extra_is_installed():
    pytest.importorskip("torch")
    pytest.importorskip("segmentation_models_pytorch")
    extras.require("train", "impeccable-train")


def test_missing_extra_is_one_of_ours(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImpeccableError, match=r"needs the \[train\] extra \| received torch"):
        extras.require("train", "impeccable-train")
