"""The layer graph: canonical analog `Dense` layers and `HostSegment`s on a networkx DiGraph.

Nothing downstream of the frontend sees ONNX attributes: a Gemm, a MatMul + Add, a
transposed weight all become `Dense(W[K, N], b, activation)` computing
`y = act(x · W + b)` over the last axis of `x`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh", "leaky_relu", "silu", "gelu", "gelu_tanh", "elu", "selu", "softplus", "softsign", "hard_sigmoid", "softmax", "log_softmax")


@dataclass
class TensorInfo:
    """A graph input or output: name, numpy dtype name, shape (int or None per dim)."""

    name: str
    dtype: str
    shape: list

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape}


@dataclass
class Dense:
    """One analog layer `output = activation(input · weight + bias)` on the last axis."""

    name: str
    input: str
    output: str
    weight: np.ndarray  # [K, N]
    bias: np.ndarray | None  # [N] or None
    activation: str = "identity"
    activation_params: dict = field(default_factory=dict)
    dtype: str = "float32"
    onnx_nodes: list = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)


@dataclass
class HostSegment:
    """A subgraph run digitally by onnxruntime; `model` is a standalone ONNX ModelProto."""

    name: str
    inputs: list
    outputs: list
    model: object  # onnx.ModelProto
    onnx_nodes: list = field(default_factory=list)


@dataclass
class LayerGraph:
    """Layers in execution order plus the DiGraph of tensors flowing between them."""

    inputs: list  # [TensorInfo] runtime inputs of the model
    outputs: list  # [TensorInfo]
    steps: list  # [Dense | HostSegment] in a valid execution order
    constant_outputs: dict = field(default_factory=dict)  # graph outputs that are constants
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)

    @property
    def dense_layers(self) -> list[Dense]:
        return [s for s in self.steps if isinstance(s, Dense)]

    @property
    def host_segments(self) -> list[HostSegment]:
        return [s for s in self.steps if isinstance(s, HostSegment)]


def build_digraph(steps: list, inputs: list) -> nx.DiGraph:
    """Edges producer → consumer labelled with the tensors they pass."""
    graph = nx.DiGraph()
    source = ("graph", "inputs")  # a tuple never equals a layer or segment name
    producer = {t.name: source for t in inputs}
    graph.add_node(source, kind="input")
    for step in steps:
        kind = "dense" if isinstance(step, Dense) else "host"
        graph.add_node(step.name, kind=kind)
        consumed = [step.input] if kind == "dense" else list(step.inputs)
        for tensor in consumed:
            source = producer.get(tensor)
            if source is None:
                continue
            if graph.has_edge(source, step.name):
                graph.edges[source, step.name]["tensors"].append(tensor)
            else:
                graph.add_edge(source, step.name, tensors=[tensor])
        for tensor in [step.output] if kind == "dense" else step.outputs:
            producer[tensor] = step.name
    return graph
