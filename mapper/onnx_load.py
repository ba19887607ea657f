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


def load_onnx(path: str | Path) -> tuple[onnx.ModelProto, bool]:
    """Load, check and shape-infer a model; external data only from inside its folder.

    Also says whether the file is self-contained (no external data): then its bytes are
    the original model exactly, and the program can store them without re-serialising.
    """
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
    external = load_external_data_safely(model, path.parent.resolve(), path)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, Exception) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalogcError(f"{path}: invalid ONNX model: {first}") from None
    try:
        infer_shapes_without_weights(model)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalogcError(f"{path}: ONNX shape inference failed: {first}") from None
    return model, external == 0


LIGHT_TENSOR_BYTES = 1 << 16


def infer_shapes_without_weights(model: onnx.ModelProto) -> None:
    """Shape inference on a copy whose large initializers are typed graph inputs instead.

    Inference serialises the whole model; for a model of hundreds of MB that costs
    seconds, and weights only contribute their types and shapes. The inferred
    value_info and output types are copied back into `model`.
    """
    graph = model.graph
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g = light.graph
    g.name = graph.name
    g.node.extend(graph.node)
    g.input.extend(graph.input)
    g.output.extend(graph.output)
    g.value_info.extend(graph.value_info)
    g.sparse_initializer.extend(graph.sparse_initializer)
    declared = {v.name for v in graph.input}
    for tensor in graph.initializer:
        elements = 1
        for d in tensor.dims:
            elements *= d
        if elements * 8 <= LIGHT_TENSOR_BYTES:  # (ByteSize() would walk the bytes)
            g.initializer.append(tensor)
        elif tensor.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    inferred = shape_inference.infer_shapes(light, strict_mode=False)
    del graph.value_info[:]
    graph.value_info.extend(inferred.graph.value_info)
    known = {o.name: o for o in inferred.graph.output}
    for output in graph.output:
        if output.name in known:
            output.type.CopyFrom(known[output.name].type)


def load_external_data_safely(model: onnx.ModelProto, base: Path, path: Path) -> int:
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
    return len(tensors)
