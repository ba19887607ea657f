"""The original model as the program keeps it: without the weights its arrays already hold.

`run --ideal` and `export` need the model as compiled. Kept whole, a program of the
VGG-19 FC stack would hold its 123 M weights twice (the layer arrays and the model's
initializers). Each large float32 initializer that is exactly a layer's weight matrix
(or its transpose, Gemm's transB) is kept in `original.onnx` as a placeholder (name,
type, dims, and external-data entries naming the array, data never written), and listed
in `meta["model"]["stripped_initializers"]`; runtime/format/original_model.py puts the data
back from the arrays. An initializer that differs in any bit (alpha-scaled, folded,
another type) is kept as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

STRIP_BYTES = 1 << 20  # initializers smaller than this stay in the model


def strip_weights(model: onnx.ModelProto, layers: list, initializers: dict | None = None) -> tuple[bytes, list]:
    """(the model's bytes with the layer weights as placeholders, the stripped list).
    `initializers`: the arrays the frontend read from the model's initializers; a
    read-only one (a view of the bytes read, so unchanged since) is compared in place of
    reading `raw_data` again, which would copy the weight (0.6 s and 400 MB for VGG-19)."""
    initializers = initializers or {}
    counts = {}
    for tensor in model.graph.initializer:
        counts[tensor.name] = counts.get(tensor.name, 0) + 1
    shapes = {}
    for dense in layers:
        weight = dense.weight
        if weight.ndim == 2 and weight.dtype == np.float32:
            shapes.setdefault((tuple(weight.shape), False), []).append(dense)
            shapes.setdefault((tuple(weight.shape[::-1]), True), []).append(dense)
    stripped, keep = [], {}
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT or len(tensor.dims) != 2 or tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        dims = tuple(int(d) for d in tensor.dims)
        if dims[0] * dims[1] * 4 < STRIP_BYTES or tensor.name in keep:
            continue
        value = None
        for transpose in (False, True):
            for dense in shapes.get((dims, transpose), []):
                if value is None:
                    value = as_read(initializers.get(tensor.name), dims) if counts[tensor.name] == 1 else None
                if value is None:
                    value = np.frombuffer(tensor.raw_data, dtype="<f4").reshape(dims) if tensor.raw_data else numpy_helper.to_array(tensor)
                held = dense.weight.T if transpose else dense.weight
                if same_values(value, held):
                    keep[tensor.name] = {"name": tensor.name, "array": f"weight/{dense.name}", "transpose": transpose}
                    break
            if tensor.name in keep:
                break
    if not keep:
        return model.SerializeToString(), []
    light = without_initializers(model)
    for tensor in model.graph.initializer:
        entry = keep.get(tensor.name)
        if entry is None:
            light.graph.initializer.append(tensor)
            continue
        placeholder = light.graph.initializer.add()
        placeholder.name, placeholder.data_type = tensor.name, tensor.data_type
        placeholder.dims.extend(tensor.dims)
        placeholder.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", "analogc-program-arrays"), ("array", entry["array"]), ("transpose", str(int(entry["transpose"])))):
            item = placeholder.external_data.add()
            item.key, item.value = key, value
        stripped.append(entry)
    return light.SerializeToString(), stripped


def as_read(value, dims: tuple):
    """The frontend's array of an initializer, if it is still its data as read: float32,
    its dims, and read-only (a view of the file's bytes no converter can have changed)."""
    if isinstance(value, np.ndarray) and value.dtype == np.dtype("<f4") and value.shape == dims and not value.flags.writeable:
        return value
    return None


def same_values(a: np.ndarray, b: np.ndarray, rows: int = 256) -> bool:
    """Bit for bit (a compiled weight holds no NaN), a block of rows at a time: no
    boolean array of a 100 M-weight layer. `b` is read in memory order when it is a
    transposed view of C-ordered data (the usual case: Gemm's transB)."""
    if a.shape != b.shape:
        return False
    return all(np.array_equal(a[i : i + rows], b[i : i + rows]) for i in range(0, a.shape[0], rows))


def without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of every field of the model but the graph's initializers (not copied)."""
    copy = onnx.ModelProto()
    for field, value in model.ListFields():
        if field.name == "graph":
            continue
        if field.type == field.TYPE_MESSAGE:
            target = getattr(copy, field.name)
            target.extend(value) if hasattr(target, "extend") else target.CopyFrom(value)
        elif hasattr(getattr(copy, field.name), "extend"):
            getattr(copy, field.name).extend(value)
        else:
            setattr(copy, field.name, value)
    for field, value in model.graph.ListFields():
        if field.name == "initializer":
            continue
        target = getattr(copy.graph, field.name)
        if hasattr(target, "extend"):
            target.extend(value)
        elif field.type == field.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(copy.graph, field.name, value)
    return copy
