"""Fusing element-wise activations into the layer before them.

The chip's digital periphery applies an activation to the tile outputs, and training
differentiates it there; fused, it neither cuts the network into host segments nor
hides the layers before it from training. An activation converter says what an ONNX op
means at the model's opset (or None: not "along the last axis"); the pattern matchers
recognise activations that exporters write as several ops (SiLU, GELU; any other
spelling of those by what it computes: mapper/fusion_by_value.py).
"""

from __future__ import annotations

import numpy as np
import onnx

from analogc.mapper.fusion_by_value import absorb, fuse_by_value
from analogc.mapper.layer_graph import Dense
from analogc.mapper.model_facts import Context
from analogc.mapper.node_attrs import attributes, node_label, text_attribute
from analogc.runtime.chip.activations import PARAMETERS

ACTIVATION_CONVERTERS = {}


def activation(op_type: str):
    def register(fn):
        ACTIVATION_CONVERTERS[op_type] = fn
        return fn

    return register


def fuse_activation(dense: Dense, fused: list, rank: int | None, ctx: Context) -> None:
    """Absorb an element-wise activation that is the only reader of the layer's output."""
    found = ctx.sole_consumer(dense.output)
    if found is None:
        fuse_silu(dense, fused, ctx) or fuse_gelu(dense, fused, ctx) or fuse_by_value(dense, fused, ctx)
        return
    if found[1].op_type not in ACTIVATION_CONVERTERS:
        fuse_by_value(dense, fused, ctx)
        return
    act_index, act_node = found
    described = ACTIVATION_CONVERTERS[act_node.op_type](act_node, rank, ctx.opset)
    if described is None:
        return
    dense.activation, dense.activation_params = described
    dense.output = act_node.output[0]
    dense.onnx_nodes.append(node_label(act_node, act_index))
    fused.append(act_index)
    ctx.claimed.add(act_index)


def readers_by_op(ctx: Context, tensor: str) -> dict | None:
    """{op type: (index, node)} of a tensor's readers, when each reads it under a
    different op type, none is taken yet and the tensor is not a graph output."""
    readers = ctx.consumers.get(tensor, [])
    if tensor in ctx.graph_outputs or any(i in ctx.claimed for i in readers):
        return None
    found = {ctx.model.graph.node[i].op_type: (i, ctx.model.graph.node[i]) for i in readers}
    if len(found) != len(readers) or any(node.domain not in ("", "ai.onnx") for _, node in found.values()):
        return None
    return found


def scalar_constant(ctx: Context, name: str, value: float) -> bool:
    constant = ctx.constants.get(name)
    return constant is not None and np.size(constant) == 1 and np.isclose(float(np.asarray(constant).reshape(-1)[0]), value, rtol=1e-6)


def other_input(node: onnx.NodeProto, tensor: str) -> str | None:
    """The other input of a two-input node that reads `tensor` once."""
    inputs = list(node.input)
    return inputs[1 - inputs.index(tensor)] if len(inputs) == 2 and inputs.count(tensor) == 1 else None


def fuse_silu(dense: Dense, fused: list, ctx: Context) -> bool:
    """Absorb x·Sigmoid(x) (SiLU, swish, as exporters write it) when the layer's output
    is read by exactly that Sigmoid and that Mul, and the Sigmoid only by the Mul."""
    z = dense.output
    readers = readers_by_op(ctx, z)
    if readers is None or set(readers) != {"Sigmoid", "Mul"}:
        return False
    (s_index, sigmoid), (m_index, mul) = readers["Sigmoid"], readers["Mul"]
    gate = sigmoid.output[0]
    if ctx.consumers.get(gate) != [m_index] or gate in ctx.graph_outputs or other_input(mul, z) != gate:
        return False
    absorb(dense, fused, ctx, "silu", [(s_index, sigmoid), (m_index, mul)])
    return True


def fuse_gelu(dense: Dense, fused: list, ctx: Context) -> bool:
    """Absorb GELU as torch writes it before opset 20, x·(Erf(x/√2) + 1)·0.5: the
    layer's output read by exactly the Div and the first Mul, each step by the next."""
    z = dense.output
    readers = readers_by_op(ctx, z)
    if readers is None or set(readers) != {"Div", "Mul"}:
        return False
    (d_index, div), (m_index, mul) = readers["Div"], readers["Mul"]
    if list(div.input)[:1] != [z] or not scalar_constant(ctx, div.input[1], np.sqrt(2.0)):
        return False
    erf = ctx.sole_consumer(div.output[0])
    add = ctx.sole_consumer(erf[1].output[0]) if erf and erf[1].op_type == "Erf" else None
    if not add or add[1].op_type != "Add" or not scalar_constant(ctx, other_input(add[1], erf[1].output[0]) or "", 1.0):
        return False
    if ctx.consumers.get(add[1].output[0]) != [m_index] or other_input(mul, z) != add[1].output[0]:
        return False
    half = ctx.sole_consumer(mul.output[0])
    if not half or half[1].op_type != "Mul" or not scalar_constant(ctx, other_input(half[1], mul.output[0]) or "", 0.5):
        return False
    absorb(dense, fused, ctx, "gelu", [(d_index, div), erf, add, (m_index, mul), half])
    return True



@activation("Gelu")
def convert_gelu(node, rank, opset):
    approximate = text_attribute(node, "approximate", "none")
    return {"none": ("gelu", {}), "tanh": ("gelu_tanh", {})}.get(approximate)


def convert_element_wise_activation(name: str):
    """Converter for an element-wise activation: each of its parameters as given, or
    ONNX's default (`runtime.activations.PARAMETERS`; none for most)."""

    def convert(node, rank, opset):
        given = attributes(node)
        return name, {key: float(given.get(key, default)) for key, default in PARAMETERS.get(name, {}).items()}

    return convert


for _op_type, _name in {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Identity": "identity", "LeakyRelu": "leaky_relu",
                        "Elu": "elu", "Selu": "selu", "HardSigmoid": "hard_sigmoid", "Softplus": "softplus", "Softsign": "softsign"}.items():
    activation(_op_type)(convert_element_wise_activation(_name))


def last_axis_softmax(node, rank, opset) -> bool:
    """Softmax before opset 13 flattens at `axis` (default 1); from 13 it is one axis (default -1).

    Either way it equals a softmax over the last axis exactly when `axis` names the last
    axis; with an unknown rank only axis = -1 is safe.
    """
    axis = int(attributes(node).get("axis", 1 if opset < 13 else -1))
    if rank is None:
        return axis == -1
    return axis in (-1, rank - 1)


@activation("Softmax")
def convert_softmax(node, rank, opset):
    return ("softmax", {}) if last_axis_softmax(node, rank, opset) else None


@activation("LogSoftmax")
def convert_log_softmax(node, rank, opset):
    return ("log_softmax", {}) if last_axis_softmax(node, rank, opset) else None


def fold_batch_norm(dense: Dense, fused: list, ctx: Context) -> None:
    """Absorb an inference-mode BatchNormalization that is the only reader of the layer's
    output (`compile --fold-batchnorm`; the caller makes sure the normalised axis is the
    layer's output channels): y = s·(x·W + b − mean) + β with s = γ/√(var + ε) per
    channel, so the weight's columns scale by s and the bias becomes s·(b − mean) + β."""
    found = ctx.sole_consumer(dense.output)
    if found is None or found[1].op_type != "BatchNormalization":
        return
    bn_index, bn = found
    if bn.input[0] != dense.output:
        return  # the layer's output is one of the statistics, not the normalised tensor
    attrs = attributes(bn)
    params = list(bn.input[1:5])
    if len(params) != 4 or any(p not in ctx.constants for p in params) or attrs.get("training_mode", 0) or not attrs.get("spatial", 1):
        return
    if any(o and (ctx.consumers.get(o) or o in ctx.graph_outputs) for o in bn.output[1:]):
        return  # running statistics are read: a training-mode graph
    gamma, beta, mean, var = (np.asarray(ctx.constants[p], dtype=np.float64).reshape(-1) for p in params)
    n = dense.weight.shape[1]
    if any(v.size != n for v in (gamma, beta, mean, var)):
        return
    scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    bias = dense.bias.astype(np.float64) if dense.bias is not None else np.zeros(n)
    dense.weight = (dense.weight.astype(np.float64) * scale).astype(np.float32)
    dense.bias = ((bias - mean) * scale + beta).astype(np.float32)
    dense.output = bn.output[0]
    dense.onnx_nodes.append(node_label(bn, bn_index))
    fused.append(bn_index)
    ctx.claimed.add(bn_index)
