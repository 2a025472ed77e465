"""``impeccable.denoise``: the pipeline on in-memory volumes, for notebooks (numpy, xarray, dask).

Every path runs the pipeline's own passes (statistics, :func:`~impeccable.runtime.pipeline.predict_volume`,
:func:`~impeccable.runtime.calibrate.fit_amplitudes` / :func:`~impeccable.runtime.calibrate.write_output` or
their per-slab parts), so a numpy volume gives what :func:`~impeccable.runtime.pipeline.denoise_file` writes
for the same volume saved as ``.npy``, bit for bit, and a dask array gives the same values lazily.

- numpy ``(inline, crossline, sample)``: returns a numpy array of the same shape (float32, uint8 for ``uint8``).
- ``xarray.DataArray``: the time dimension is found by name (``time``, ``depth``, ``sample``...; else the last),
  the other two are inline and crossline in their order; returns a DataArray with the input's dims, coords and
  attrs (lazy when the input is dask-backed).
- dask array ``(inline, crossline, sample)``: returns a lazy dask array: one task per slab of whole sections
  and pass (statistics, predictions per view, fit sums, output); nothing runs until it is computed. The
  engine is built once per process (per worker on a distributed cluster) from the model's path.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from impeccable.core.amplitude import VolumeStats, merge_stats
from impeccable.core.calibration import AmplitudeFit
from impeccable.core.errors import InputError
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.volumes.zarr import TIME_NAMES  # the names a Zarr array's time axis is found by, too

#: Options of :func:`denoise` (the DenoiseConfig fields that apply to an in-memory volume).
OPTIONS = ("tta", "views", "batch_size", "scale", "strength", "engine_options", "progress")


class ArrayReader:
    """An in-memory ``(inline, crossline, sample)`` volume behind the reader protocol (every trace live)."""

    def __init__(self, volume: np.ndarray):
        self.volume, self.shape, self.dtype, self.path = volume, tuple(volume.shape), volume.dtype, None

    def read(self, inlines: slice = slice(None), crosslines: slice = slice(None)) -> np.ndarray:
        return np.array(self.volume[inlines, crosslines], dtype=np.float32)

    def close(self) -> None:
        """Nothing to release."""


class ArrayStore:
    """Unit predictions in memory, stored as the pipeline's scratch stores them (two views averaged)."""

    def __init__(self, shape: tuple[int, int, int], views: tuple[str, ...]):
        self.array, self.views = np.zeros(shape, dtype=np.float32), views

    def put(self, view: str, start: int, stop: int, pred: np.ndarray) -> None:
        if view == "inline":
            target = (slice(start, stop), slice(None))
        else:
            target, pred = (slice(None), slice(start, stop)), pred.transpose(1, 0, 2)
        if len(self.views) == 2 and view == "crossline":
            pred = np.add(self.array[target], pred)
            pred *= np.float32(0.5)
        self.array[target] = pred


def _config(model, engine, options: dict) -> DenoiseConfig:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InputError("unknown option", received=", ".join(unknown), expected=", ".join(OPTIONS),
                         todo="pass one of these")
    config = DenoiseConfig(model=model, engine=engine if isinstance(engine, str) else None,
                           **{"progress": False, **options})  # validated when built
    return config


_ENGINES: dict = {}
_LOCK = threading.Lock()


def _engine(factory):
    """One engine per process for a factory (the threads of a process share it; ORT sessions allow that)."""
    if not isinstance(factory, tuple) or factory[0] != "factory":
        return factory  # an open engine the caller passed
    with _LOCK:
        if factory not in _ENGINES:
            _ENGINES[factory] = factory[1]()
        return _ENGINES[factory]


def _factory(config: DenoiseConfig, engine):
    if engine is not None and not isinstance(engine, str):
        return engine
    from impeccable.runtime.distributed_worker import EngineFactory

    return ("factory", EngineFactory.from_config(config))


def _bounded(config: DenoiseConfig, shape: tuple[int, int, int], engine) -> DenoiseConfig:
    """``config`` with its batch bounded as every run's is (:func:`impeccable.runtime.memory.run_batch`)."""
    from impeccable.runtime.memory import run_batch

    built = _engine(engine)
    batch, _ = run_batch(config, tuple(shape), tuple(built.window), built.name, built.precision,
                         device=built.device)
    return replace(config, batch_size=batch)


def denoise_numpy(volume: np.ndarray, config: DenoiseConfig, engine) -> np.ndarray:
    """Denoise an in-memory ``(inline, crossline, sample)`` volume; float32 (uint8 for the ``uint8`` scale)."""
    from impeccable.runtime.calibrate import fit_amplitudes, write_output
    from impeccable.runtime.pipeline import block_inlines, predict_volume, reader_stats

    if volume.ndim != 3 or min(volume.shape) < 1 or volume.dtype.kind not in "fiu":
        raise InputError("not a 3-D numeric volume", received=f"{volume.ndim}-D {volume.dtype} {volume.shape}",
                         expected="(inline, crossline, sample) floats", todo="pass a 3-D array")
    reader = ArrayReader(volume)
    config = _bounded(config, reader.shape, engine)
    stats = reader_stats(reader)
    stats.check_not_constant()
    views = ("inline", "crossline") if config.views == "both" else (config.views,)
    store = ArrayStore(reader.shape, views)
    predict_volume(reader, _engine(engine), store, config, stats)
    step = block_inlines(reader.shape)
    fit, unit_range = fit_amplitudes(reader, lambda a, b: store.array[a:b], stats, config.strength, step)
    out = np.empty(reader.shape, dtype=np.uint8 if config.scale == "uint8" else np.float32)

    def write(a: int, b: int, block: np.ndarray) -> None:
        out[a:b] = block

    write_output(reader, lambda a, b: store.array[a:b], write, fit, stats, config.scale, config.strength,
                 unit_range, step)
    return out


def _predict_slab(block: np.ndarray, stats: VolumeStats, config: DenoiseConfig, view: str, engine) -> np.ndarray:
    from impeccable.runtime.distributed_worker import SlabBuffer
    from impeccable.runtime.pipeline import predict_volume

    buffer = SlabBuffer(block.shape)
    predict_volume(ArrayReader(block), _engine(engine), buffer, replace(config, views=view), stats)
    return buffer.array


def _stats_slab(block: np.ndarray) -> dict:
    from impeccable.runtime.pipeline import reader_stats_part

    return reader_stats_part(ArrayReader(block))


def _reduce_stats(parts: list[dict]) -> VolumeStats:
    stats = merge_stats(parts)  # exact per-slice sums: the fill is the one process's, bit for bit
    stats.check_not_constant()
    return stats


def _fit(parts: list, stats: VolumeStats) -> tuple[AmplitudeFit, tuple[float, float]]:
    fit = AmplitudeFit.from_sums(np.concatenate([p[0] for p in parts]), stats)
    return fit, (min(p[1] for p in parts), max(p[2] for p in parts))


def _fit_slab(inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats, strength: float):
    from impeccable.runtime.calibrate import block_sums

    return block_sums(np.asarray(inputs, dtype=np.float32), unit, stats, strength, None)


def _output_slab(inputs: np.ndarray, unit: np.ndarray, fitted, stats: VolumeStats, config: DenoiseConfig):
    from impeccable.runtime.calibrate import output_block

    fit, unit_range = fitted
    return output_block(np.asarray(inputs, dtype=np.float32), unit, fit, stats, config.scale, config.strength,
                        unit_range, None)[0]


def denoise_dask(volume, config: DenoiseConfig, engine):
    """A lazy dask array ``(inline, crossline, sample)``: the denoised ``volume``, one task per slab and pass."""
    import dask
    import dask.array as da

    from impeccable.runtime.distributed_plan import make_plan
    from impeccable.runtime.pipeline import sections_per_batch

    if volume.ndim != 3:
        raise InputError("not a 3-D volume", received=f"{volume.ndim}-D", expected="(inline, crossline, sample)",
                         todo="pass a 3-D dask array")
    views = ("inline", "crossline") if config.views == "both" else (config.views,)
    window = tuple(_engine(engine).window)  # built once here too: the plan needs the model's window
    config = _bounded(config, tuple(volume.shape), engine)
    probe = ArrayReader(np.empty((1, 1, 1), np.float32))
    probe.shape = tuple(volume.shape)
    steps = {v: sections_per_batch(probe, v, window, config.batch_size) for v in views}
    plan = make_plan(tuple(volume.shape), views, steps, 1)
    il_sizes = tuple(b - a for a, b in plan.inline)
    by_inline = volume.rechunk((il_sizes, -1, -1))
    slabs = by_inline.to_delayed().ravel()
    stats = dask.delayed(_reduce_stats)([dask.delayed(_stats_slab)(s) for s in slabs])
    shape = tuple(volume.shape)
    units = []
    for view in views:
        if view == "inline":
            pieces = [da.from_delayed(dask.delayed(_predict_slab)(s, stats, config, view, engine),
                                      (n, shape[1], shape[2]), dtype=np.float32) for s, n in zip(slabs, il_sizes)]
            units.append(da.concatenate(pieces, axis=0))
        else:
            xl_sizes = tuple(b - a for a, b in plan.crossline)
            xl = volume.rechunk((-1, xl_sizes, -1)).to_delayed().ravel()
            pieces = [da.from_delayed(dask.delayed(_predict_slab)(s, stats, config, view, engine),
                                      (shape[0], n, shape[2]), dtype=np.float32) for s, n in zip(xl, xl_sizes)]
            units.append(da.concatenate(pieces, axis=1).rechunk((il_sizes, -1, -1)))
    unit = units[0] if len(units) == 1 else (units[0] + units[1]) * np.float32(0.5)
    unit_slabs = unit.to_delayed().ravel()
    fitted = dask.delayed(_fit)([dask.delayed(_fit_slab)(s, u, stats, config.strength)
                                 for s, u in zip(slabs, unit_slabs)], stats)
    dtype = np.uint8 if config.scale == "uint8" else np.float32
    out = [da.from_delayed(dask.delayed(_output_slab)(s, u, fitted, stats, config), (n, shape[1], shape[2]),
                           dtype=dtype) for s, u, n in zip(slabs, unit_slabs, il_sizes)]
    return da.concatenate(out, axis=0)


def _is_dask(array) -> bool:
    return type(array).__module__.split(".")[0] == "dask"


def denoise(volume, model=None, engine=None, **options):
    """Denoise a volume held in memory or lazily: numpy, ``xarray.DataArray`` or dask array.

    Args:
        volume: ``(inline, crossline, sample)`` numpy or dask array (any real dtype), or a 3-D DataArray
            (time dimension by name, else the last).
        model: Model directory, ``.onnx`` or ``.plan`` [default: the shipped model].
        engine: Engine name [default: the fastest installed], or an open engine (numpy and threaded dask).
        **options: ``tta``, ``views``, ``batch_size``, ``scale``, ``strength``, ``engine_options``,
            ``progress`` (as :class:`~impeccable.runtime.config.DenoiseConfig`).

    Returns:
        The denoised volume, the same kind as ``volume`` (lazy for dask): float32 in the input's units by
        default (``scale="unit"``: [0, 1]; ``"uint8"``: uint8).

    Raises:
        ImpeccableError: Bad volume, option, model or engine.
    """
    config = _config(model, engine, options)
    factory = _factory(config, engine)
    if type(volume).__name__ == "DataArray":
        return _denoise_xarray(volume, config, factory)
    if _is_dask(volume):
        return denoise_dask(volume, config, factory)
    return denoise_numpy(np.asarray(volume), config, factory)


def _denoise_xarray(array, config: DenoiseConfig, factory):
    import xarray as xr

    if array.ndim != 3:
        raise InputError("DataArray is not 3-D", received=str(array.dims), expected="(inline, crossline, time)",
                         todo="select a 3-D volume")
    times = [d for d in array.dims if str(d).lower() in TIME_NAMES]
    time_dim = times[0] if len(times) == 1 else array.dims[-1]
    canonical = [d for d in array.dims if d != time_dim] + [time_dim]
    data = array.transpose(*canonical).data
    out = denoise_dask(data, config, factory) if _is_dask(data) else denoise_numpy(np.asarray(data), config,
                                                                                    factory)
    result = xr.DataArray(out, dims=canonical, coords=array.coords, attrs=dict(array.attrs), name=array.name)
    return result.transpose(*array.dims)


__all__ = ["OPTIONS", "denoise", "denoise_dask", "denoise_numpy"]
