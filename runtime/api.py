"""``impeccable.denoise``: the pipeline on in-memory volumes, for notebooks (numpy, xarray, dask).

Every path runs the run's own passes (:mod:`impeccable.runtime.passes`, :mod:`impeccable.runtime.predict`):
numpy in a loop as one process does, dask as a graph of per-slab parts and their reducers; so a numpy volume
gives what :func:`~impeccable.runtime.pipeline.denoise_file` writes for the same volume saved as ``.npy``, bit
for bit, and a dask array gives the same values lazily.

- numpy: ``(inline, crossline, sample)`` or time first ``(sample, inline, crossline)``, told apart by
  ``time_axis`` as the CLI's ``--time-axis`` (``auto``: the unique longest axis, an ambiguous shape refused);
  returns a numpy array in the input's orientation (float32, uint8 for ``uint8``).
- ``xarray.DataArray``: the time dimension is found by name (``time``, ``depth``, ``sample``..., or
  ``time_axis`` naming it); without one, the unique longest dimension, as the Zarr reader does (an ambiguous
  shape is refused: never the last dimension by position); the other two are inline and crossline in their
  order; returns a DataArray with the input's dims, coords and attrs (lazy when the input is dask-backed).
- dask array: as numpy, returning a lazy dask array: one task per slab of whole sections and pass
  (statistics, predictions per view, fit sums, output); nothing runs until it is computed.

Samples must be real numbers (float or integer), as the CLI's readers require. The batch is bounded by the
volume and by the memory budget, as the CLI's (:func:`~impeccable.runtime.memory.run_batch`).

Engines: built once per process (per worker on a distributed cluster) from the model's path, and kept in a
small cache (:data:`~impeccable.runtime.engine_cache.ENGINE_CACHE`, one engine by default): opening another
model or engine closes the idle one, and :func:`close_engines` closes them all. Every engine runs one call at a time, so the threads of a
dask scheduler may share it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from impeccable.core.amplitude import VolumeStats
from impeccable.core.errors import InputError
from impeccable.core.geometry import resolve_time_axis
from impeccable.runtime.batching import block_inlines, model_shape, sections_per_batch
from impeccable.runtime.calibrate import output_block
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.engine_cache import ENGINE_CACHE, EngineCache, EngineFactory, SerializedEngine, close_engines
from impeccable.runtime.passes import (fit_amplitudes, fit_part, reduce_fit, reduce_stats, stats_part,
                                       write_output)
from impeccable.runtime.predict import Sampling, model_io, predict_volume
from impeccable.runtime.stores import array_store, average_views
from impeccable.runtime.volumes.sampling import DEPTH_NAMES, interval_from_coordinate
from impeccable.runtime.volumes.slabs import ArrayReader
from impeccable.runtime.volumes.zarr import TIME_NAMES  # the names a Zarr array's time axis is found by, too

#: Options of :func:`denoise` (the DenoiseConfig fields that apply to an in-memory volume).
OPTIONS = ("tta", "views", "batch_size", "scale", "strength", "removal_floor", "removal_floor_coherence",
           "engine_options", "progress", "sample_interval")


def _config(model, engine, options: dict) -> DenoiseConfig:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InputError("unknown option", received=", ".join(unknown), expected=", ".join(OPTIONS),
                         todo="pass one of these")
    return DenoiseConfig(model=model, engine=engine if isinstance(engine, str) else None,
                         **{"progress": False, **options})  # validated when built


@contextmanager
def _engine(factory):
    """The engine to run: a caller's open engine, or the cached one of a recipe."""
    if not isinstance(factory, EngineFactory):
        yield factory  # an open engine the caller passed
        return
    with ENGINE_CACHE.use(factory) as engine:
        yield engine


def _factory(config: DenoiseConfig, engine):
    if engine is not None and not isinstance(engine, str):
        from impeccable.runtime.engines.base import EngineBase

        return engine if isinstance(engine, EngineBase) else SerializedEngine(engine)
    return EngineFactory.from_config(config)


def _check_volume(volume) -> None:
    """Refuse what the CLI's readers refuse: not 3-D, empty, or samples that are not real numbers."""
    kind = np.dtype(volume.dtype).kind
    if volume.ndim != 3 or min(volume.shape) < 1 or kind not in "fiu":
        raise InputError("not a 3-D numeric volume", received=f"{volume.ndim}-D {volume.dtype} {volume.shape}",
                         expected="(inline, crossline, sample) float or integer samples",
                         todo="pass a 3-D array of real numbers (complex: take .real or abs() first)")


def _contract(config: DenoiseConfig, factory, window: tuple[int, int]):
    """The model's input contract and the data's sampling, as the CLI takes them (a caller's engine: defaults)."""
    io = model_io(factory.model if isinstance(factory, EngineFactory) else config.model, window, config.removal_floor,
                  config.removal_floor_coherence)
    return io, Sampling.of(config.sample_interval, None, io)


def _bounded(config: DenoiseConfig, shape: tuple[int, int, int], engine, resampling=None) -> DenoiseConfig:
    """The config with its batch bounded as every run's is (:func:`impeccable.runtime.memory.run_batch`)."""
    from impeccable.runtime.memory import run_batch

    batch, _ = run_batch(config, model_shape(shape, resampling), tuple(engine.window),
                         getattr(engine, "name", "external"),
                         getattr(engine, "precision", None), device=getattr(engine, "device", None))
    return config if batch == config.batch_size else replace(config, batch_size=batch)


def denoise_numpy(volume: np.ndarray, config: DenoiseConfig, engine) -> np.ndarray:
    """Denoise an in-memory ``(inline, crossline, sample)`` volume; float32 (uint8 for the ``uint8`` scale)."""
    _check_volume(volume)
    config = config.for_shape(tuple(volume.shape))  # --views auto, resolved as every driver does
    reader = ArrayReader(volume)
    stats = reduce_stats([stats_part(reader)])
    store = array_store(reader.shape, config.view_list)
    with _engine(engine) as model:
        io, sampling = _contract(config, engine, tuple(model.window))
        predict_volume(reader, model, store, _bounded(config, reader.shape, model, sampling.resampling), stats,
                       io, sampling.resampling)
    step = block_inlines(reader.shape)
    fit, unit_range = fit_amplitudes(reader, store.inlines, stats, config.strength, step, io.scaling)
    out = np.empty(reader.shape, dtype=np.uint8 if config.scale == "uint8" else np.float32)

    def write(a: int, b: int, block: np.ndarray) -> None:
        out[a:b] = block

    write_output(reader, store.inlines, write, fit, stats, config.scale, config.strength, unit_range, step,
                 io.scaling, sampling)
    return out


def _predict_slab(block: np.ndarray, stats: VolumeStats, config: DenoiseConfig, view: str, engine, io,
                  resampling) -> np.ndarray:
    store = array_store(block.shape, (view,))
    with _engine(engine) as model:
        predict_volume(ArrayReader(block), model, store, replace(config, views=view), stats, io, resampling)
    return store.target.array


def _stats_slab(block: np.ndarray) -> dict:
    return stats_part(ArrayReader(block))


def _fit_slab(inputs: np.ndarray, unit: np.ndarray, stats: VolumeStats, strength: float, scaling) -> dict:
    return fit_part(ArrayReader(inputs), lambda a, b: unit[a:b], stats, strength, 0, inputs.shape[0], scaling)


def _output_slab(inputs: np.ndarray, unit: np.ndarray, fitted, stats: VolumeStats, config: DenoiseConfig, scaling):
    fit, unit_range = fitted
    return output_block(np.asarray(inputs, dtype=np.float32), unit, fit, stats, config.scale, config.strength,
                        unit_range, None, scaling)[0]


def denoise_dask(volume, config: DenoiseConfig, engine):
    """A lazy dask array ``(inline, crossline, sample)``: the denoised ``volume``, one task per slab and pass."""
    import dask
    import dask.array as da

    from impeccable.runtime.distributed_plan import make_plan

    _check_volume(volume)
    config = config.for_shape(tuple(volume.shape))
    views = config.view_list
    with _engine(engine) as model:  # built here once too: the plan needs the model's window
        window = tuple(model.window)
        io, sampling = _contract(config, engine, window)
        resampling = sampling.resampling
        config = _bounded(config, tuple(volume.shape), model, resampling)
    probe = ArrayReader(np.empty((1, 1, 1), np.float32))
    probe.shape = tuple(volume.shape)  # the batching rules read the shape only
    steps = {v: sections_per_batch(probe, v, window, config.batch_size, resampling) for v in views}
    plan = make_plan(tuple(volume.shape), views, steps, 1)
    il_sizes = tuple(b - a for a, b in plan.inline)
    by_inline = volume.rechunk((il_sizes, -1, -1))
    slabs = by_inline.to_delayed().ravel()
    stats = dask.delayed(reduce_stats)([dask.delayed(_stats_slab)(s) for s in slabs])
    shape = tuple(volume.shape)
    units = []
    for view in views:
        if view == "inline":
            pieces = [da.from_delayed(dask.delayed(_predict_slab)(s, stats, config, view, engine, io, resampling),
                                      (n, shape[1], shape[2]), dtype=np.float32) for s, n in zip(slabs, il_sizes)]
            units.append(da.concatenate(pieces, axis=0))
        else:
            xl_sizes = tuple(b - a for a, b in plan.crossline)
            xl = volume.rechunk((-1, xl_sizes, -1)).to_delayed().ravel()
            pieces = [da.from_delayed(dask.delayed(_predict_slab)(s, stats, config, view, engine, io, resampling),
                                      (shape[0], n, shape[2]), dtype=np.float32) for s, n in zip(xl, xl_sizes)]
            units.append(da.concatenate(pieces, axis=1).rechunk((il_sizes, -1, -1)))
    unit = units[0] if len(units) == 1 else da.map_blocks(average_views, units[0], units[1],
                                                          dtype=np.float32)
    unit_slabs = unit.to_delayed().ravel()
    fitted = dask.delayed(reduce_fit)([dask.delayed(_fit_slab)(s, u, stats, config.strength, io.scaling)
                                 for s, u in zip(slabs, unit_slabs)], stats, io.scaling)
    dtype = np.uint8 if config.scale == "uint8" else np.float32
    out = [da.from_delayed(dask.delayed(_output_slab)(s, u, fitted, stats, config, io.scaling),
                           (n, shape[1], shape[2]), dtype=dtype) for s, u, n in zip(slabs, unit_slabs, il_sizes)]
    return da.concatenate(out, axis=0)


def _is_dask(array) -> bool:
    return type(array).__module__.split(".")[0] == "dask"


def denoise(volume, model=None, engine=None, time_axis: int | str = "auto", **options):
    """Denoise a volume held in memory or lazily: numpy, ``xarray.DataArray`` or dask array.

    Args:
        volume: A 3-D numpy or dask array (float or integer samples), ``(inline, crossline, sample)`` or time
            first, or a 3-D DataArray (time dimension by name, else the unique longest one).
        model: Model directory, ``.onnx`` or ``.plan`` [default: the shipped model].
        engine: Engine name [default: the fastest installed], or an open engine (numpy and threaded dask).
        time_axis: The time axis of a numpy or dask array, ``0``, ``2`` or ``"auto"`` (the unique longest axis,
            as ``--time-axis``); for a DataArray, ``"auto"`` or the time dimension's name.
        **options: ``tta``, ``views``, ``batch_size``, ``scale``, ``strength``, ``removal_floor``,
            ``removal_floor_coherence``, ``engine_options``,
            ``progress``, ``sample_interval`` (ms; a DataArray's regular time coordinate gives it too; unknown:
            the model's) (as :class:`~impeccable.runtime.config.DenoiseConfig`).

    Returns:
        The denoised volume, the same kind and orientation as ``volume`` (lazy for dask): float32 in the input's
        units by default (``scale="unit"``: [0, 1]; ``"uint8"``: uint8).

    Raises:
        ImpeccableError: Bad volume, option, model or engine.
    """
    config = _config(model, engine, options)
    factory = _factory(config, engine)
    if type(volume).__name__ == "DataArray":
        return _denoise_xarray(volume, config, factory, time_axis)
    dask = _is_dask(volume)
    if not dask:
        volume = np.asarray(volume)
    _check_volume(volume)
    if time_axis not in ("auto", 0, 2, "0", "2"):
        raise InputError("time axis out of range", received=repr(time_axis), expected="0, 2 or 'auto'",
                         todo="pass time_axis=0 (time first), 2 (time last) or 'auto'")
    axis = resolve_time_axis(tuple(volume.shape), time_axis if time_axis == "auto" else int(time_axis))
    if dask:
        import dask.array as da

        out = denoise_dask(da.moveaxis(volume, axis, -1), config, factory)
        return out if axis == 2 else da.moveaxis(out, -1, axis)
    out = denoise_numpy(np.moveaxis(volume, axis, -1), config, factory)
    return out if axis == 2 else np.ascontiguousarray(np.moveaxis(out, -1, axis))


def _time_dimension(array, time_axis: int | str) -> object:
    """A DataArray's time dimension: ``time_axis`` naming it, else a time-like name, else the unique longest one.

    Why the longest and not the last: the Zarr reader (``--time-axis auto``) falls back to it, and a wrongly named
    last dimension would be denoised as time without a word.
    """
    if time_axis != "auto":
        if time_axis not in array.dims:
            raise InputError("time dimension not found", received=repr(time_axis), expected=str(array.dims),
                             todo="pass time_axis with one of the DataArray's dimension names, or 'auto'")
        return time_axis
    times = [d for d in array.dims if str(d).lower() in TIME_NAMES]
    if len(times) == 1:
        return times[0]
    try:
        return array.dims[resolve_time_axis(tuple(array.shape), "auto")]
    except InputError as exc:
        raise InputError("cannot tell the DataArray's time dimension", received=f"dims {array.dims}, shape "
                         f"{tuple(array.shape)}", expected=f"one dimension named {'/'.join(TIME_NAMES)}, or one "
                         "longer than the other two, first or last",
                         todo="pass time_axis='<its name>' or rename it") from exc


def _coordinate_step(values) -> float | None:
    values = np.asarray(values)
    return interval_from_coordinate(values) if values.dtype.kind in "fiu" else None


def _denoise_xarray(array, config: DenoiseConfig, factory, time_axis: int | str = "auto"):
    import xarray as xr

    if array.ndim != 3:
        raise InputError("DataArray is not 3-D", received=str(array.dims), expected="(inline, crossline, time)",
                         todo="select a 3-D volume")
    time_dim = _time_dimension(array, time_axis)
    if config.sample_interval is None and time_dim in array.coords and str(time_dim).lower() not in DEPTH_NAMES:
        step = _coordinate_step(array.coords[time_dim].values)
        if step is not None:  # the time coordinate's spacing, as MDIO's is read
            config = replace(config, sample_interval=step)
    canonical = [d for d in array.dims if d != time_dim] + [time_dim]
    data = array.transpose(*canonical).data
    out = denoise_dask(data, config, factory) if _is_dask(data) else denoise_numpy(np.asarray(data), config,
                                                                                    factory)
    result = xr.DataArray(out, dims=canonical, coords=array.coords, attrs=dict(array.attrs), name=array.name)
    return result.transpose(*array.dims)


__all__ = ["ENGINE_CACHE", "OPTIONS", "EngineCache", "close_engines", "denoise", "denoise_dask", "denoise_numpy"]
