"""Floating-point operations of a host segment, counted from its ONNX graph.

Shapes come from onnx's shape inference with the segment's inputs fixed to concrete
shapes. What is counted (one multiply-add = 2 FLOPs):

- Conv / ConvTranspose: 2·(input channels per group)·kernel size per output element,
  plus one per output element for a bias;
- MatMul: 2·K per output element; Gemm: 2·K per output element, plus one per output
  element for C (and one each for alpha and beta when they are not 1);
- element-wise arithmetic and activations (Add, Sub, Mul, Div, Relu, Sigmoid, Exp, ...,
  BatchNormalization counts 2): per output element;
- pooling: kernel size per output element (global pooling: input elements per output);
- reductions and Softmax-like ops: input elements (Softmax / LogSoftmax: 3 per element);
- data movement (Reshape, Flatten, Transpose, Concat, Gather, Cast, Pad, Slice, ...):
  zero.

A node whose output shape inference cannot make concrete, or an op not listed, is
counted as zero and named in `uncounted` — never guessed.
"""

from __future__ import annotations

import math

import onnx
from onnx import shape_inference

ELEMENTWISE = {
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Pow": 1, "Neg": 1, "Abs": 1, "Sqrt": 1,
    "Reciprocal": 1, "Exp": 1, "Log": 1, "Relu": 1, "LeakyRelu": 1, "PRelu": 1,
    "Sigmoid": 1, "HardSigmoid": 1, "Tanh": 1, "Elu": 1, "Selu": 1, "Softplus": 1,
    "Clip": 1, "Max": 1, "Min": 1, "Sum": 1, "Mean": 1, "Erf": 1, "Gelu": 1,
    "HardSwish": 1, "Floor": 1, "Ceil": 1, "Round": 1, "Sign": 1, "Mish": 1,
    "BatchNormalization": 2, "Where": 1, "Equal": 1, "Less": 1, "Greater": 1,
}
PER_INPUT_ELEMENT = {
    "ReduceSum": 1, "ReduceMean": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1,
    "ReduceL2": 2, "ReduceSumSquare": 2, "Softmax": 3, "LogSoftmax": 3, "ArgMax": 1, "ArgMin": 1,
    "GlobalAveragePool": 1, "GlobalMaxPool": 1,
}
MOVEMENT = {
    "Reshape", "Flatten", "Transpose", "Concat", "Gather", "Cast", "Pad", "Slice", "Squeeze",
    "Unsqueeze", "Identity", "Shape", "Constant", "Expand", "Split", "Tile", "Dropout",
    "ConstantOfShape", "Size", "GatherElements", "ScatterND", "DepthToSpace", "SpaceToDepth",
}


def fix_input_shapes(model: onnx.ModelProto, shapes: dict) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs have the concrete `shapes` given by name."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name not in shapes or value.type.WhichOneof("value") != "tensor_type":
            continue
        tensor_shape = value.type.tensor_type.shape
        tensor_shape.ClearField("dim")
        for size in shapes[value.name]:
            tensor_shape.dim.add().dim_value = int(size)
    return fixed


def concrete_shapes(model: onnx.ModelProto) -> dict:
    """Tensor name -> shape tuple, for every tensor whose shape inference made concrete."""
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference failing leaves every node uncounted
        inferred = model
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        if value.type.WhichOneof("value") != "tensor_type" or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def attribute(node, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def node_flops(node, shapes: dict) -> int | None:
    """FLOPs of one node, or None when its shapes are unknown or the op is not counted."""
    out = shapes.get(node.output[0]) if node.output else None
    op = node.op_type
    if op in MOVEMENT:
        return 0
    if out is None:
        return None
    out_elements = math.prod(out)
    first_input = shapes.get(node.input[0]) if node.input else None
    if op in ("Conv", "ConvTranspose"):
        weight = shapes.get(node.input[1])
        bias = out_elements if len(node.input) > 2 and node.input[2] else 0
        if weight is None or first_input is None:
            return None
        if op == "Conv":  # weight [C_out, C_in/group, k...]: 2·C_in/group·k per output
            return 2 * math.prod(weight[1:]) * out_elements + bias
        # weight [C_in, C_out/group, k...]: each input element feeds C_out/group·k outputs
        return 2 * math.prod(weight[1:]) * math.prod(first_input) + bias
    if op == "MatMul":
        if not first_input:
            return None
        return 2 * first_input[-1] * out_elements
    if op == "Gemm":
        if first_input is None or len(first_input) != 2:
            return None
        k = first_input[0] if attribute(node, "transA", 0) else first_input[1]
        has_c = len(node.input) > 2 and bool(node.input[2])
        extra = int(has_c) + int(attribute(node, "alpha", 1.0) != 1.0) + int(has_c and attribute(node, "beta", 1.0) != 1.0)
        return (2 * k + extra) * out_elements
    if op in ELEMENTWISE:
        return ELEMENTWISE[op] * out_elements
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return math.prod(attribute(node, "kernel_shape", [1])) * out_elements
    if op in PER_INPUT_ELEMENT:
        if first_input is None:
            return None
        return PER_INPUT_ELEMENT[op] * math.prod(first_input)
    return None


def segment_flops(model: onnx.ModelProto, input_shapes: dict) -> tuple[int, list[str]]:
    """(FLOPs of one call with these input shapes, names of nodes left uncounted)."""
    shapes = concrete_shapes(fix_input_shapes(model, input_shapes))
    total, uncounted = 0, []
    for node in model.graph.node:
        flops = node_flops(node, shapes)
        if flops is None:
            uncounted.append(node.name or node.op_type)
        else:
            total += flops
    return total, uncounted


def per_example_input_shapes(model: onnx.ModelProto) -> tuple[dict, int]:
    """Input shapes for one call at the model's own batch (1 where the batch is
    symbolic), and that batch: FLOPs per example are FLOPs of this call / batch."""
    shapes, batch = {}, None
    for value in model.graph.input:
        if value.type.WhichOneof("value") != "tensor_type":
            continue
        dims = value.type.tensor_type.shape.dim
        concrete = []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                concrete.append(dim.dim_value)
            elif axis == 0:
                concrete.append(1)
            else:
                concrete = None
                break
        if concrete is not None:
            shapes[value.name] = tuple(concrete)
            if concrete and batch is None:
                batch = concrete[0]
    return shapes, batch or 1
