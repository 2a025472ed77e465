"""Runtime fixtures: a tiny model directory with its ONNX export, and small synthetic volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_WINDOW = (64, 128)
TINY_SMP = {"encoder_name": "tu-test_resnet", "decoder_channels": [16, 16, 8, 8, 8]}


def make_volume(shape: tuple[int, int, int] = (6, 40, 150), seed: int = 0, amplitude: float = 300.0,
                offset: float = -120.0) -> np.ndarray:
    """A seismic-like ``(inline, crossline, sample)`` float32 volume: dipping Ricker reflectors plus noise.

    Values span ``[offset, offset + amplitude]`` (not the unit range, so scaling round trips are exercised).
    """
    rng = np.random.default_rng(seed)
    n_il, n_xl, n_t = shape
    il = np.arange(n_il, dtype=np.float64)[:, None, None]
    xl = np.arange(n_xl, dtype=np.float64)[None, :, None]
    t = np.arange(n_t, dtype=np.float64)[None, None, :]
    vol = np.zeros(shape)
    for _ in range(10):
        arg = (np.pi * 0.08 * (t - rng.uniform(0, n_t) - rng.uniform(-0.4, 0.4) * xl
                               - rng.uniform(-0.4, 0.4) * il)) ** 2
        vol += rng.normal() * (1 - 2 * arg) * np.exp(-arg)
    vol += 0.3 * rng.normal(size=shape)
    vol = (vol - vol.min()) / (vol.max() - vol.min())
    return (vol * amplitude + offset).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_volume():
    """Factory: ``tiny_volume(shape=(6, 40, 150), seed=0)`` -> seismic-like ``(inline, crossline, sample)`` float32."""
    return make_volume


def _export(model_dir: Path) -> None:
    """Write ``model_dir/model.onnx`` (checked, parity-tested) with the TorchScript exporter: 5 s against 16 s."""
    from impeccable.export.onnx_export import export_onnx

    export_onnx(model_dir, dynamo=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny UNet++ (tu-test_resnet encoder, 64 x 128 window) saved as a model directory with model.onnx."""
    torch = pytest.importorskip("torch")
    from impeccable.core.card import new_card
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(0)
    card = new_card(TINY_SMP, input_size=TINY_WINDOW, name="tiny-test")
    model = build_model(card)
    out_dir = tmp_path_factory.mktemp("tiny-model")
    save_model_dir(model, card, out_dir)
    _export(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_robust_model_dir(tmp_path_factory) -> Path:
    """A tiny field-ready model (robust scaling, padding at 0.5, linear output, 4 ms) with model.onnx."""
    torch = pytest.importorskip("torch")
    from impeccable.core.card import new_card
    from impeccable.models.builder import build_model
    from impeccable.models.checkpoint import save_model_dir

    torch.manual_seed(3)
    card = new_card(TINY_SMP, input_size=TINY_WINDOW, scaling="robust", name="tiny-robust")
    out_dir = tmp_path_factory.mktemp("tiny-robust-model")
    save_model_dir(build_model(card), card, out_dir)
    _export(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def noisy_volume(tiny_volume) -> np.ndarray:
    """A small noisy volume ``(inline, crossline, sample)`` float32 = (9, 40, 150)."""
    return tiny_volume((9, 40, 150), seed=11)


@pytest.fixture
def volume_file(tmp_path, noisy_volume):
    """Write a volume as .npy in either orientation: ``volume_file(time_first=True)`` -> path."""

    def write(time_first: bool = False, array: np.ndarray | None = None, name: str = "vol.npy") -> Path:
        vol = noisy_volume if array is None else array
        path = tmp_path / name
        np.save(path, np.moveaxis(vol, -1, 0) if time_first else vol)
        return path

    return write


@pytest.fixture
def client():
    """A dask client on two in-process workers (one thread each; inproc transport: nothing listens), closed after."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c) as cl:
            yield cl


@pytest.fixture(autouse=True)
def no_dask_client_left_behind(request):
    """Close a default dask client a test leaves behind, and say which test left it.

    A CI run once hung in a later test's ``mdio.segy_to_mdio``: its dask computation went to a default client
    left by an earlier test, whose cluster was gone. Closing it here keeps the next test's computations local;
    the warning names the test to fix.
    """
    yield
    import sys
    import warnings

    client_module = sys.modules.get("distributed.client")
    if client_module is None:  # no test so far imported distributed: nothing to leave behind
        return
    try:
        left = client_module.default_client()
    except ValueError:  # "No clients found": the normal case
        return
    warnings.warn(f"{request.node.nodeid} left a default dask client behind ({left}); closed it", stacklevel=1)
    left.close()
