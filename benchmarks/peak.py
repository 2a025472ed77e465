"""The machine's measured peak: a large matrix product, timed the same way as the engines.

Engines are judged against what this machine does on its best-case kernel in the same run (the machine is
shared and its clocks vary, so a datasheet number would mislead).
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np


def _best_rate(run, flop: float, repeats: int) -> float:
    run()  # warm-up: thread pools, page faults, kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return flop / best / 1e9


def int8_matmul_gops(n: int = 2048, repeats: int = 5) -> float:
    """GOP/s (2 per multiply-add) of an ``n x n`` uint8 x int8 -> int32 product, ONNX Runtime's ``MatMulInteger``.

    That is MLAS's quantized GEMM, the kernel ORT's Q/DQ convolutions and matrix products run on (VNNI / AMX-INT8
    where the CPU has them), with the physical cores as threads like the engines.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from impeccable.core.cpu import physical_cores

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    w = rng.integers(-128, 128, (n, n), dtype=np.int8)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "int8_peak",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return _best_rate(lambda: session.run(None, {"a": a}), 2.0 * n**3, repeats)


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of an ``n x n`` matrix product: ``fp32`` through numpy's BLAS, ``bf16`` through torch when present,
    ``int8`` (GOP/s) through ONNX Runtime's quantized GEMM when onnxruntime and onnx are present.

    On a GPU (torch with CUDA) ``fp16_cuda`` and ``fp32_cuda`` (TF32 off) are measured too.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flop = 2.0 * n**3
    peaks = {"fp32": _best_rate(lambda: a @ b, flop, repeats)}
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        peaks["int8"] = int8_matmul_gops(n, repeats)
    if importlib.util.find_spec("torch") is None:
        return peaks
    import torch

    ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
    peaks["bf16"] = _best_rate(lambda: ta @ tb, flop, repeats)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        big = 8192
        ga = torch.randn(big, big, device="cuda")
        gb = torch.randn(big, big, device="cuda")

        def timed(x, y):
            def run():
                x @ y
                torch.cuda.synchronize()
            return run

        peaks["fp32_cuda"] = _best_rate(timed(ga, gb), 2.0 * big**3, repeats)
        peaks["fp16_cuda"] = _best_rate(timed(ga.half(), gb.half()), 2.0 * big**3, repeats)
        peaks["bf16_cuda"] = _best_rate(timed(ga.bfloat16(), gb.bfloat16()), 2.0 * big**3, repeats)
    return peaks
