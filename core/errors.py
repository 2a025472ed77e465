"""The toolkit's exception tree.

Every error a user can cause is an :class:`ImpeccableError`. Its string is the one-line message the
command-line tools print after ``Error:`` (DESIGN §7): what went wrong | what was received | what was
expected | what to do. Backend failures are re-raised as one of these with ``raise ... from exc``.
"""

from __future__ import annotations


class ImpeccableError(Exception):
    """Base class: a user-facing failure with a one-line message.

    Args:
        what: What went wrong, e.g. ``"input volume is 2-D"``.
        received: What was received (a value, shape, path).
        expected: What was expected instead.
        todo: What the user can do about it.
    """

    def __init__(self, what: str, received: object = None, expected: object = None, todo: str | None = None):
        self.what = what
        self.received = received
        self.expected = expected
        self.todo = todo
        parts = [what]
        if received is not None:
            parts.append(f"received {received}")
        if expected is not None:
            parts.append(f"expected {expected}")
        if todo is not None:
            parts.append(todo)
        super().__init__(" | ".join(str(p).replace("\n", " ") for p in parts))


class InputError(ImpeccableError):
    """A volume file or array the toolkit cannot use (missing, wrong shape, wrong type, constant...)."""


class InputChangedError(InputError):
    """The input changed or vanished during the run: nothing computed from it can be kept or resumed."""


class OutputError(ImpeccableError):
    """An output that cannot or must not be written (exists without --overwrite, unwritable folder)."""


class ModelError(ImpeccableError):
    """A model directory, card, ONNX file or engine plan that is missing, incomplete or stale."""


class EngineError(ImpeccableError):
    """An inference engine that is unknown, not installed, or failed while running."""


class ExportError(ImpeccableError):
    """An export step that failed (tracing, graph checks, FP16 conversion, engine build)."""


class ParityError(ExportError):
    """An exported model whose output differs from the PyTorch reference beyond tolerance."""


class DataError(ImpeccableError):
    """Training or scoring data that is missing, mismatched or malformed."""
