"""ONNX → LayerGraph: find the fully-connected layers, hand everything else to the host.

One converter per ONNX op (`convert_gemm`, `convert_matmul`), registered by op type;
each either returns a canonical `Dense` (with the nodes it fused and any small host
nodes it needs around it) or None, which leaves the node to a host segment. Element-wise
activations right after a layer are fused by the activation converters when their
meaning at the model's opset is "along the last axis".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from analogc.errors import AnalogcError
from analogc.mapper.constants import fold_constants, initializer_arrays
from analogc.mapper.fusion import fold_batch_norm, fuse_activation
from analogc.mapper.host_grouping import declare_layer_output, group_host_segments
from analogc.mapper.host_segment import node_reads
from analogc.mapper.layer_graph import Dense, LayerGraph, ModelBatch, TensorInfo, build_digraph, example_dims, symbolic_dims, type_dims
from analogc.mapper.model_facts import Context
from analogc.mapper.no_ops import without_no_ops
from analogc.mapper.node_attrs import attributes, node_label, text_attribute
from analogc.mapper.onnx_load import load_onnx, upgrade_old_opset
from analogc.mapper.shape_probe import probe_unknown_ranks
from analogc.runtime.format.program_check import all_finite

ANALOG_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.DOUBLE: "float64"}


@dataclass
class Converted:
    """What a converter made of a node: the layer, fused node indices, host nodes around it."""

    dense: Dense
    fused: list[int]
    before: list = field(default_factory=list)
    after: list = field(default_factory=list)


CONVERTERS = {}


def converter(op_type: str, domain: str = ""):
    """Register a converter for an ONNX op; registering one twice is a bug."""

    def register(fn):
        if (domain, op_type) in CONVERTERS:
            raise RuntimeError(f"converter for {domain}.{op_type} registered twice")
        CONVERTERS[(domain, op_type)] = fn
        return fn

    return register


def tile_weight(node: onnx.NodeProto, index: int, ctx: Context) -> tuple[np.ndarray, str] | None:
    """(weight, dtype) of a Gemm or MatMul that can be a layer over its input's last
    axis, or None for a host op: a constant on the left (W·x), a second operand computed
    by the graph (an activation, e.g. attention's Q·Kᵀ), a non-float or empty product,
    an input of unknown rank.
    A weight fed as a graph input is an error: a tile needs it constant."""
    a, b = node.input[0], node.input[1]
    if b not in ctx.constants:
        if a not in ctx.constants and any(v.name == b for v in ctx.model.graph.input):
            raise AnalogcError(
                f"{ctx.origin}: {node.op_type} node {node_label(node, index)!r} takes its weight "
                f"{b!r} as a runtime input; an analog tile needs a constant weight"
            )
        return None
    weight = ctx.constants[b]
    if a in ctx.constants or weight.ndim != 2 or 0 in weight.shape:
        return None  # (a zero-sized product occupies no cells: onnxruntime computes it)
    if ctx.rank(a) is None:
        return None  # the host segment before the layer could not declare its output's shape
    # The input's type when inference knew it, else the weight's (the op requires them equal).
    dtype = ANALOG_DTYPES.get(ctx.elem_type(a)) or (weight.dtype.name if weight.dtype.name in ANALOG_DTYPES.values() else None)
    return (weight, dtype) if dtype is not None else None


def as_bias(value: np.ndarray, n: int, out_rank: int | None) -> np.ndarray | None:
    """A constant that adds one value per output column without changing the shape."""
    if value.ndim > (out_rank if out_rank is not None else 1):
        return None
    if any(d != 1 for d in value.shape[:-1]):
        return None
    if value.ndim and value.shape[-1] not in (1, n):
        return None
    return np.broadcast_to(value.reshape(-1) if value.ndim else value, (n,)).copy()


@converter("Gemm")
def convert_gemm(node: onnx.NodeProto, index: int, ctx: Context) -> Converted | None:
    """Y = alpha·A'·B' + beta·C with constant B: Dense(alpha·B', beta·C)."""
    found = tile_weight(node, index, ctx)
    if found is None:
        return None
    weight, dtype = found
    a = node.input[0]
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    elem_type = ctx.elem_type(a) or helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    attrs = attributes(node)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    # A view when B is float32 (transB: Fortran-ordered): a 400 MB weight is not copied;
    # the program writes it in that order and its reader hands it back C-ordered.
    weight = np.asarray(weight.T if attrs.get("transB", 0) else weight, dtype=np.float32)
    if alpha != 1.0:
        weight = weight * np.float32(alpha)
    n = weight.shape[1]
    name = ctx.layer_name(node, index)
    before, after = [], []
    x = a
    if attrs.get("transA", 0):
        x = ctx.fresh(f"{name}/transposed_input")
        ctx.declare(x, elem_type)
        before.append(helper.make_node("Transpose", [a], [x], perm=[1, 0], name=f"{name}/transA"))
    bias, output = None, node.output[0]
    if c is not None:
        c_value = ctx.constants.get(c)
        if c_value is not None:
            bias = as_bias(np.asarray(c_value, dtype=np.float64) * beta, n, 2)
        if bias is None:
            # A bias that is a runtime input or varies along the batch: add it on the host.
            output = ctx.fresh(f"{name}/xw")
            ctx.declare(output, elem_type)
            after.extend(host_bias_nodes(name, output, node.output[0], c, c_value, beta, ctx))
    dense = Dense(name, x, output, weight.astype(np.float32, copy=False), as_float32(bias), dtype=dtype, onnx_nodes=[node_label(node, index)])
    fused = [index]
    if not after:
        if ctx.fold_batchnorm:
            fold_batch_norm(dense, fused, ctx)
        fuse_activation(dense, fused, 2, ctx)
    return Converted(dense, fused, before, after)


def host_bias_nodes(name, xw, output, c, c_value, beta, ctx):
    """Host nodes computing output = xw + beta·C when C cannot live on the array."""
    if c_value is not None:
        scaled = ctx.fresh(f"{name}/beta_c")
        ctx.constants[scaled] = (np.asarray(c_value) * beta).astype(c_value.dtype)
        return [helper.make_node("Add", [xw, scaled], [output], name=f"{name}/bias")]
    if beta == 1.0:
        return [helper.make_node("Add", [xw, c], [output], name=f"{name}/bias")]
    beta_name, scaled = ctx.fresh(f"{name}/beta"), ctx.fresh(f"{name}/beta_c")
    ctx.constants[beta_name] = np.asarray(beta, dtype=onnx.helper.tensor_dtype_to_np_dtype(ctx.elem_type(c) or 1))
    ctx.declare(scaled, ctx.elem_type(c) or 1)
    return [
        helper.make_node("Mul", [c, beta_name], [scaled], name=f"{name}/beta_mul"),
        helper.make_node("Add", [xw, scaled], [output], name=f"{name}/bias"),
    ]


@converter("MatMul")
def convert_matmul(node: onnx.NodeProto, index: int, ctx: Context) -> Converted | None:
    """Y = A·B with constant 2-D B, fused with a following Add of a constant bias."""
    found = tile_weight(node, index, ctx)
    if found is None:
        return None
    weight, dtype = found
    a = node.input[0]
    name = ctx.layer_name(node, index)
    dense = Dense(name, a, node.output[0], weight.astype(np.float32, copy=False), None, dtype=dtype, onnx_nodes=[node_label(node, index)])
    fused = [index]
    # The product has the input's rank (a 2-D weight): known from either side.
    out_rank = ctx.rank(node.output[0]) if ctx.rank(node.output[0]) is not None else ctx.rank(a)
    found = ctx.sole_consumer(node.output[0])
    if found is not None and found[1].op_type == "Add":
        add_index, add = found
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        if other in ctx.constants and add.input[0] != add.input[1]:
            bias = as_bias(np.asarray(ctx.constants[other], dtype=np.float64), weight.shape[1], out_rank)
            if bias is not None:
                dense.bias = as_float32(bias)
                dense.output = add.output[0]
                dense.onnx_nodes.append(node_label(add, add_index))
                fused.append(add_index)
                ctx.claimed.add(add_index)
    if ctx.fold_batchnorm and out_rank == 2:  # (BatchNormalization normalises axis 1)
        fold_batch_norm(dense, fused, ctx)
    fuse_activation(dense, fused, out_rank, ctx)
    return Converted(dense, fused)


@converter("LinearClassifier", "ai.onnx.ml")
@converter("LinearRegressor", "ai.onnx.ml")
def convert_linear_model(node: onnx.NodeProto, index: int, ctx: Context) -> Converted | None:
    """scikit-learn's linear models (skl2onnx): scores = X·Cᵀ + intercepts, then a post
    transform (and, for a classifier, labels). The product goes on the tiles; the rest
    is the same op on the host with identity coefficients and zero intercepts, so
    onnxruntime's own post transform and labelling (binary case included) apply."""
    x = node.input[0]
    dtype = ANALOG_DTYPES.get(ctx.elem_type(x))
    known = ctx.value_types.get(x)
    dims = list(known.tensor_type.shape.dim) if known is not None and known.tensor_type.HasField("shape") else []
    if dtype is None or x in ctx.constants or len(dims) != 2 or not dims[1].HasField("dim_value") or dims[1].dim_value < 1:
        return None
    k = dims[1].dim_value
    attrs = attributes(node)
    coefficients = np.asarray(attrs.get("coefficients", []), dtype=np.float64)
    classifier = node.op_type == "LinearClassifier"
    rows = len(attrs["intercepts"]) if "intercepts" in attrs else (None if classifier else int(attrs.get("targets", 1)))
    if not rows or coefficients.size != rows * k:
        return None
    intercepts = np.asarray(attrs.get("intercepts", np.zeros(rows)), dtype=np.float64)
    name = ctx.layer_name(node, index)
    post = text_attribute(node, "post_transform", "NONE")
    output = node.output[0]
    after = []
    if classifier or post != "NONE":
        output = ctx.fresh(f"{name}/scores")
        batch = dims[0].dim_value if dims[0].HasField("dim_value") else (dims[0].dim_param or None)
        ctx.declare(output, ctx.elem_type(x), [batch, rows])
        identity = onnx.NodeProto()
        identity.CopyFrom(node)
        identity.name = f"{name}/post_transform"
        identity.input[0] = output
        del identity.attribute[:]
        for key, value in attrs.items():
            if key == "coefficients":
                value = np.eye(rows).reshape(-1).tolist()
            elif key == "intercepts":
                value = [0.0] * rows
            identity.attribute.append(helper.make_attribute(key, value))
        after.append(identity)
    weight = np.ascontiguousarray(coefficients.reshape(rows, k).T, dtype=np.float32)
    dense = Dense(name, x, output, weight, as_float32(intercepts), dtype=dtype, onnx_nodes=[node_label(node, index)])
    return Converted(dense, [index], [], after)


def as_float32(value):
    return None if value is None else np.asarray(value, dtype=np.float32)


def tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
    except Exception:
        dtype = "unknown"
    shape = None
    if tensor_type.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    return TensorInfo(value.name, dtype, shape)


def load_layer_graph(path: str | Path, fold_batchnorm: bool = False) -> tuple[LayerGraph, onnx.ModelProto, bool]:
    """Read an ONNX file: its layer graph, the checked and inferred model (upgraded to an
    opset onnxruntime runs, if it was older), and whether the file's bytes are that model
    (self-contained: no external data, not upgraded)."""
    model, self_contained, raw = load_onnx(path)
    model, converted_from = upgrade_old_opset(model, path)
    graph = build_layer_graph(model, str(path), fold_batchnorm, raw if converted_from is None else None)
    graph.opset_converted_from = converted_from
    return graph, model, self_contained and converted_from is None


def build_layer_graph(model: onnx.ModelProto, origin: str = "model", fold_batchnorm: bool = False, raw: dict | None = None) -> LayerGraph:
    """Split the model into Dense layers and host segments, in an executable order.
    BatchNormalization stays a host segment unless `fold_batchnorm` asks to absorb it.
    `raw`: the initializers' bytes as onnx_load read them (see initializer_arrays)."""
    model, bypassed = without_no_ops(model)
    graph = model.graph
    initializers = initializer_arrays(graph, raw)
    constants, folded = fold_constants(model, initializers)
    folded |= bypassed
    value_types = {}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        if value.type.HasField("tensor_type") or value.type.ByteSize():
            value_types[value.name] = value.type
    declare_shape_keeping_outputs(graph, value_types)
    probe_unknown_ranks(model, value_types, lambda node: ("" if node.domain == "ai.onnx" else node.domain, node.op_type) in CONVERTERS)
    consumers: dict[str, list[int]] = {}
    names = {v.name for v in list(graph.input) + list(graph.output)} | set(constants)
    for index, node in enumerate(graph.node):
        names.update(node.output)
        names.add(node.name)
        if index in folded:
            continue
        for tensor in node_reads(node):
            consumers.setdefault(tensor, []).append(index)
    opset = next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 1)
    ctx = Context(
        model, origin, constants, value_types, consumers, {o.name for o in graph.output}, opset, set(folded), names,
        fold_batchnorm=fold_batchnorm,
    )
    batch = ModelBatch.of([symbolic_dims(v.type) for v in graph.input if v.name not in constants])
    producers = {out: node for node in graph.node for out in node.output}
    items = []  # Dense layers and host NodeProtos in execution order
    for index, node in enumerate(graph.node):
        if index in ctx.claimed:
            continue
        convert = CONVERTERS.get(("" if node.domain == "ai.onnx" else node.domain, node.op_type))
        result = convert(node, index, ctx) if convert else None
        if result is None:
            ctx.claimed.add(index)
            items.append(node)
            continue
        ctx.claimed.update(result.fused)
        if result.dense.input_shape is None:
            result.dense.input_shape = type_dims(ctx.value_types.get(result.dense.input))
        if result.dense.conv is None:
            result.dense.per_example_dims = per_example_dims(result.dense, ctx, batch, producers)
        declare_layer_output(result.dense, ctx)  # (a layer after it needs its rank)
        items.extend(result.before)
        items.append(result.dense)
        items.extend(result.after)
    inputs = [tensor_info(v) for v in graph.input if v.name not in constants]
    outputs = [tensor_info(v) for v in graph.output]
    check_unique_names(model, origin)
    for item in items:
        if isinstance(item, Dense):
            check_finite(item, origin)
    steps = group_host_segments(items, ctx, inputs, outputs)
    constant_outputs = {o.name: constants[o.name] for o in outputs if o.name in constants}
    return LayerGraph(inputs, outputs, steps, constant_outputs, build_digraph(steps, inputs), ctx.notes, initializers=initializers,
                      batch=batch)


def per_example_dims(dense: Dense, ctx: Context, batch: ModelBatch, producers: dict) -> list | None:
    """A dense layer's dims between the example and its features (see `example_dims`).
    A rank-2 input whose rows are not the batch is looked through to the Reshape or
    Flatten that made it: when the source's last dims make K, its leading dims are the
    rows, so [N, T, K] → [-1, K] (or [T, N, H, D] → [-1, H·D]) reads T times per example
    and a flattened example [N, C, H, W] → [N, C·H·W] once; anything else is unknown
    ([None]: at least one read, said to be a bound)."""
    dims = symbolic_dims(ctx.value_types.get(dense.input))
    if not dims:
        return None
    rows = dims[0]
    batch_rows = (isinstance(rows, str) and rows in batch.names) or (batch.size is not None and rows == batch.size)
    producer = producers.get(dense.input)
    if len(dims) != 2 or batch_rows or producer is None or producer.op_type not in ("Reshape", "Flatten"):
        return example_dims(dims, batch)
    source = symbolic_dims(ctx.value_types.get(producer.input[0]))
    k = dims[-1]
    if not source or len(source) < 2 or not isinstance(k, int):
        return [None]
    for cut in range(len(source) - 1, 0, -1):  # the shortest suffix of known dims that makes K
        tail = source[cut:]
        if not all(isinstance(d, int) for d in tail) or prod(tail) > k:
            break
        if prod(tail) == k:
            return example_dims(source[:cut] + [k], batch)
    return [None]


# ai.onnx.ml ops whose output has the input's shape (and, but for Scaler and Normalizer,
# which always give float, its type) and which ONNX shape inference does not see through.
SHAPE_KEEPING_ML_OPS = {"Scaler": onnx.TensorProto.FLOAT, "Normalizer": onnx.TensorProto.FLOAT, "Binarizer": None, "Imputer": None}


def declare_shape_keeping_outputs(graph: onnx.GraphProto, value_types: dict) -> None:
    """Type the outputs of shape-keeping ai.onnx.ml ops (a scikit-learn pipeline's
    StandardScaler before an MLP): the layers after them then know their input's type
    and rank, and the host segments around them get the shapes the checker requires."""
    for node in graph.node:
        if node.domain != "ai.onnx.ml" or node.op_type not in SHAPE_KEEPING_ML_OPS or not node.input or not node.output:
            continue
        source, output = value_types.get(node.input[0]), node.output[0]
        known = value_types.get(output)
        if source is None or not source.tensor_type.HasField("shape") or (known is not None and known.tensor_type.HasField("shape")):
            continue
        declared = onnx.TypeProto()
        declared.CopyFrom(source)
        declared.tensor_type.elem_type = SHAPE_KEEPING_ML_OPS[node.op_type] or source.tensor_type.elem_type
        value_types[output] = declared


def check_finite(dense: Dense, origin: str) -> None:
    """NaN or Inf weights cannot be programmed into conductances."""
    for what, values in (("weights", dense.weight), ("bias", dense.bias)):
        if values is not None and not all_finite(values):
            raise AnalogcError(f"{origin}: layer {dense.name!r} has NaN or Inf {what}; they cannot be programmed onto a tile")


def check_unique_names(model: onnx.ModelProto, origin: str) -> None:
    """Duplicate graph input names make feeds ambiguous (the checker lets some through)."""
    seen = set()
    for value in model.graph.input:
        if value.name in seen:
            raise AnalogcError(f"{origin}: graph input {value.name!r} is declared twice")
        seen.add(value.name)
