"""Cut runs of non-FC nodes out of the model as standalone ONNX models for onnxruntime.

A host segment keeps the original opset imports and local functions; the constants it
uses become its initializers; its inputs and outputs take their types from shape
inference on the whole model (or on the segment itself when that had none). The checker
requires a shape on every graph input and output, and at IR version 3 every initializer
listed among the inputs: a segment is written at IR version 4 at least, so its constants
are plain initializers.
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper, shape_inference

from analogc.errors import AnalogcError


def subgraph_references(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope."""
    names = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
            for inner in graph.node:
                defined.update(inner.output)
            for inner in graph.node:
                used = {n for n in inner.input if n} | subgraph_references(inner)
                names.update(used - defined)
    return names


def node_reads(node: onnx.NodeProto) -> set[str]:
    """Every tensor a node reads, including through its subgraphs."""
    return {n for n in node.input if n} | subgraph_references(node)


def build_segment_model(
    nodes: list,
    inputs: list[str],
    outputs: list[str],
    constants: dict,
    value_types: dict,
    source: onnx.ModelProto,
    name: str,
    origin: str = "model",
) -> onnx.ModelProto:
    """A runnable ModelProto of `nodes` reading `inputs` and producing `outputs`."""
    used = set()
    for node in nodes:
        used |= node_reads(node)
    initializers = [
        numpy_helper.from_array(constants[n], n) for n in sorted(used) if n in constants and n not in inputs
    ]
    graph = helper.make_graph(
        list(nodes),
        name,
        [value_info(n, value_types) for n in inputs],
        [value_info(n, value_types) for n in outputs],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=list(source.opset_import),
        producer_name="analogc",
        ir_version=max(source.ir_version, MIN_SEGMENT_IR_VERSION),
    )
    model.functions.extend(source.functions)
    if any(not has_shape(o) for o in model.graph.output):
        model = fill_output_types(model, name, origin)
    for value in model.graph.input:
        if not has_shape(value):
            raise AnalogcError(f"{origin}: {unknown_shape(value.name, name)}")
    return model


# IR 4 made listing initializers among the graph inputs optional; every opset of IR 3 runs at IR 4.
MIN_SEGMENT_IR_VERSION = 4


def unknown_shape(tensor: str, segment: str) -> str:
    return (f"cannot tell the type or rank of tensor {tensor!r} where host segment {segment} reads or writes it "
            "(ONNX shape inference does not see through the ops that compute it)")


def value_info(name: str, value_types: dict) -> onnx.ValueInfoProto:
    """Typed ValueInfo when inference knew the tensor, an untyped one otherwise."""
    known = value_types.get(name)
    if known is None:
        return onnx.ValueInfoProto(name=name)
    info = onnx.ValueInfoProto(name=name)
    info.type.CopyFrom(known)
    return info


def has_type(value: onnx.ValueInfoProto) -> bool:
    """A tensor with an element type, or any other type (sequence, map, optional)."""
    kind = value.type.WhichOneof("value")
    return kind is not None and (kind != "tensor_type" or bool(value.type.tensor_type.elem_type))


def has_shape(value: onnx.ValueInfoProto) -> bool:
    """Typed, and a tensor with a shape (the checker's rule for graph inputs and outputs)."""
    return has_type(value) and (value.type.WhichOneof("value") != "tensor_type" or value.type.tensor_type.HasField("shape"))


def fill_output_types(model: onnx.ModelProto, name: str, origin: str) -> onnx.ModelProto:
    """Infer the segment's own output types when the whole model's inference had none."""
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # inference that fails on the segment leaves the types unknown
        inferred = model
    known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for output in model.graph.output:
        if not has_shape(output):
            if output.name not in known or not has_shape(known[output.name]):
                raise AnalogcError(f"{origin}: {unknown_shape(output.name, name)}")
            output.type.CopyFrom(known[output.name].type)
    return model
