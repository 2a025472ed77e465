"""One process: the passes of a run in a loop over the whole volume, with bounded memory and an atomic output.

Flow of :func:`denoise_file` (DESIGN §2-3), each step a module of its own:

1. Open the input lazily in canonical ``(inline, crossline, sample)`` order (:mod:`impeccable.runtime.volumes`),
   check the output path (:mod:`impeccable.runtime.output`), bound the batch
   (:mod:`impeccable.runtime.batching`), create the engine (model errors surface before the long scan).
2. Statistics (:func:`~impeccable.runtime.passes.stats_part`): min/max/mean of the finite samples by blocks of
   inlines; a constant volume is refused.
3. Predictions (:func:`~impeccable.runtime.predict.predict_volume`) of every view into a float32 scratch memmap
   beside the output (:class:`~impeccable.runtime.stores.ScratchStore`), the two views averaged.
4. Amplitude fit, then output and QC (:mod:`impeccable.runtime.passes`), written by blocks of inlines into the
   format's writer: a preallocated temporary file renamed into place at the end
   (:func:`~impeccable.runtime.output.finish_output`: input unchanged, preview, commit), never over a file that
   appeared meanwhile unless ``overwrite``. On any error or signal the temporary files are removed and nothing
   is left at the output path; temp files of dead runs beside the output are removed at the start.

Memory is bounded by a few batches (one per stage of the predict pass) plus one block of inlines, never the
volume: memory-mapped files drop their pages after each chunk.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from impeccable.core.atomic import remove_stale_temps
from impeccable.core.errors import InputError, OutputError
from impeccable.runtime.batching import block_inlines, model_shape
from impeccable.runtime.config import DenoiseConfig
from impeccable.runtime.engines.base import Engine
# The bound lives in runtime.memory (one function for every driver); its names stay importable from here.
from impeccable.runtime.memory import MEMORY_SHARE, bounded_batch, memory_budget, run_batch  # noqa: F401
from impeccable.runtime.output import check_format, check_output, check_views, finish_output
from impeccable.runtime.passes import fit_amplitudes, output_section, reduce_stats, stats_part, write_output
from impeccable.runtime.predict import Sampling, model_io, predict_volume
from impeccable.runtime.report import RunReport
from impeccable.runtime.stores import ScratchStore
from impeccable.runtime.threads import engine_busy
from impeccable.runtime.volumes import open_reader, open_writer
from impeccable.runtime.volumes.files import input_identity

#: The report of a run (the name it had before one report served every driver).
DenoiseReport = RunReport


def denoise_file(input_path: str | Path, output: str | Path, config: DenoiseConfig,
                 engine: Engine | None = None) -> RunReport:
    """Denoise a volume file into ``output``, in the input's format, orientation and (by default) units.

    Args:
        input_path: ``.npy``, ``.h5``/``.hdf5``, SEG-Y, ``.zarr`` or ``.mdio`` volume.
        output: Output path, with the input's extension.
        config: Run settings.
        engine: An open engine to use [default: created from the config and closed at the end].

    Returns:
        What was done and how long it took.

    Raises:
        ImpeccableError: Bad input, output, model or engine; nothing is left at ``output`` then.
    """
    t0 = time.perf_counter()
    input_path, output = Path(input_path), Path(output)
    if output.is_dir():
        check_output(output, config.overwrite, input_path)
    check_format(input_path, output)
    reader = open_reader(input_path, time_axis=config.time_axis, dataset=config.dataset, segy=config.segy_options())
    config = config.for_shape(tuple(reader.shape))
    identity = input_identity(input_path)
    own_engine = engine is None
    store = None
    try:
        check_views(config, getattr(reader, "views", None))
        if min(reader.shape) < 1:
            raise InputError("volume is empty", received=f"canonical shape {tuple(reader.shape)}",
                             expected="at least one sample on every axis", todo="check the file")
        check_output(output, config.overwrite, input_path)
        stale = tuple(remove_stale_temps(output.parent))
        io = _model_io(config, engine)
        sampling = Sampling.of(config.sample_interval, reader, io)
        batch, batch_note = run_batch(config, model_shape(tuple(reader.shape), sampling.resampling), io.window,
                                      None if engine is None else getattr(engine, "name", "external"),
                                      getattr(engine, "precision", None), device=getattr(engine, "device", None))
        if batch != config.batch_size:
            config = dataclasses.replace(config, batch_size=batch)
        load_s = 0.0
        if own_engine:
            from impeccable.runtime.engines import create_engine

            t_load = time.perf_counter()
            engine = create_engine(config.resolved_engine(), config.resolved_model(),
                                   batch_size=config.batch_size * (2 if config.tta else 1), **config.engine_options)
            load_s = time.perf_counter() - t_load
        stats = reduce_stats([stats_part(reader)])
        store = ScratchStore(output, tuple(reader.shape), config.view_list)
        sections, images, engine_s = predict_volume(reader, engine, store, config, stats, io, sampling.resampling)
        fit, qc = _write(reader, identity, store, output, config, stats, io.scaling, sampling)
        name = f"{engine.name} {engine.precision}"
    except OSError as exc:  # disk full, file vanished... as one line (temp files are removed below)
        raise OutputError("I/O failed while denoising", received=f"{exc.strerror or exc}: {exc.filename or ''}",
                          expected="a readable input, and room for the output beside it",
                          todo="check the files and the free disk space") from exc
    finally:
        if store is not None:
            store.discard()  # after a commit: only the scratch file goes
        if own_engine and engine is not None and not engine_busy(engine):
            engine.close()
        reader.close()
    return RunReport(output, sections, images, engine_s, time.perf_counter() - t0, stats.nonfinite, stats, name,
                     load_s, batch, batch_note, stale, fit=fit.as_dict(stats, io.scaling), qc=qc, strength=config.strength,
                     sampling=sampling.as_dict(), output_guard=io.output_guard.as_dict())


def _write(reader, identity: dict, store: ScratchStore, output: Path, config: DenoiseConfig, stats, scaling,
           sampling=None):
    """The fit and output passes into the format's writer, then the commit; returns the fit and the QC figures."""
    step = block_inlines(tuple(reader.shape))
    fit, unit_range = fit_amplitudes(reader, store.inlines, stats, config.strength, step, scaling)
    writer = open_writer(output, like=reader, dtype=np.uint8 if config.scale == "uint8" else np.float32,
                         overwrite=config.overwrite)
    try:
        qc = write_output(reader, store.inlines, lambda start, stop, block: writer.write(slice(start, stop), block),
                          fit, stats, config.scale, config.strength, unit_range, step, scaling, sampling)
        finish_output(reader, identity, output, config,
                      lambda section: output_section(reader, store.inlines, fit, stats, config.scale,
                                                     config.strength, unit_range, section, scaling), writer.commit)
    except BaseException:
        writer.abort()
        raise
    return fit, qc


def _model_io(config: DenoiseConfig, engine: Engine | None):
    """The model's input contract: its card's (a caller's engine with no model named: a bare engine's defaults)."""
    if engine is not None and config.model is None:
        return model_io(None, tuple(engine.window), config.removal_floor, config.removal_floor_coherence)
    return model_io(config.resolved_model(), None if engine is None else tuple(engine.window), config.removal_floor,
                    config.removal_floor_coherence)
