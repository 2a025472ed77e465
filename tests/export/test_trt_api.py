"""Every TensorRT name the project's code uses exists in the real Python bindings of TensorRT 10 and 11.

No GPU and no TensorRT libraries needed: the bindings wheel (``tensorrt_cu13_bindings``, about 1.3 MB, the
pybind11 module alone) is downloaded from PyPI, and the three shared libraries it links (``libnvinfer``,
``libnvinfer_plugin``, ``libnvonnxparser``) are replaced by stubs compiled here that export the few factory
symbols it imports. The module then imports, and its classes, enums and methods can be looked up, though
nothing can run. The names come from the code itself (ast): every ``trt.A.B`` chain in a module that imports
``tensorrt``, and the methods called on the engine, context and runtime objects of the TensorRT engine.

Marked ``trt_api`` (deselected by default: it downloads and compiles); CI runs ``pytest -m trt_api``. Offline
or without a C compiler it skips, saying why.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("core", "data", "models", "train", "export", "runtime", "benchmarks")
#: The TensorRT majors the code supports (DESIGN §5), as the CUDA 13 bindings wheel of each.
MAJORS = {"10": "tensorrt_cu13_bindings>=10.13,<11", "11": "tensorrt_cu13_bindings>=11,<12"}
#: Attributes of ``self`` in the TensorRT engine that hold TensorRT objects -> their class in the bindings.
TRT_OBJECTS = {"engine": "ICudaEngine", "context": "IExecutionContext", "runtime": "Runtime"}

pytestmark = pytest.mark.trt_api


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ``["a", "b", "c"]`` (None for anything but a plain dotted name)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def trt_names(source: str) -> set[str]:
    """The TensorRT names a module uses: ``"Logger.WARNING"`` for ``trt.Logger.WARNING``,
    ``"ICudaEngine.get_tensor_name"`` for ``self.engine.get_tensor_name``; empty unless it imports tensorrt.

    A name probed with ``hasattr(trt.X, "NAME")`` counts as ``X`` only: the probe is how the code handles a
    name that one major lacks.
    """
    tree = ast.parse(source)
    aliases = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names if alias.name == "tensorrt"}
    if not aliases:
        return set()
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:  # the outermost attribute of each chain
            continue
        chain = _chain(node)
        if chain and chain[0] in aliases:
            names.add(".".join(chain[1:]))
        elif chain and chain[0] == "self" and len(chain) > 2 and chain[1] in TRT_OBJECTS:
            names.add(f"{TRT_OBJECTS[chain[1]]}.{chain[2]}")
    return names


def project_trt_names() -> dict[str, set[str]]:
    """Module path -> the TensorRT names it uses, for every module of the project that imports tensorrt."""
    found = {}
    for stage in STAGES:
        for path in sorted((ROOT / stage).rglob("*.py")):
            names = trt_names(path.read_text())
            if names:
                found[path.relative_to(ROOT).as_posix()] = names
    return found


#: Run in a child process whose LD_LIBRARY_PATH holds the stubs (the loader reads it at start-up only).
_LOOKUP = """
import json, sys
import tensorrt_bindings as trt
missing = []
for name in json.load(sys.stdin):
    obj = trt
    for part in name.split("."):
        if not hasattr(obj, part):
            missing.append(name)
            break
        obj = getattr(obj, part)
print(json.dumps({"version": trt.__version__, "missing": missing}))
"""


def _stub_libraries(module: Path, out: Path) -> None:
    """Empty libraries for every TensorRT library ``module`` links, the first exporting every symbol it imports."""
    needed = [line.split("[")[1].rstrip("]") for line in subprocess.run(
        ["readelf", "-d", str(module)], capture_output=True, text=True, check=True).stdout.splitlines()
        if "(NEEDED)" in line and "[libnv" in line]
    symbols = [fields[1] for fields in (line.split() for line in subprocess.run(
        ["nm", "-D", "--undefined-only", str(module)], capture_output=True, text=True, check=True).stdout.splitlines())
        if len(fields) == 2 and fields[0] == "U" and "@" not in fields[1] and not fields[1].startswith(("Py", "_Py"))]
    out.mkdir(parents=True, exist_ok=True)
    (out / "stub.c").write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in symbols))
    (out / "empty.c").write_text("")
    for i, lib in enumerate(needed):
        source = out / ("stub.c" if i == 0 else "empty.c")
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out / lib), str(source)], check=True, capture_output=True)


@pytest.fixture(scope="module", params=sorted(MAJORS))
def bindings(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(major, folder holding ``tensorrt_bindings``, folder of stub libraries) for one TensorRT major."""
    for tool in ("gcc", "nm", "readelf"):
        if shutil.which(tool) is None:
            pytest.skip(f"the TensorRT API check needs {tool} (build-essential / binutils)")
    major = request.param
    root = tmp_path_factory.mktemp(f"trt{major}")
    pip = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                          "-d", str(root / "wheel"), MAJORS[major]], capture_output=True, text=True, timeout=300)
    wheels = sorted((root / "wheel").glob("*.whl")) if pip.returncode == 0 else []
    if not wheels:
        pytest.skip(f"cannot download {MAJORS[major]} from PyPI (offline?): "
                    f"{(pip.stderr.strip().splitlines() or ['no wheel for this Python'])[-1]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(root / "site")
    modules = sorted((root / "site" / "tensorrt_bindings").glob("tensorrt*.so"))
    assert modules, f"{wheels[0].name} holds no tensorrt_bindings/tensorrt*.so"
    _stub_libraries(modules[0], root / "stubs")
    return major, root / "site", root / "stubs"


def missing_names(bindings: tuple[str, Path, Path], names: set[str]) -> tuple[str, list[str]]:
    """(TensorRT version, the names it lacks) from the real bindings."""
    _, site, stubs = bindings
    env = dict(os.environ, PYTHONPATH=str(site), LD_LIBRARY_PATH=str(stubs))
    result = subprocess.run([sys.executable, "-c", _LOOKUP], input=json.dumps(sorted(names)), env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"the bindings did not import against the stubs: {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    return report["version"], report["missing"]


def test_every_tensorrt_name_the_code_uses_exists(bindings):
    used = project_trt_names()
    assert "runtime/engines/trt_engine.py" in used and "export/tensorrt_build.py" in used, sorted(used)
    version, missing = missing_names(bindings, set().union(*used.values()))
    where = {name: [m for m, names in used.items() if name in names] for name in missing}
    assert not missing, f"TensorRT {version} lacks {where}"
    assert version.split(".")[0] == bindings[0]


def test_the_check_catches_a_name_one_major_lacks(bindings):
    """BuilderFlag.FP16 exists in TensorRT 10 (deprecated) and is gone in 11 (DESIGN §5)."""
    names = trt_names("import tensorrt as trt\nflag = trt.BuilderFlag.FP16\nok = trt.BuilderFlag\n")
    assert names == {"BuilderFlag.FP16", "BuilderFlag"}
    _, missing = missing_names(bindings, names)
    assert missing == ([] if bindings[0] == "10" else ["BuilderFlag.FP16"])


def test_names_are_read_from_the_code():
    source = ("import tensorrt as trt\n"
              "class E:\n"
              "    def f(self):\n"
              "        self.logger = trt.Logger(trt.Logger.WARNING)\n"
              "        if hasattr(trt.NetworkDefinitionCreationFlag, 'STRONGLY_TYPED'):\n"
              "            self.context.execute_async_v3(0)\n"
              "        return self.engine.num_io_tensors, trt.__version__\n")
    assert trt_names(source) == {"Logger", "Logger.WARNING", "NetworkDefinitionCreationFlag",
                                 "IExecutionContext.execute_async_v3", "ICudaEngine.num_io_tensors", "__version__"}
    assert trt_names("import numpy as np\nx = np.float32\n") == set()
