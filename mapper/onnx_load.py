"""Read an ONNX file safely: checker, external data from the model's folder only, shapes.

Every failure becomes an `AnalogcError` naming the file, so the CLI prints one line.
"""

from __future__ import annotations

import math
import re
import stat
from pathlib import Path

import onnx
from onnx import external_data_helper, shape_inference, version_converter

from analogc.errors import AnalogcError
from analogc.mapper.onnx_sniff import unreadable_reason
from analogc.memory import check_fits, human

MAX_MODEL_BYTES = 2 << 30  # protobuf's own limit for one serialised model


def load_onnx(path: str | Path) -> tuple[onnx.ModelProto, bool, dict]:
    """Load, check and shape-infer a model; external data only from inside its folder.

    Also says whether the file is self-contained (no external data): then its bytes are
    the original model exactly, and the program can store them without re-serialising.
    And gives the raw bytes of the graph's initializers as the size check read them
    ({name: bytes}): each read of `raw_data` copies it (400 MB for VGG-19's first
    layer), so the arrays are made from these once (mapper/constants.py).
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
        raise AnalogcError(f"{path}: {unreadable_reason(path, exc)}") from None
    if not model.graph.node and not model.graph.output:
        raise AnalogcError(f"{path}: not an ONNX model (no graph)")
    check_text_fields(model, path)
    check_operator_sets(model, path)
    check_node_names(model.graph, path)
    tensors = list(external_data_helper._get_all_tensors(model))
    check_tensor_memory(tensors, path)
    external = load_external_data_safely(tensors, path.parent.resolve(), path)
    top, raw = len(model.graph.initializer), {}
    for index, tensor in enumerate(tensors):  # the graph's own initializers come first
        data = check_tensor_data(tensor, path)
        if index < top and data is not None and not external_data_helper.uses_external_data(tensor):
            raw[tensor.name] = data
    light = light_model(model)
    try:
        # On the light copy: the checker serialises the model it is given (3.5 s for the
        # 500 MB VGG-19 FC stack). What it would check of the large initializers left
        # out (data size against dims) check_tensor_data has done above; each keeps its
        # name, type and shape as a graph input, so the graph's own checks still see it.
        onnx.checker.check_model(light)
    except (onnx.checker.ValidationError, Exception) as exc:
        raise AnalogcError(f"{path}: invalid ONNX model: {short(exc)}") from None
    try:
        infer_shapes_without_weights(model, light)
    except MemoryError:
        raise
    except Exception as exc:
        raise AnalogcError(f"{path}: ONNX shape inference failed: {short(exc)}") from None
    return model, external == 0, raw


# onnxruntime implements the default domain's operators from opset 7 (older Gemm, Add, ...
# have no kernel): older models are upgraded, so the reference and host segments run.
ONNXRUNTIME_MIN_OPSET = 7


def default_opset(model: onnx.ModelProto) -> int:
    return next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 1)


def upgrade_old_opset(model: onnx.ModelProto, path) -> tuple[onnx.ModelProto, int | None]:
    """(model, the opset it had) upgraded to opset 7 with onnx's version converter when
    onnxruntime cannot run its opset; (model, None) when it can. The converter refuses
    symbolic dimensions (its Gemm adapter checks broadcasting on the input shapes), so
    it works on a copy whose graph inputs and outputs have them set to 1; the converted
    graph gets the model's own inputs and outputs back and is shape-inferred afresh."""
    opset = default_opset(model)
    if opset >= ONNXRUNTIME_MIN_OPSET:
        return model, None
    work = onnx.ModelProto()
    work.CopyFrom(model)
    del work.graph.value_info[:]
    for value in list(work.graph.input) + list(work.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    try:
        converted = version_converter.convert_version(work, ONNXRUNTIME_MIN_OPSET)
        for new, old in zip(list(converted.graph.input) + list(converted.graph.output), list(model.graph.input) + list(model.graph.output)):
            new.CopyFrom(old)
        del converted.graph.value_info[:]
        onnx.checker.check_model(converted)
        infer_shapes_without_weights(converted)
    except MemoryError:
        raise
    except Exception as exc:
        raise AnalogcError(
            f"{path}: ONNX opset {opset} is older than onnxruntime runs ({ONNXRUNTIME_MIN_OPSET}), and onnx's "
            f"version converter cannot upgrade the model: {short(exc)}"
        ) from None
    return converted, opset


def short(exc: BaseException, limit: int = 300) -> str:
    """The checker's message on one line (it spans several, naming the node on the next)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


LIGHT_TENSOR_BYTES = 1 << 16
KNOWN_TYPES = frozenset(onnx.TensorProto.DataType.values()) - {onnx.TensorProto.UNDEFINED}


def light_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model whose large initializers (of known element types) are typed
    graph inputs instead: what the checker and shape inference need of a weight is its
    name, type and shape, and both serialise the model they are given."""
    graph = model.graph
    light = onnx.ModelProto()
    for name in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(light, name, getattr(model, name))
    light.opset_import.extend(model.opset_import)
    light.metadata_props.extend(model.metadata_props)
    light.functions.extend(model.functions)
    g = light.graph
    g.name = graph.name
    g.doc_string = graph.doc_string
    g.node.extend(graph.node)
    g.input.extend(graph.input)
    g.output.extend(graph.output)
    g.value_info.extend(graph.value_info)
    g.sparse_initializer.extend(graph.sparse_initializer)
    g.quantization_annotation.extend(graph.quantization_annotation)
    declared = {v.name for v in graph.input}
    for tensor in graph.initializer:
        elements = 1
        for d in tensor.dims:
            elements *= d
        known_type = tensor.data_type in KNOWN_TYPES
        if elements * 8 <= LIGHT_TENSOR_BYTES or not known_type:  # (ByteSize() would walk the bytes)
            g.initializer.append(tensor)
        elif tensor.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return light


def infer_shapes_without_weights(model: onnx.ModelProto, light: onnx.ModelProto | None = None) -> None:
    """Shape inference on `light_model(model)`.

    Inference serialises the whole model; for a model of hundreds of MB that costs
    seconds, and weights only contribute their types and shapes. The inferred
    value_info and output types are copied back into `model`.
    """
    graph = model.graph
    light = light_model(model) if light is None else light
    # Strict, with type checks: a float input times an int32 weight is an error here,
    # not a failure of onnxruntime at run time.
    inferred = shape_inference.infer_shapes(light, strict_mode=True, check_type=True)
    del graph.value_info[:]
    graph.value_info.extend(inferred.graph.value_info)
    known = {o.name: o for o in inferred.graph.output}
    for output in graph.output:
        if output.name in known:
            output.type.CopyFrom(known[output.name].type)


def is_repeated(descriptor) -> bool:
    """(protobuf 6 deprecates `label` for the `is_repeated` property; older ones lack it)"""
    if hasattr(type(descriptor), "is_repeated") or hasattr(descriptor, "is_repeated"):
        return bool(descriptor.is_repeated)
    return descriptor.label == descriptor.LABEL_REPEATED


def check_text_fields(message, path: Path) -> None:
    """protobuf hands back a string field that is not valid UTF-8 as bytes (node names,
    tensor names, ...); refuse it here rather than fail later when writing JSON."""
    for descriptor, value in set_fields(message):
        repeated = is_repeated(descriptor)
        if descriptor.type == descriptor.TYPE_STRING:
            values = value if repeated else [value]
            if any(isinstance(v, bytes) for v in values):
                raise AnalogcError(f"{path}: field {descriptor.full_name} holds text that is not valid UTF-8")
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            for item in value if repeated else [value]:
                check_text_fields(item, path)


def set_fields(message):
    """message.ListFields(), except that a tensor's bytes fields are never fetched: each
    fetch copies them (400 MB for one VGG layer), and bytes are not text."""
    if message.DESCRIPTOR.name != "TensorProto":
        return message.ListFields()
    fields = []
    for descriptor in message.DESCRIPTOR.fields:
        if descriptor.type == descriptor.TYPE_BYTES:
            continue
        if is_repeated(descriptor):
            value = getattr(message, descriptor.name)
            if len(value):
                fields.append((descriptor, value))
        elif message.HasField(descriptor.name):
            fields.append((descriptor, getattr(message, descriptor.name)))
    return fields


# Domains whose operators onnxruntime implements; anything else cannot run on the host.
RUNNABLE_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")


def check_operator_sets(model: onnx.ModelProto, path: Path) -> None:
    """Refuse opsets newer than onnx knows and operators no runtime here implements
    (the checker accepts any custom domain; onnxruntime would fail only at `run`)."""
    newest = onnx.defs.onnx_opset_version()
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > newest:
            raise AnalogcError(
                f"{path}: model uses ONNX opset {imp.version}, newer than the newest this analogc knows ({newest})"
            )
    local = {f.domain for f in model.functions}
    for node in model.graph.node:
        if node.domain not in RUNNABLE_DOMAINS and node.domain not in local:
            raise AnalogcError(
                f"{path}: node {node.name or node.op_type!r} uses operator {node.domain}.{node.op_type}, "
                "which neither the analog tiles nor onnxruntime can run"
            )


def check_node_names(graph: onnx.GraphProto, path: Path) -> None:
    """Node names, where given, are unique: the checker allows repeats, but onnxruntime,
    the reference and the host segments' executor, refuses such a model at `run`.
    Names hold no NUL; the graph's inputs and outputs declare no negative dimension."""
    # A layer's arrays are named after its node, a constant output's after the output, and
    # a zip member's name ends at a NUL.
    for kind, name in [("node", n.name) for n in graph.node] + [("graph output", o.name) for o in graph.output]:
        if "\x00" in name:
            raise AnalogcError(f"{path}: {kind} name {name[:80]!r} holds a NUL character, which the tile program cannot store")
    for kind, value in [("input", v) for v in graph.input] + [("output", v) for v in graph.output]:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        if any(d.HasField("dim_value") and d.dim_value < 0 for d in dims):
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            raise AnalogcError(f"{path}: graph {kind} {value.name[:80]!r} declares a negative dimension {shape}")
    seen = set()
    for node in graph.node:
        if node.name and node.name in seen:
            raise AnalogcError(f"{path}: two nodes are named {node.name[:80]!r} (onnxruntime refuses repeated node names)")
        seen.add(node.name)


SUB_BYTE_BITS = {
    getattr(onnx.TensorProto, name): bits
    for name, bits in (("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2))
    if hasattr(onnx.TensorProto, name)
}


def declared_bytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes the tensor's dims and type declare; None for types without a fixed size."""
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return None
    bits = SUB_BYTE_BITS.get(tensor.data_type)
    elements = math.prod(tensor.dims)
    return (elements * bits + 7) // 8 if bits else elements * itemsize


def check_tensor_data(tensor: onnx.TensorProto, path: Path) -> bytes | None:
    """The data a tensor holds must match its dims exactly (the checker only refuses too
    little raw data; too much, or a wrong count of typed values, failed later in numpy).
    Gives the raw data it checked (None for typed values)."""
    if tensor.HasField("raw_data"):
        data = tensor.raw_data
        need = declared_bytes(tensor)
        if need is not None and len(data) != need:
            raise AnalogcError(f"{path}: tensor {tensor.name!r} holds {len(data)} bytes, its dims {list(tensor.dims)} need {need}")
        return data
    try:
        field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
    except (KeyError, TypeError, ValueError):
        return  # an unknown type: the checker names it
    elements = math.prod(tensor.dims)
    bits = SUB_BYTE_BITS.get(tensor.data_type)
    need = -(-elements * bits // 8) if bits else elements * (2 if tensor.data_type in COMPLEX_TYPES else 1)
    have = len(getattr(tensor, field))
    if have != need and not (have == 0 and elements == 0):
        raise AnalogcError(f"{path}: tensor {tensor.name!r} holds {have} values in {field}, its dims {list(tensor.dims)} need {need}")
    return None


COMPLEX_TYPES = (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128)


def check_tensor_memory(tensors: list, path: Path) -> None:
    """Before reading any weight: dims must be non-negative and all tensors together
    must fit in memory (see analogc/memory.py), else say how much they need."""
    total, largest, largest_bytes = 0, None, -1
    for tensor in tensors:
        if any(d < 0 for d in tensor.dims):
            raise AnalogcError(f"{path}: tensor {tensor.name!r} declares a negative dimension {list(tensor.dims)}")
        nbytes = declared_bytes(tensor) or 0
        total += nbytes
        if nbytes > largest_bytes:
            largest, largest_bytes = tensor, nbytes
    if largest is not None:
        dims = "x".join(str(d) for d in largest.dims) or "scalar"
        check_fits(total, f"the model's weights (largest {largest.name!r}, {dims}, {human(largest_bytes)})", str(path))


def checked_location(location: str, name: str, path: Path) -> str:
    """A relative path with no way out of the model's folder, in any spelling."""
    bad = (
        not location
        or any(ord(ch) < 32 or ch == "\x7f" for ch in location)
        or location.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", location)
        or ".." in re.split(r"[/\\]", location)
    )
    if bad:
        raise AnalogcError(
            f"{path}: external data location {location!r} of tensor {name!r} must be a relative "
            "path inside the model's folder (no absolute path, drive, '..' or control characters)"
        )
    return location


def load_external_data_safely(tensors: list, base: Path, path: Path) -> int:
    """Load tensors stored outside the model, refusing any location outside `base`,
    any file that is not a regular file, and any offset or length that does not fit."""
    external = [t for t in tensors if external_data_helper.uses_external_data(t)]
    for tensor in external:
        try:
            info = external_data_helper.ExternalDataInfo(tensor)
        except (ValueError, TypeError) as exc:
            raise AnalogcError(f"{path}: external data of tensor {tensor.name!r} is malformed ({exc})") from None
        location = checked_location(info.location, tensor.name, path)
        try:
            target = (base / location).resolve()
            inside = base in target.parents
            mode = target.stat().st_mode if inside else 0
        except FileNotFoundError:
            raise AnalogcError(f"{path}: external data file {location!r} of tensor {tensor.name!r} is missing") from None
        except (OSError, RuntimeError, ValueError) as exc:
            raise AnalogcError(f"{path}: cannot open external data {location!r} of tensor {tensor.name!r} ({exc})") from None
        if not inside:
            raise AnalogcError(
                f"{path}: external data {location!r} of tensor {tensor.name!r} leads outside "
                "the model's folder"
            )
        if not stat.S_ISREG(mode):
            raise AnalogcError(f"{path}: external data {location!r} of tensor {tensor.name!r} is not a regular file")
        file_size = target.stat().st_size
        offset = int(info.offset or 0)
        need = declared_bytes(tensor)
        length = int(info.length) if info.length is not None else need
        if need is not None and length != need:
            raise AnalogcError(
                f"{path}: external data of tensor {tensor.name!r} has length {length}, "
                f"its dims {list(tensor.dims)} need {need} bytes"
            )
        if offset > file_size or (length is not None and offset + length > file_size):
            raise AnalogcError(
                f"{path}: external data of tensor {tensor.name!r} (offset {offset}, length {length}) "
                f"lies beyond the end of {location!r} ({file_size} bytes)"
            )
        try:
            with open(target, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length) if length is not None else handle.read()
        except OSError as exc:
            raise AnalogcError(f"{path}: cannot read external data {location!r} ({exc.strerror or exc})") from None
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    return len(external)
