"""Constant values of a graph: initializers, Constant nodes and foldable chains of them.

A weight may reach a Gemm or MatMul as an initializer, through a `Constant` node, or
through a chain such as `Transpose(initializer)`; old IR versions also list
initializers among the graph inputs. Any deterministic node whose inputs are all
constant is evaluated here once (onnx's reference evaluator), so the pattern
converters only ever ask "is this input constant, and what is it?".
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

NONDETERMINISTIC_OPS = {
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "Dropout",  # folding is fine in inference, but keep the user's graph intact
}
MAX_FOLDED_ELEMENTS = 1 << 28


def has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


# Types whose raw data numpy reads as it is (little-endian, one value per item).
PLAIN_TYPES = {
    getattr(onnx.TensorProto, name)
    for name in ("FLOAT", "DOUBLE", "FLOAT16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
}


def initializer_arrays(graph: onnx.GraphProto, raw: dict | None = None) -> dict:
    """{name: array} of the graph's initializers. With `raw` (the bytes onnx_load read
    while checking sizes), a plain type's array is a read-only view of them: reading
    `raw_data` again would copy each weight once more."""
    arrays = {}
    for init in graph.initializer:
        data = raw.get(init.name) if raw else None
        if data is not None and init.data_type in PLAIN_TYPES and sys.byteorder == "little":
            dtype = helper.tensor_dtype_to_np_dtype(init.data_type)
            arrays[init.name] = np.frombuffer(data, dtype=dtype).reshape(tuple(init.dims))
        else:
            arrays[init.name] = numpy_helper.to_array(init)
    return arrays


def fold_constants(model: onnx.ModelProto, initializers: dict | None = None) -> tuple[dict, set]:
    """Evaluate every constant-only node; return {tensor: array} and folded node indices.
    `initializers`: the graph's initializers as arrays, if already read."""
    graph = model.graph
    constants = dict(initializer_arrays(graph) if initializers is None else initializers)
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    folded = set()
    for index, node in enumerate(graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type in NONDETERMINISTIC_OPS:
            continue
        if has_subgraph(node):
            continue
        inputs = [name for name in node.input if name]
        if node.op_type != "Constant" and (not inputs or not all(n in constants for n in inputs)):
            continue
        values = evaluate_node(node, constants, opsets)
        if values is None:
            continue
        for name, value in zip(node.output, values):
            if name:
                constants[name] = value
        folded.add(index)
    return constants, folded


def evaluate_node(node: onnx.NodeProto, constants: dict, opsets: dict):
    """One node on constant inputs with onnx's reference evaluator; None if it cannot."""
    try:
        evaluator = ReferenceEvaluator(node, opsets={"": opsets.get("", 1)})
        feeds = {name: constants[name] for name in node.input if name}
        values = evaluator.run(None, feeds)
    except Exception:  # an op the reference does not know stays in the graph
        return None
    arrays = []
    for value in values:
        if not isinstance(value, np.ndarray):
            value = np.asarray(value)
        if value.dtype == object or value.size > MAX_FOLDED_ELEMENTS:
            return None
        arrays.append(value)
    return arrays
