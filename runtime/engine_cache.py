"""Engines built from a recipe, where a driver does not hold one itself: each cluster worker, the Python API.

A recipe (:class:`EngineFactory`) is picklable and hashable: engine name, model path, batch, options. A worker
builds its engine from it once; the API keeps the engines it built in :data:`ENGINE_CACHE`, a small cache that
closes an idle engine to make room for another (and all of them at exit, or on :func:`close_engines`).
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from impeccable.runtime.config import DenoiseConfig


@dataclass(frozen=True)
class EngineFactory:
    """A picklable recipe for the engine: what each worker builds once (the model is read by path there)."""

    name: str
    model: str
    batch_size: int
    options: tuple[tuple[str, object], ...] = ()

    def __call__(self):
        from impeccable.runtime.engines import create_engine

        return create_engine(self.name, self.model, batch_size=self.batch_size, **dict(self.options))

    @classmethod
    def from_config(cls, config: DenoiseConfig) -> EngineFactory:
        return cls(config.resolved_engine(), str(config.resolved_model()),
                   config.batch_size * (2 if config.tta else 1), tuple(sorted(config.engine_options.items())))


class EngineCache:
    """Engines opened from recipes, one per recipe, at most ``limit`` open; an idle one is closed to make room.

    Every call and task of a process with the same recipe shares one engine (its calls are serialized by the
    engine itself). Engines in use are never closed; the cache may then hold more than ``limit`` for a while.
    """

    def __init__(self, limit: int = 1):
        self.limit = limit
        self.engines: OrderedDict = OrderedDict()
        self.users: dict = {}
        self.lock = threading.Lock()

    @contextmanager
    def use(self, factory):
        """The engine of ``factory``, opened on first use, held open for the ``with`` block."""
        with self.lock:
            engine = self.engines.get(factory)
            if engine is None:
                engine = self.engines[factory] = factory()
            self.engines.move_to_end(factory)
            self.users[factory] = self.users.get(factory, 0) + 1
        try:
            yield engine
        finally:
            with self.lock:
                self.users[factory] -= 1
                self._evict()

    def _evict(self) -> None:
        for factory in list(self.engines):
            if len(self.engines) <= self.limit:
                return
            if not self.users.get(factory):
                self.engines.pop(factory).close()
                self.users.pop(factory, None)

    def close(self) -> None:
        """Close every engine not in use now."""
        with self.lock:
            for factory in [f for f in self.engines if not self.users.get(f)]:
                self.engines.pop(factory).close()
                self.users.pop(factory, None)


#: The API's engines in this process.
ENGINE_CACHE = EngineCache()
atexit.register(ENGINE_CACHE.close)


def close_engines() -> None:
    """Close the engines :func:`impeccable.denoise` keeps open in this process (the next call opens one again)."""
    ENGINE_CACHE.close()


class SerializedEngine:
    """A caller's engine that is not one of ours, one call at a time (as
    :class:`~impeccable.runtime.engines.base.EngineBase` runs)."""

    def __init__(self, engine):
        self.engine, self.lock = engine, threading.Lock()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.engine(batch)
