"""The ``metadata_props`` of an ONNX file (the card, hashes, the FP16 audit), read without onnx or a session.

Standard library only: the runtime reads a model's card this way (milliseconds, no model load, no ``onnx``
dependency) and the exporter reads its own up-to-date stamps the same way.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

from impeccable.core.errors import ModelError


def _varint(fh: BinaryIO) -> int | None:
    """One protobuf varint from ``fh`` (None at end of file)."""
    value, shift = 0, 0
    while byte := fh.read(1):
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read without onnx or a session.

    ``ModelProto`` is a flat protobuf message: this walks its top-level fields, seeking past the graph (the
    weights), and decodes field 14 (``metadata_props``: ``key`` = 1, ``value`` = 2). Reading the card this way
    costs milliseconds instead of a full model load, and keeps ``onnx`` out of the runtime's dependencies.

    Raises:
        ModelError: The file is not a readable protobuf.
    """
    props: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            while (tag := _varint(fh)) is not None:
                field, wire = tag >> 3, tag & 7
                if wire == 0:
                    _varint(fh)
                elif wire == 1:
                    fh.seek(8, os.SEEK_CUR)
                elif wire == 5:
                    fh.seek(4, os.SEEK_CUR)
                elif wire == 2:
                    size = _varint(fh)
                    if size is None:
                        break
                    if field != 14:
                        fh.seek(size, os.SEEK_CUR)
                        continue
                    entry, key, value = io.BytesIO(fh.read(size)), "", ""
                    while (sub := _varint(entry)) is not None:  # StringStringEntryProto: strings only
                        text = entry.read(_varint(entry) or 0).decode("utf-8")
                        key, value = (text, value) if sub >> 3 == 1 else (key, text)
                    props[key] = value
                else:
                    raise ValueError(f"unexpected protobuf wire type {wire}")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError("cannot read the ONNX file", received=f"{path}: {exc}", expected="an ONNX model",
                         todo="re-export it: impeccable-export MODEL_DIR") from exc
    return props
