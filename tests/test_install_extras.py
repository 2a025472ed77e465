"""The install extras: one ONNX Runtime build per environment, chosen by the extra (the rembg[cpu] / [gpu] pattern).

The static checks read pyproject.toml. The resolution check asks pip (``--dry-run --report``, resolving from
PyPI as a fresh environment would) what ``.[gpu]`` installs: onnxruntime-gpu, and no CPU onnxruntime beside it
(both write the same ``onnxruntime/`` folder). It skips offline.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORT = {"onnxruntime", "onnxruntime-gpu"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def project() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_base_install_has_no_onnxruntime_and_an_engine(project):
    base = {_name(r) for r in project["dependencies"]}
    assert not base & ORT, "a base ONNX Runtime would sit beside onnxruntime-gpu in every [gpu] install"
    assert "openvino" in base  # so that `pip install impeccable` still denoises on a CPU


def test_each_engine_extra_brings_one_onnxruntime(project):
    extras = {name: {_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    assert extras["cpu"] & ORT == {"onnxruntime"}
    assert extras["gpu"] & ORT == {"onnxruntime-gpu"}
    for name, names in extras.items():
        assert len(names & ORT) <= 1, f"[{name}] pulls both ONNX Runtime builds"
    (everything,) = project["optional-dependencies"]["all"]
    included = set(re.search(r"\[(.*)\]", everything).group(1).split(","))
    assert {"cpu", "segy", "train", "dev"} <= included and "gpu" not in included


def test_gpu_extra_says_cuda_13():
    text = (ROOT / "pyproject.toml").read_text()
    gpu_block = text[text.index("gpu = ["):]
    comment = text[:text.index("gpu = [")].rsplit("\n\n", 1)[-1]
    assert "CUDA 13" in comment and "onnxruntime-gpu>=1.27" in gpu_block and "tensorrt-cu13" in gpu_block


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.network
def test_gpu_extra_resolves_to_onnxruntime_gpu_alone(project):
    """pip's own resolution of the [gpu] extra in a fresh environment lists one ONNX Runtime."""
    if not _reachable("pypi.org"):
        pytest.skip("PyPI is not reachable (offline): cannot ask pip to resolve the [gpu] extra")
    # tensorrt-cu13-libs is a placeholder on PyPI whose metadata step downloads the real wheel from
    # pypi.nvidia.com; where that host is out of reach, resolve the project with the rest of the extra.
    nvidia = _reachable("pypi.nvidia.com")
    gpu = [r for r in project["optional-dependencies"]["gpu"] if nvidia or not _name(r).startswith("tensorrt")]
    targets = [".[gpu]"] if nvidia else [".", *gpu]
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", "-", *targets], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    installs = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
    runtimes = sorted(f"{name}=={installs[name]}" for name in ORT & set(installs))
    print(f"pip install {' '.join(targets)} --dry-run resolves ONNX Runtime to: {runtimes}")
    assert [r.split("==")[0] for r in runtimes] == ["onnxruntime-gpu"], runtimes
