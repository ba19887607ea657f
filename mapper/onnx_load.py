"""Read an ONNX file safely: checker, external data from the model's folder only, shapes.

Every failure becomes an `AnalogcError` naming the file, so the CLI prints one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import external_data_helper, shape_inference

from analogc.errors import AnalogcError

MAX_MODEL_BYTES = 2 << 30  # protobuf's own limit for one serialised model


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Load, check and shape-infer a model; external data only from inside its folder."""
    path = Path(path)
    if not path.exists():
        raise AnalogcError(f"{path}: no such file")
    if not path.is_file():
        raise AnalogcError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise AnalogcError(f"{path}: empty file, not an ONNX model")
    if size > MAX_MODEL_BYTES:
        raise AnalogcError(f"{path}: {size} bytes is larger than an ONNX protobuf can be (2 GiB)")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
        raise AnalogcError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node and not model.graph.output:
        raise AnalogcError(f"{path}: not an ONNX model (no graph)")
    load_external_data_safely(model, path.parent.resolve(), path)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, Exception) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalogcError(f"{path}: invalid ONNX model: {first}") from None
    try:
        model = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalogcError(f"{path}: ONNX shape inference failed: {first}") from None
    return model


def load_external_data_safely(model: onnx.ModelProto, base: Path, path: Path) -> None:
    """Load tensors stored outside the model, refusing any location outside `base`."""
    tensors = [
        t
        for t in external_data_helper._get_all_tensors(model)
        if external_data_helper.uses_external_data(t)
    ]
    for tensor in tensors:
        info = external_data_helper.ExternalDataInfo(tensor)
        location = info.location
        if not location or os.path.isabs(location) or ".." in Path(location).parts:
            raise AnalogcError(
                f"{path}: external data {location!r} of tensor {tensor.name!r} must be a "
                "relative path inside the model's folder"
            )
        target = (base / location).resolve()
        if base not in target.parents:
            raise AnalogcError(
                f"{path}: external data {location!r} of tensor {tensor.name!r} leads outside "
                "the model's folder"
            )
        if not target.is_file():
            raise AnalogcError(f"{path}: external data file {location!r} of tensor {tensor.name!r} is missing")
        offset = int(info.offset or 0)
        length = info.length
        file_size = target.stat().st_size
        if length is not None and offset + int(length) > file_size or offset > file_size:
            raise AnalogcError(
                f"{path}: external data of tensor {tensor.name!r} lies beyond the end of {location!r}"
            )
        with open(target, "rb") as handle:
            handle.seek(offset)
            data = handle.read(int(length)) if length is not None else handle.read()
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
