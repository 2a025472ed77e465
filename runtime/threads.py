"""The threads of the predict pass: a producer ahead of the engine, the engine's own thread, a consumer behind it.

Three stages overlap (:func:`impeccable.runtime.predict.predict_volume`): a thread prepares the next batch, the
calling thread waits on the engine's thread, another thread blends and stores the previous batch's predictions;
numpy and the engines release the GIL for most of their work. Every helper thread keeps INT/TERM/HUP off
itself, so that a signal reaches the main thread at once.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np

_DONE = object()

#: ``id()`` of the engines with a call in flight in an :class:`EngineThread` (abandoned when a signal ended the
#: run): closing one would free what the backend is still using, so a driver leaves it to the exit
#: (:func:`engine_busy`).
_BUSY_ENGINES: set[int] = set()


def engine_busy(engine) -> bool:
    """Whether an :class:`EngineThread` still has a call of ``engine`` in flight (then it must not be closed)."""
    return id(engine) in _BUSY_ENGINES


def block_signals() -> None:
    """Keep INT/TERM/HUP off this helper thread, so the kernel hands them to the main thread.

    Python runs signal handlers only in the main thread; a signal the kernel delivered to a helper would wait
    until the main thread's current wait or call ended.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {s for s in (signal.SIGINT, signal.SIGTERM,
                                                              getattr(signal, "SIGHUP", None)) if s is not None})


def background(iterator: Iterator, depth: int = 1) -> Iterator:
    """Run a generator in a thread, up to ``depth`` items ahead; its exceptions re-raise in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        block_signals()
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put(exc)
        q.put(_DONE)

    thread = threading.Thread(target=produce, name="impeccable-prepare", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # The consumer stopped (finished, failed or interrupted): unblock the producer and wait for it, so
        # that it never reads a file the caller is about to close.
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class Worker:
    """One background thread running submitted calls in order, at most ``depth`` behind the submitter.

    The first failure is re-raised in the submitting thread (at its next :meth:`submit` or at :meth:`close`);
    calls submitted after it are skipped.
    """

    def __init__(self, depth: int = 1):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="impeccable-store", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        block_signals()
        while (call := self.queue.get()) is not _DONE:
            if self.error is None:
                try:
                    call()
                except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
                    self.error = exc

    def submit(self, call) -> None:
        """Queue ``call()`` (blocks while ``depth`` calls are pending)."""
        if self.error is not None:
            raise self.error
        self.queue.put(call)

    def close(self, abandon: bool = False) -> None:
        """Wait for the pending calls (or skip them with ``abandon``); re-raise the first failure."""
        if abandon and self.error is None:
            self.error = _Abandoned()
        self.queue.put(_DONE)
        self.thread.join()
        if self.error is not None and not isinstance(self.error, _Abandoned):
            raise self.error


class _Abandoned(Exception):
    """Marks a worker whose pending calls are skipped because the run already failed."""


class EngineThread:
    """Engine calls in a daemon thread, so that the calling thread waits interruptibly.

    A signal (Ctrl-C, SIGTERM, SIGHUP) runs its Python handler only in the main thread and only between
    bytecodes; waiting on an event, rather than inside the backend's call, lets it act at once. The call in
    flight is then abandoned (the thread is a daemon: it does not hold up the process's exit).
    """

    def __init__(self, engine):
        self.engine = engine
        self.calls: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="impeccable-engine", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        block_signals()
        while (job := self.calls.get()) is not _DONE:
            images, slot, done = job
            try:
                slot.append(self.engine(images))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                slot.append(exc)
            finally:
                _BUSY_ENGINES.discard(id(self.engine))
                done.set()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        slot: list = []
        done = threading.Event()
        _BUSY_ENGINES.add(id(self.engine))
        self.calls.put((images, slot, done))
        done.wait()
        if isinstance(slot[0], BaseException):
            raise slot[0]
        return slot[0]

    def run(self, images: np.ndarray, per_call: int) -> tuple[np.ndarray, float]:
        """The engine over ``images`` in calls of at most ``per_call`` images; predictions and seconds inside it."""
        outs, spent = [], 0.0
        for start in range(0, images.shape[0], per_call):
            t0 = time.perf_counter()
            outs.append(self(images[start:start + per_call]))
            spent += time.perf_counter() - t0
        return (np.concatenate(outs) if len(outs) > 1 else outs[0]), spent

    def close(self) -> None:
        self.calls.put(_DONE)
