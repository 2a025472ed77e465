"""The network builder and the shipped default model.

Importing this package never imports torch (the runtime reads :data:`DEFAULT_MODEL_DIR`); the builder lives
in :mod:`impeccable.models.builder` and checkpoint I/O in :mod:`impeccable.models.checkpoint`.
"""

from pathlib import Path

#: The model directory shipped in the package (weights + card), used when ``--model`` is not given.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "unetpp-v2s-synth"
