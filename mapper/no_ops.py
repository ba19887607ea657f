"""Bypass nodes that compute nothing at inference: Identity, and Dropout without a
training-mode input (or with a constant false one) whose mask nobody reads (Caffe2's
exports declare the mask output and leave it unread).

Exporters leave them between layers (a Dropout after a hidden layer's ReLU, an Identity
naming a tensor); left in, each would cut the network into host segments, and training
would see only the layers after the last one.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from analogc.mapper.host_segment import subgraph_references


def without_no_ops(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[int]]:
    """(model, indices of bypassed nodes): a copy whose readers of a no-op's output read
    its input instead, or the model itself when there is nothing to bypass. The no-ops
    stay in place, to be skipped, so every other node keeps its index (layers of unnamed
    nodes are named by it). A no-op stays when its output is a graph output or is read
    from inside a subgraph (renaming those would change the interface or the scoping)."""
    graph = model.graph
    kept_names = {o.name for o in graph.output}
    for node in graph.node:
        kept_names |= subgraph_references(node)
    initializers = {t.name: t for t in graph.initializer}
    read = set(kept_names)
    for node in graph.node:
        read.update(node.input)
    alias, bypassed = {}, set()
    for index, node in enumerate(graph.node):
        if is_no_op(node, initializers, read) and node.output[0] not in kept_names:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
            bypassed.add(index)
    if not alias:
        return model, bypassed
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for index, node in enumerate(copy.graph.node):
        if index not in bypassed:
            for i, name in enumerate(node.input):
                if name in alias:
                    node.input[i] = alias[name]
    return copy, bypassed


def is_no_op(node: onnx.NodeProto, initializers: dict, read: set) -> bool:
    """`read`: every tensor some node or the graph's outputs read."""
    if node.domain not in ("", "ai.onnx") or not node.output or not node.input or not node.input[0]:
        return False
    if node.op_type == "Identity":
        return True
    if node.op_type != "Dropout" or (len(node.output) > 1 and node.output[1] in read):
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("is_test", 1) == 0:  # opset < 7: is_test = 0 is training
        return False
    training = node.input[2] if len(node.input) > 2 else ""
    if not training:
        return True
    tensor = initializers.get(training)
    return tensor is not None and not np.asarray(numpy_helper.to_array(tensor)).any()
