"""The original model of an untrained program, whole again: its stripped weights put back.

The compiler keeps `original.onnx` without the large initializers that are exactly a
layer's weights (mapper/strip_weights.py), listed in `meta["model"]["stripped_initializers"]`
as {name, array, transpose}. `original_bytes` fills each placeholder from the program's
array, bit for bit; `check_stripped` is the loader's check of the list.
"""

from __future__ import annotations

import numpy as np

from analogc.errors import AnalogcError


def stripped_initializers(meta: dict) -> list:
    return meta.get("model", {}).get("stripped_initializers", [])


def check_stripped(meta: dict, arrays: dict, fail) -> None:
    """Every stripped initializer names a 2-D float32 array the program holds, once."""
    entries = stripped_initializers(meta)
    if not isinstance(entries, list):
        fail("model.stripped_initializers must be a list")
    names = set()
    for entry in entries:
        if not (isinstance(entry, dict) and set(entry) == {"name", "array", "transpose"} and isinstance(entry["name"], str)
                and isinstance(entry["array"], str) and isinstance(entry["transpose"], bool)):
            fail(f"stripped initializer {str(entry)[:60]} is not {{name, array, transpose}}")
        if entry["name"] in names:
            fail(f"stripped initializer {entry['name'][:40]!r} is listed twice")
        names.add(entry["name"])
        value = arrays.get(entry["array"])
        if value is None or value.ndim != 2 or value.dtype != np.float32:
            fail(f"stripped initializer {entry['name'][:40]!r} names {entry['array'][:40]!r}, not a 2-D float32 array of the program")


def original_bytes(program) -> bytes:
    """The model as compiled (ONNX bytes), with every stripped initializer's data back."""
    import onnx  # (heavy: only `run --ideal`'s reference and export need the model)

    data = program.members["original.onnx"]
    entries = {e["name"]: e for e in stripped_initializers(program.meta)}
    if not entries:
        return data
    if program.meta.get("training"):
        raise AnalogcError("a trained program keeps the trained weights, not the original model's")
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # a damaged member passed the checksum only if written so
        raise AnalogcError(f"the program's original model cannot be parsed ({type(exc).__name__})") from None
    restored = set()
    for tensor in model.graph.initializer:
        entry = entries.get(tensor.name)
        if entry is None:
            continue
        value = program.arrays[entry["array"]]
        value = value.T if entry["transpose"] else value
        if tuple(tensor.dims) != value.shape or tensor.data_type != onnx.TensorProto.FLOAT:
            raise AnalogcError(f"the original model's initializer {tensor.name[:40]!r} does not match array {entry['array'][:40]!r}")
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        tensor.raw_data = np.ascontiguousarray(value, dtype="<f4").tobytes()
        restored.add(tensor.name)
    missing = sorted(set(entries) - restored)
    if missing:
        raise AnalogcError(f"the original model has no initializer {missing[0][:40]!r} to restore")
    return model.SerializeToString()


def checkable_original(program) -> bytes:
    """original.onnx for onnxruntime to load as a check, without restoring the weights:
    each stripped initializer becomes a typed graph input (its data are the program's
    arrays, checked by the loader). The bytes as stored when nothing was stripped."""
    import onnx  # (heavy: see original_bytes)

    data = program.members["original.onnx"]
    entries = {e["name"] for e in stripped_initializers(program.meta)}
    if not entries:
        return data
    model = onnx.load_from_string(data)
    kept = [t for t in model.graph.initializer if t.name not in entries]
    placeholders = [t for t in model.graph.initializer if t.name in entries]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    declared = {v.name for v in model.graph.input}
    for tensor in placeholders:
        if tensor.name not in declared:
            model.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return model.SerializeToString()
