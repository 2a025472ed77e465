"""The memory bound of ``--batch-size`` (issue 30): pure arithmetic on the registry's measured figures, and a
fresh CLI process whose absurd batch is clamped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from impeccable.runtime import memory
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.engines import ENGINES

CHILD = Path(__file__).with_name("memory_child.py")
CHALLENGE = (16, 300, 1259)  # 16 challenge-sized inline sections: one 320 x 1280 window each
WINDOW = (320, 1280)
GB = 1_000_000_000


def test_windows_that_fit_is_budget_minus_base_over_the_images_of_a_window():
    assert memory.windows_that_fit(10 * GB, 1 * GB, GB // 2, 2) == 9  # (10 - 1) / (2 * 0.5)
    assert memory.windows_that_fit(10 * GB, 1 * GB, GB // 2, 1) == 18
    assert memory.windows_that_fit(10 * GB, 1 * GB, 3 * GB, 2) == 1  # 7 GB would fit 1.17 windows
    assert memory.windows_that_fit(GB // 2, 1 * GB, GB // 2, 2) == 1  # base alone over budget: still one window


def test_engine_memory_reads_the_registry_and_scales_per_image_by_window_pixels():
    base, per_image = ENGINES["onnxruntime"].memory["fp32"]
    assert memory.engine_memory("onnxruntime", None, WINDOW) == (base, per_image)  # the default precision
    assert memory.engine_memory("onnxruntime", "fp32", (160, 640)) == (base, per_image // 4)
    assert memory.engine_memory("tensorrt", "fp16", WINDOW) == memory.FALLBACK  # no measured figures
    assert memory.engine_memory("no-such-engine", None, WINDOW) == memory.FALLBACK
    for spec in ENGINES.values():  # figures only for precisions the engine has, each a positive line
        assert set(spec.memory) <= set(spec.precisions)
        assert all(b > 0 and p > 0 for b, p in spec.memory.values())


@pytest.mark.parametrize("engine, precision", [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")])
@pytest.mark.parametrize("available_gb", [8, 23, 64, 512])
def test_absurd_batch_peaks_within_the_budget_and_near_the_default(engine, precision, available_gb):
    """Issue 30's promise in the registry's own figures: 100000 on 16 sections, TTA, on the CPU."""
    if precision not in ENGINES[engine].memory:
        pytest.skip(f"no measured {engine} {precision} figures")
    budget = int(available_gb * GB * memory.MEMORY_SHARE)
    base, per_image = memory.engine_memory(engine, precision, WINDOW)

    def peak(batch: int) -> int:
        return base + per_image * 2 * batch

    default, note = memory.bounded_batch(CHALLENGE, ("inline",), WINDOW, DenoiseConfig.batch_size, True, budget,
                                         engine, precision)
    absurd, note = memory.bounded_batch(CHALLENGE, ("inline",), WINDOW, 100_000, True, budget, engine, precision)
    assert 1 <= absurd <= 16 and "--batch-size 100000 reduced to" in note
    assert peak(absurd) <= max(budget, peak(1))  # under the stated budget (one window always runs)
    assert peak(absurd) <= memory.CPU_CEILING * peak(DenoiseConfig.batch_size)
    assert absurd >= default  # a large request never runs smaller calls than the default


def test_gpu_runs_are_bounded_by_the_budget_alone():
    budget = 64 * GB
    assert memory.bounded_batch(CHALLENGE, ("inline",), WINDOW, 100_000, True, budget, "onnxruntime",
                                cpu=False) == (16, "")  # the volume's 16 windows: nothing to tell
    batch, note = memory.bounded_batch(CHALLENGE, ("inline",), WINDOW, 100_000, True, 2 * GB, "tensorrt",
                                       cpu=False)
    assert batch == memory.windows_that_fit(2 * GB, *memory.FALLBACK, 2) and "memory budget 2.0 GB" in note


def test_worker_budget_is_the_share_of_the_smallest_worker_limit():
    assert memory.worker_budget([None, 8 * GB, 4 * GB]) == int(4 * GB * memory.MEMORY_SHARE)
    assert memory.worker_budget([None, 0]) is None


def test_run_batch_resolves_engine_precision_and_device_from_the_config():
    config = DenoiseConfig(engine="openvino", batch_size=100_000, engine_options={"precision": "bf16"})
    got = memory.run_batch(config, CHALLENGE, WINDOW, budget=64 * GB)
    assert got == memory.bounded_batch(CHALLENGE, ("inline",), WINDOW, 100_000, True, 64 * GB, "openvino", "bf16")
    both = DenoiseConfig(engine="onnxruntime", batch_size=100_000, views="both", tta=False,
                         engine_options={"device": "cuda"})
    assert memory.run_batch(both, CHALLENGE, WINDOW, budget=1 << 50) == (300, "")  # crossline view: 300 windows


def test_a_fresh_cli_process_clamps_an_absurd_batch_and_denoises_the_same(tmp_path, tiny_model_dir, tiny_volume):
    """The real CLI in a child process under a fixed budget: the batch is cut to what the figures allow, said
    once, and the output is the one the allowed batch gives."""
    from impeccable.runtime.pipeline import denoise_file

    src = tmp_path / "in.npy"
    np.save(src, tiny_volume((12, 40, 150)))
    base, per_image = memory.engine_memory("onnxruntime", "fp32", (64, 128))
    budget = base + 3 * 2 * per_image  # three windows with TTA, well under the CPU ceiling
    cmd = [sys.executable, str(CHILD), str(budget), str(src), "-o", str(tmp_path / "out.npy"), "--model",
           str(tiny_model_dir), "--engine", "onnxruntime", "--batch-size", "100000", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("--batch-size 100000 reduced to 3: memory budget") == 1, done.stderr
    assert "at batch 3" in done.stdout + done.stderr
    assert int(done.stderr.strip().splitlines()[-1].split()[1]) > 0  # the child's own high-water mark
    config = DenoiseConfig(model=tiny_model_dir, engine="onnxruntime", batch_size=3, progress=False)
    denoise_file(src, tmp_path / "ref.npy", config)
    assert np.array_equal(np.load(tmp_path / "out.npy"), np.load(tmp_path / "ref.npy"))
