"""The volume pipeline with stand-in engines: round trips, flip TTA, views, scales, batching, bounded reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from impeccable.core.amplitude import VolumeStats, normalize
from impeccable.core.errors import EngineError, InputError, OutputError
from impeccable.data.scoring import to_uint8_volume
from impeccable.runtime import batching, pipeline
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.volumes import open_reader


class FakeEngine:
    """An engine stand-in: ``fn`` over each batch, with the calls it saw recorded."""

    name, precision, device = "fake", "fp32", "cpu"

    def __init__(self, fn=None, window=(16, 32), max_batch=None):
        self.fn = fn or (lambda batch: batch.copy())
        self.window = window
        self.max_batch = max_batch
        self.calls: list[int] = []
        self.closed = False

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32 and batch.flags.c_contiguous
        assert batch.shape[1:] == (1, *self.window)
        assert self.max_batch is None or batch.shape[0] <= self.max_batch
        self.calls.append(batch.shape[0])
        return self.fn(batch).astype(np.float32)

    def close(self) -> None:
        self.closed = True


def _trace_ramp(batch: np.ndarray) -> np.ndarray:
    """Depends on the trace (row) index: a mirror that is not undone shows up at once."""
    rows = batch.shape[2]
    return 0.5 * batch + 0.4 * (np.arange(rows, dtype=np.float32)[:, None] / rows)


def _nonlinear(batch: np.ndarray) -> np.ndarray:
    mixed = 4.0 * (batch - 0.5) + 0.3 * np.roll(batch, 1, axis=-1) - 0.2 * np.roll(batch, 1, axis=-2)
    return 1.0 / (1.0 + np.exp(-mixed))


def _run(tmp_path, vol, time_first=False, engine=None, name="in.npy", out="out.npy", **options):
    np.save(tmp_path / name, np.moveaxis(vol, -1, 0) if time_first else vol)
    options.setdefault("progress", False)
    config = DenoiseConfig(time_axis=0 if time_first else 2, **options)
    engine = engine or FakeEngine()
    report = pipeline.denoise_file(tmp_path / name, tmp_path / out, config, engine=engine)
    result = np.load(tmp_path / out)
    return (np.moveaxis(result, 0, -1) if time_first else result), report


# (window, volume): sections smaller than the window (padding) and larger (tiling) on both section kinds.
GEOMETRIES = [((16, 64), (5, 12, 40)), ((16, 32), (5, 20, 45))]


@pytest.mark.parametrize("time_first", [False, True])
@pytest.mark.parametrize("views", ["inline", "crossline", "both"])
@pytest.mark.parametrize("tta", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("window", "shape"), GEOMETRIES)
def test_identity_engine_round_trips_the_volume(tmp_path, tiny_volume, time_first, views, tta, batch, window, shape):
    vol = tiny_volume(shape, seed=batch)
    out, report = _run(tmp_path, vol, time_first, FakeEngine(window=window), views=views, tta=tta,
                       batch_size=batch)
    assert out.dtype == np.float32 and out.shape == vol.shape
    np.testing.assert_allclose(out, vol, rtol=0, atol=1e-4 * np.ptp(vol))
    n_sections = {"inline": shape[0], "crossline": shape[1], "both": shape[0] + shape[1]}[views]
    assert report.sections == n_sections
    assert report.nonfinite == 0 and report.stats.vmin == vol.min() and report.stats.vmax == vol.max()
    assert report.engine == "fake fp32" and report.engine_s <= report.total_s
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]


@pytest.mark.parametrize("time_first", [False, True])
@pytest.mark.parametrize("views", ["inline", "crossline"])
def test_flip_tta_mirrors_the_prediction_back(tmp_path, tiny_volume, time_first, views):
    vol = tiny_volume((5, 12, 40))
    stats = VolumeStats(float(vol.min()), float(vol.max()))
    unit = normalize(vol, stats)
    traces_axis = 1 if views == "inline" else 0
    n = vol.shape[traces_axis]
    rows = 16
    ramp = np.arange(n, dtype=np.float32) / rows
    ramp = ramp[None, :, None] if views == "inline" else ramp[:, None, None]

    plain, _ = _run(tmp_path, vol, time_first, FakeEngine(_trace_ramp, (rows, 64)), views=views, tta=False,
                    scale="unit", out="plain.npy")
    np.testing.assert_allclose(plain, 0.5 * unit + 0.4 * ramp, atol=1e-6)
    # section[::-1] through the engine, mirrored back, averaged: the trace-dependent part becomes its mean
    tta, _ = _run(tmp_path, vol, time_first, FakeEngine(_trace_ramp, (rows, 64)), views=views, tta=True,
                  scale="unit", out="tta.npy", overwrite=True)
    np.testing.assert_allclose(tta, 0.5 * unit + 0.2 * (n - 1) / rows, atol=1e-6)


def test_both_views_average_the_inline_and_crossline_predictions(tmp_path, tiny_volume):
    vol = tiny_volume((6, 10, 40))
    engine = lambda: FakeEngine(_trace_ramp, (16, 64))  # noqa: E731
    runs = {views: _run(tmp_path, vol, engine=engine(), views=views, scale="unit", out=f"{views}.npy", tta=False)[0]
            for views in ("inline", "crossline", "both")}
    np.testing.assert_allclose(runs["both"], 0.5 * (runs["inline"] + runs["crossline"]), atol=1e-6)


@pytest.mark.parametrize("time_first", [False, True])
@pytest.mark.parametrize("views", ["inline", "both"])
def test_uint8_scale_is_the_challenge_scale_of_the_unit_prediction(tmp_path, tiny_volume, time_first, views):
    vol = tiny_volume((5, 12, 40), seed=4)
    unit, _ = _run(tmp_path, vol, time_first, FakeEngine(_nonlinear, (16, 32)), views=views, scale="unit",
                   out="unit.npy")
    as_uint8, _ = _run(tmp_path, vol, time_first, FakeEngine(_nonlinear, (16, 32)), views=views, scale="uint8",
                       out="uint8.npy")
    assert as_uint8.dtype == np.uint8
    np.testing.assert_array_equal(as_uint8, to_uint8_volume(unit))
    assert unit.min() >= 0 and unit.max() <= 1


def test_input_scale_is_the_least_squares_affine_fit_of_the_unit_prediction(tmp_path, tiny_volume):
    vol = tiny_volume((5, 12, 40))
    unit, _ = _run(tmp_path, vol, engine=FakeEngine(_nonlinear), scale="unit", out="unit.npy")
    back, _ = _run(tmp_path, vol, engine=FakeEngine(_nonlinear), scale="input", out="input.npy")
    gain, offset = np.polyfit(unit.ravel().astype(np.float64), vol.ravel().astype(np.float64), 1)
    np.testing.assert_allclose(back, gain * unit + offset, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(("batch", "tta", "max_batch", "calls"), [
    (3, True, None, [6, 6, 6, 2]),   # 10 sections: 3 full batches and a partial one; both halves in one call
    (3, False, None, [3, 3, 3, 1]),
    (1, True, None, [2] * 10),
    (4, True, 5, [5, 3, 5, 3, 4]),  # the engine's own limit wins
])
def test_engine_calls_carry_batch_sections_and_their_mirrored_copies(tmp_path, tiny_volume, batch, tta, max_batch,
                                                                     calls):
    engine = FakeEngine(window=(16, 64), max_batch=max_batch)
    _, report = _run(tmp_path, tiny_volume((10, 12, 40)), engine=engine, batch_size=batch, tta=tta)
    assert engine.calls == calls
    assert report.images == sum(calls) and report.sections == 10


class RecordingReader:
    """Wraps a reader and records the size of every block it is asked for."""

    def __init__(self, reader):
        self.reader = reader
        self.shape, self.path = reader.shape, reader.path
        self.reads: list[tuple[int, int]] = []

    def read(self, inlines=slice(None), crosslines=slice(None)):
        block = self.reader.read(inlines, crosslines)
        self.reads.append(block.shape[:2])
        return block

    def __getattr__(self, name):
        return getattr(self.reader, name)


@pytest.mark.parametrize("views", ["inline", "crossline", "both"])
def test_reads_are_bounded_blocks_never_the_volume(tmp_path, tiny_volume, monkeypatch, views):
    vol = tiny_volume((12, 14, 40))
    recorded = []

    def recording_open_reader(*args, **kwargs):
        recorded.append(RecordingReader(open_reader(*args, **kwargs)))
        return recorded[-1]

    monkeypatch.setattr(pipeline, "open_reader", recording_open_reader)
    # a block budget of 3 inlines (14 x 40 float32 each): the statistics scan and the output pass read 3, the
    # views read slabs of 3 sections rounded up to whole batches of 2 (4 inlines, or 4 crosslines of 12 x 40)
    monkeypatch.setattr(batching, "BLOCK_BYTES", 3 * 14 * 40 * 4)
    out, _ = _run(tmp_path, vol, engine=FakeEngine(window=(16, 64)), views=views, batch_size=2)
    np.testing.assert_allclose(out, vol, atol=1e-4 * np.ptp(vol))
    (reader,) = recorded
    assert reader.reads
    for n_il, n_xl in reader.reads:
        inline_block = n_il <= 4 and n_xl == 14
        crossline_block = n_il == 12 and n_xl <= 4
        assert inline_block or crossline_block, (n_il, n_xl)


def test_nonfinite_samples_are_filled_with_the_finite_mean_and_counted(tmp_path, tiny_volume):
    vol = tiny_volume((5, 12, 40))
    vol[1, 2, 3], vol[2, 3, 4], vol[4, 0, 0] = np.nan, np.inf, -np.inf
    out, report = _run(tmp_path, vol, engine=FakeEngine(window=(16, 64)))
    assert report.nonfinite == 3 and report.stats.nonfinite == 3
    clean = np.where(np.isfinite(vol), vol, np.mean(vol[np.isfinite(vol)], dtype=np.float64))
    np.testing.assert_allclose(out, clean, atol=1e-4 * np.ptp(clean))


@pytest.mark.parametrize(("volume", "match"), [
    (np.full((4, 5, 20), 3.0, np.float32), "constant"),
    (np.where(np.arange(400).reshape(4, 5, 20) % 2, np.nan, 0).astype(np.float32), r"constant \(besides 200 NaN"),
    (np.zeros((0, 5, 20), np.float32), "empty"),
])
def test_unusable_volumes_leave_nothing_behind(tmp_path, volume, match):
    np.save(tmp_path / "in.npy", volume)
    engine = FakeEngine()
    with pytest.raises(InputError, match=match):
        pipeline.denoise_file(tmp_path / "in.npy", tmp_path / "out.npy", DenoiseConfig(progress=False), engine=engine)
    assert [p.name for p in tmp_path.iterdir()] == ["in.npy"]
    assert not engine.calls


def test_an_engine_failure_mid_run_leaves_nothing_and_keeps_an_old_output(tmp_path, tiny_volume):
    def explode_later(batch, seen=[]):  # noqa: B006 - a call counter
        seen.append(1)
        if len(seen) == 3:
            raise EngineError("engine fake failed")
        return batch

    np.save(tmp_path / "out.npy", np.arange(3))
    with pytest.raises(EngineError):
        _run(tmp_path, tiny_volume((8, 12, 40)), engine=FakeEngine(explode_later, (16, 64)), batch_size=1,
             overwrite=True, preview=tmp_path / "p.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.arange(3))


@pytest.mark.parametrize(("output", "options", "error", "match"), [
    ("out.npy", {}, OutputError, "output exists"),
    ("in.npy", {"overwrite": True}, OutputError, "overwrite the input"),
    ("out.h5", {}, OutputError, "format differs"),
    ("missing/out.npy", {}, OutputError, "does not exist"),
    ("sub", {"overwrite": True}, OutputError, "format differs|directory"),
    ("x.npy", {"views": "sideways"}, InputError, "unknown views"),
    ("x.npy", {"scale": "dB"}, InputError, "unknown output scale"),
    ("x.npy", {"batch_size": 0}, InputError, "batch size"),
])
def test_bad_outputs_and_settings_are_refused_before_any_work(tmp_path, tiny_volume, output, options, error, match):
    np.save(tmp_path / "in.npy", tiny_volume((4, 5, 20)))
    np.save(tmp_path / "out.npy", np.arange(3))
    (tmp_path / "sub").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    engine = FakeEngine()
    with pytest.raises(error, match=match):
        pipeline.denoise_file(tmp_path / "in.npy", tmp_path / output, DenoiseConfig(progress=False, **options),
                              engine=engine)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.arange(3))


def test_preview_is_written_with_the_output(tmp_path, tiny_volume):
    pytest.importorskip("matplotlib")
    png = tmp_path / "preview.png"
    _run(tmp_path, tiny_volume((5, 12, 40)), engine=FakeEngine(_nonlinear), preview=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiled_sections_are_blended_like_tiling_merge(tmp_path, tiny_volume):
    # 45 samples > 32-sample window: two tiles per section; a smooth nonlinear engine, compared with the
    # tiling module applied by hand to the same normalized sections.
    from impeccable.core import tiling

    vol = tiny_volume((3, 10, 45))
    out, report = _run(tmp_path, vol, engine=FakeEngine(_nonlinear, (16, 32)), tta=False, scale="unit")
    unit = normalize(vol, VolumeStats(float(vol.min()), float(vol.max())))
    tiles, plan = tiling.split(unit, (16, 32))
    np.testing.assert_allclose(out, tiling.merge(_nonlinear(tiles).astype(np.float32), plan), atol=1e-6)
    assert report.images == 3 * plan.tiles_per_section


TORCH_FREE = r"""
import json, sys
from pathlib import Path
import numpy as np
import impeccable.runtime, impeccable.runtime.cli, impeccable.runtime.pipeline
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.pipeline import denoise_file
root = Path(sys.argv[1])
config = DenoiseConfig(model=Path(sys.argv[2]), engine=sys.argv[3], batch_size=2, progress=False, overwrite=True)
report = denoise_file(root / "in.npy", root / "out.npy", config)
print(json.dumps({"torch": "torch" in sys.modules, "sections": report.sections, "engine": report.engine}))
"""


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_the_pipeline_with_a_non_torch_engine_never_imports_torch(tmp_path, tiny_volume, tiny_model_dir, engine):
    from impeccable.runtime.engines import installed

    if not installed(engine):
        pytest.skip(f"{engine} is not installed")
    np.save(tmp_path / "in.npy", tiny_volume((3, 20, 100)))
    done = subprocess.run([sys.executable, "-c", TORCH_FREE, str(tmp_path), str(tiny_model_dir), engine],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"torch": False, "sections": 3, "engine": result["engine"]}
    assert result["engine"].startswith(engine)


def test_a_failing_write_leaves_nothing_and_says_so_in_one_line(tmp_path, tiny_volume, monkeypatch):
    from impeccable.runtime.volumes.npy import NpyWriter

    original = NpyWriter.write
    calls = []

    def write(self, inlines, block):
        calls.append(inlines)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(self.tmp))
        original(self, inlines, block)

    monkeypatch.setattr(NpyWriter, "write", write)
    monkeypatch.setattr(batching, "BLOCK_BYTES", 4 * 12 * 40 * 4)  # output blocks of 4 inlines: fail mid-way
    with pytest.raises(OutputError, match="I/O failed.*No space left"):
        _run(tmp_path, tiny_volume((20, 12, 40)), engine=FakeEngine(window=(16, 64)), batch_size=1)
    assert len(calls) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["in.npy"]


def test_the_report_splits_the_time(tmp_path, tiny_volume):
    _, report = _run(tmp_path, tiny_volume((5, 12, 40)))
    assert report.load_s == 0.0  # the engine was passed in
    assert report.engine_s + report.pipeline_s == pytest.approx(report.total_s)
    assert report.sections_per_s == pytest.approx(5 / report.total_s)


BOUNDED_CHILD = r"""
import json, sys
from pathlib import Path
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.pipeline import denoise_file

class NullEngine:  # costs nothing: the peak is the pipeline's own
    name, precision, device, max_batch, window = "null", "fp32", "cpu", None, (320, 1280)
    def __call__(self, batch):
        return batch
    def close(self):
        pass

root, views, time_axis = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
config = DenoiseConfig(views=views, batch_size=8, time_axis=time_axis, overwrite=True, progress=False)
report = denoise_file(root / "in.npy", root / "out.npy", config, engine=NullEngine())
# VmHWM, not ru_maxrss: a child started by (v)fork + exec inherits its parent's ru_maxrss on Linux.
hwm = [line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")][0]
print(json.dumps({"peak": int(hwm.split()[1]) * 1024, "s": report.total_s}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from Linux /proc")
@pytest.mark.parametrize(("views", "time_first"), [("inline", False), ("both", True)])
def test_peak_memory_is_bounded_by_the_batch_not_the_volume(tmp_path, views, time_first):
    shape = (800, 300, 1259)  # 1.2 GB float32, challenge-sized sections
    stored_shape = (shape[2], shape[0], shape[1]) if time_first else shape
    stored = np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", dtype=np.float32, shape=stored_shape)
    rng = np.random.default_rng(0)
    for i in range(0, stored_shape[0], 64):
        stored[i:i + 64] = rng.standard_normal((min(64, stored_shape[0] - i), *stored_shape[1:]), dtype=np.float32)
    stored.flush()
    del stored
    done = subprocess.run([sys.executable, "-c", BOUNDED_CHILD, str(tmp_path), views, "0" if time_first else "2"],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    volume_bytes = int(np.prod(shape)) * 4
    print(f"peak RSS {result['peak'] / 2**20:.0f} MiB for a {volume_bytes / 2**20:.0f} MiB volume in {result['s']:.0f} s")
    assert result["peak"] < 640 * 2**20
    assert np.load(tmp_path / "out.npy", mmap_mode="r").shape == stored_shape
