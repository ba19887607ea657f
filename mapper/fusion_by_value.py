"""Recognise an activation that an exporter wrote as several element-wise ops by what it
computes, not by how it is spelled.

GELU alone has many spellings: torch's TorchScript exporter multiplies x·(1 + erf)
first and by 0.5 last, the dynamo exporter multiplies (1 + erf) by 0.5 first and by x
last, tanh-GELU before opset 20 is x³ as Mul(x, Mul(x, x)) or Pow(x, 3), constants on
either side. Starting at a layer's output, the ops that read it (and only element-wise
ops on it and on scalar constants) are taken in graph order; as soon as they form a
closed region (one tensor leaves it), the region is evaluated on sample points and
compared with the multi-op activations the chip's periphery computes. A match is
absorbed into the layer; anything else (another constant, a different formula) stays
on the host.
"""

from __future__ import annotations

import heapq

import numpy as np

from analogc.mapper.layer_graph import Dense
from analogc.mapper.model_facts import Context
from analogc.mapper.node_attrs import node_label
from analogc.runtime.chip import activations


def erf(values):
    """scipy's erf, imported when a chain has one: scipy.special takes 0.2 s to import,
    a fifth of what compiling most models takes otherwise."""
    from scipy.special import erf as scipy_erf  # heavy optional import, see above

    return scipy_erf(values)


UNARY = {"Tanh": np.tanh, "Erf": erf, "Sigmoid": activations.sigmoid, "Exp": np.exp, "Neg": np.negative, "Sqrt": np.sqrt,
         "Reciprocal": np.reciprocal, "Abs": np.abs, "Identity": lambda v: v}
BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power}
CANDIDATES = ("gelu", "gelu_tanh", "silu")  # what exporters spell as several ops
MAX_REGION_NODES = 12
SAMPLES = np.linspace(-6.0, 6.0, 241)


def fuse_by_value(dense: Dense, fused: list, ctx: Context) -> bool:
    """Absorb the smallest closed element-wise region after the layer that computes one
    of CANDIDATES (to float32 precision); True if it did."""
    graph = ctx.model.graph
    start = dense.output
    if start in ctx.graph_outputs:
        return False
    tensors, region, values = {start}, [], {start: SAMPLES}
    queue = sorted(set(ctx.consumers.get(start, [])))
    seen = set(queue)
    while queue and len(region) < MAX_REGION_NODES:
        index = heapq.heappop(queue)
        node = graph.node[index]
        result = evaluate(node, values, ctx) if index not in ctx.claimed else None
        if result is None:
            return False
        region.append((index, node))
        tensors.add(node.output[0])
        values[node.output[0]] = result
        for reader in ctx.consumers.get(node.output[0], []):
            if reader not in seen:
                seen.add(reader)
                heapq.heappush(queue, reader)
        if len(region) >= 2 and closed(region, tensors, ctx):
            name = matching_activation(result)
            if name is not None:
                absorb(dense, fused, ctx, name, region)
                return True
    return False


def evaluate(node, values: dict, ctx: Context):
    """The node's output on the sample points, or None if it is not an element-wise op
    on the region's tensors and scalar constants."""
    if node.domain not in ("", "ai.onnx") or len(node.output) != 1 or not node.output[0]:
        return None
    operands = []
    for name in node.input:
        if name in values:
            operands.append(values[name])
        elif name in ctx.constants and np.size(ctx.constants[name]) == 1 and np.asarray(ctx.constants[name]).dtype.kind in "iuf":
            operands.append(float(np.asarray(ctx.constants[name]).reshape(-1)[0]))
        else:
            return None
    if not any(isinstance(v, np.ndarray) for v in operands):
        return None
    with np.errstate(all="ignore"):
        if node.op_type in UNARY and len(operands) == 1:
            return np.asarray(UNARY[node.op_type](np.asarray(operands[0], dtype=np.float64)), dtype=np.float64)
        if node.op_type in BINARY and len(operands) == 2 and not (node.op_type == "Pow" and isinstance(operands[1], np.ndarray)):
            return np.asarray(BINARY[node.op_type](*operands), dtype=np.float64)
    return None


def closed(region: list, tensors: set, ctx: Context) -> bool:
    """Every tensor of the region but the last node's output is read only inside it
    and is not a graph output."""
    inside = {index for index, _ in region}
    last = region[-1][1].output[0]
    for tensor in tensors - {last}:
        if tensor in ctx.graph_outputs or any(reader not in inside for reader in ctx.consumers.get(tensor, [])):
            return False
    return True


def matching_activation(result: np.ndarray) -> str | None:
    if not np.all(np.isfinite(result)):
        return None
    for name in CANDIDATES:
        expected = activations.ACTIVATIONS[name](SAMPLES)
        if np.allclose(result, expected, rtol=2e-6, atol=2e-6):
            return name
    return None


def absorb(dense: Dense, fused: list, ctx: Context, name: str, region: list) -> None:
    """Make the nodes of `region` ([(index, node)], the last giving the output) the layer's
    activation `name`; the pattern matchers in mapper/fusion.py use it too."""
    dense.activation, dense.activation_params = name, {}
    dense.output = region[-1][1].output[0]
    dense.onnx_nodes += [node_label(node, index) for index, node in region]
    fused += [index for index, _ in region]
    ctx.claimed.update(index for index, _ in region)
