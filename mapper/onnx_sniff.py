"""Why a file protobuf cannot parse as an ONNX model: a PyTorch checkpoint, another zip
archive, a pickle, a truncated ONNX file, or just not ONNX. The message then says what
to do instead of naming protobuf's DecodeError. Only reads headers; never unpickles."""

from __future__ import annotations

import zipfile
from pathlib import Path

# ModelProto's fields (onnx.proto) and their wire types: 0 varint, 2 length-delimited.
MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
TORCH_HINT = "export the network with torch.onnx.export(model, example_input, \"model.onnx\") and compile that"
PICKLE_PROTOCOLS = range(2, 6)
IR_VERSION_TAG = b"\x08"  # field 1, varint


def unreadable_reason(path: Path, exc: BaseException) -> str:
    """One line (after the path) saying what the file is, when it is not a readable model."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04"):
        return zip_reason(path)
    if len(head) >= 2 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS:
        return f"a Python pickle (such as torch.save's older format), not an ONNX model: {TORCH_HINT}"
    truncated = truncation(path)
    if truncated:
        return truncated
    return f"not an ONNX model (protobuf cannot parse it: {type(exc).__name__})"


def zip_reason(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "a damaged or truncated zip archive, not an ONNX model"
    if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        return f"a PyTorch file (torch.save), not an ONNX model: {TORCH_HINT}"
    if "program.json" in names:
        return "an analogc tile program (.atp), not an ONNX model: give it to plan, run or train"
    return "a zip archive, not an ONNX model"


def truncation(path: Path) -> str | None:
    """A message when the top-level protobuf fields of an ONNX-looking file run past its
    end (an interrupted download or copy), else None."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(2)[:1] != IR_VERSION_TAG:  # every serialised ModelProto starts with its ir_version
            return None
        position, first = 0, True
        while position < size:
            handle.seek(position)
            tag, position = read_varint(handle, position)
            if tag is None:
                return truncated_message(size) if not first else None
            if tag < 0:
                return None
            number, wire = tag >> 3, tag & 7
            if MODEL_FIELDS.get(number) != wire:
                return None  # not the shape of an ONNX model
            first = False
            value, position = read_varint(handle, position)
            if value is None:
                return truncated_message(size)
            if value < 0:
                return None
            if wire == 2:
                position += value
                if position > size:
                    return truncated_message(size, position)
    return None


def truncated_message(size: int, needed: int | None = None) -> str:
    missing = f"; its last field needs {needed - size:,} more bytes" if needed else ""
    return f"truncated ONNX file: it ends after {size:,} bytes{missing} (an interrupted download or copy?)"


def read_varint(handle, position: int) -> tuple[int | None, int]:
    """A protobuf varint at `position`: (value, position after it); (None, ...) when the
    file ends inside it, (-1, ...) when it is longer than 10 bytes (not protobuf)."""
    value = 0
    for shift in range(0, 70, 7):
        byte = handle.read(1)
        if not byte:
            return None, position
        position += 1
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value, position
    return -1, position
