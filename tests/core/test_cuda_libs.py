"""libcudart from the CUDA 13 wheels (``site-packages/nvidia/cu13/lib``) is found by Polygraphy's own search."""

from __future__ import annotations

import sys

import pytest

from impeccable.core import cuda_libs


@pytest.fixture
def cu13_site(tmp_path, monkeypatch):
    """A site-packages with only the CUDA 13 runtime wheel's layout, first on sys.path; a clean LD_LIBRARY_PATH."""
    lib = tmp_path / "site-packages" / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcudart.so.13").write_bytes(b"")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site-packages"), *sys.path])
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/elsewhere")
    return lib


def _polygraphy_finds(lib) -> bool:
    """Whether Polygraphy 0.53's libcudart search (the one polygraphy.cuda runs) lists ``lib``'s library."""
    cuda = pytest.importorskip("polygraphy.cuda.cuda")
    from polygraphy import util

    return str(lib / "libcudart.so.13") in util.find_in_dirs(cuda_libs.CUDART_GLOB, cuda._find_cuda_lib_dirs())


def test_polygraphy_alone_misses_the_cuda13_wheel(cu13_site):
    assert not _polygraphy_finds(cu13_site)  # the bug this module works around


def test_exposed_cudart_is_found_by_polygraphy(cu13_site):
    assert cuda_libs.expose_cudart() == cu13_site
    assert _polygraphy_finds(cu13_site)
    cuda_libs.expose_cudart()  # idempotent
    assert cuda_libs.os.environ["LD_LIBRARY_PATH"].split(":") == [str(cu13_site), "/opt/elsewhere"]


def test_no_wheel_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(cuda_libs, "cudart_dirs", lambda: [])
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/elsewhere")
    assert cuda_libs.expose_cudart() is None
    assert cuda_libs.os.environ["LD_LIBRARY_PATH"] == "/opt/elsewhere"


def test_the_tensorrt_engine_exposes_cudart_before_polygraphy_cuda():
    """The engine and the plan check call expose_cudart before the first polygraphy.cuda import."""
    import inspect

    from impeccable.export import tensorrt_build
    from impeccable.runtime.engines import trt_engine

    for source in (inspect.getsource(trt_engine.TensorRTEngine._setup), inspect.getsource(tensorrt_build.verify_plan)):
        assert source.index("expose_cudart()") < source.index("from polygraphy")
