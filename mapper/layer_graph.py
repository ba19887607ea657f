"""The layer graph: canonical analog `Dense` layers and `HostSegment`s on a networkx DiGraph.

Nothing downstream of the frontend sees ONNX attributes: a Gemm, a MatMul + Add, a
transposed weight all become `Dense(W[K, N], b, activation)` computing
`y = act(x · W + b)` over the last axis of `x`. A convolution is a `Dense` too, with
its weight unrolled to [C_in·kh·kw, C_out] and its geometry in `conv` (`ConvGeometry`):
the periphery forms one patch per output position, and each patch is one tile read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import networkx as nx
import numpy as np

from analogc.runtime.chip.im2col import output_shape, resolve_pads



@dataclass
class TensorInfo:
    """A graph input or output: name, numpy dtype name, shape (int or None per dim)."""

    name: str
    dtype: str
    shape: list

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape}


@dataclass(frozen=True)
class ConvGeometry:
    """How a convolution's input becomes patches (ONNX Conv attributes, per spatial axis).

    `pads` is ONNX's [begin..., end...] for NOTSET/VALID; with SAME_UPPER/SAME_LOWER the
    runtime works the pads out from the input it gets (`runtime.im2col.resolve_pads`).
    """

    kernel: tuple
    strides: tuple
    dilations: tuple
    pads: tuple
    auto_pad: str = "NOTSET"
    group: int = 1
    channels: int = 1  # C_in

    def to_json(self) -> dict:
        return {"kernel": list(self.kernel), "strides": list(self.strides), "dilations": list(self.dilations),
                "pads": list(self.pads), "auto_pad": self.auto_pad, "group": self.group, "channels": self.channels}


@dataclass
class Dense:
    """One analog layer `output = activation(input · weight + bias)` on the last axis
    (a `conv` layer: on every patch of its input)."""

    name: str
    input: str
    output: str
    weight: np.ndarray  # [K, N]
    bias: np.ndarray | None  # [N] or None
    activation: str = "identity"
    activation_params: dict = field(default_factory=dict)
    dtype: str = "float32"
    onnx_nodes: list = field(default_factory=list)
    input_shape: list | None = None  # as shape inference knew it, None for an unknown dim
    conv: ConvGeometry | None = None
    # A dense layer's dims between the example and its features (None: unknown), when the
    # frontend found the batch axis; else `read_dims` takes the input's axis 0 as the batch.
    per_example_dims: list | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    @property
    def rows_per_input(self) -> int:
        """Array rows per input feature (a conv's channel spans prod(kernel) rows)."""
        return 1 if self.conv is None else prod(self.conv.kernel)

    @property
    def kind(self) -> str:
        return "dense" if self.conv is None else "conv"

    @property
    def read_dims(self) -> list | None:
        """The dims whose product is the tile reads one example needs (None where shape
        inference did not know one; None for the whole list when a conv's input rank is
        unknown): the input's dims between the batch axis and the features (none for a
        vector, [T] for a sequence [B, T, K]); for a conv, its output positions."""
        shape = self.input_shape
        if self.conv is not None:
            return output_positions(shape[2:] if shape and len(shape) >= 3 else None, self.conv)
        if self.per_example_dims is not None:
            return list(self.per_example_dims)
        return [] if not shape or len(shape) < 3 else list(shape[1:-1])

    @property
    def reads_per_example(self) -> int:
        """The product of `read_dims`; an unknown dim counts as 1."""
        dims = self.read_dims
        return max(1, prod(d for d in dims if d is not None)) if dims else 1

    @property
    def reads_per_example_exact(self) -> bool:
        """False when a dim that sets the reads is unknown (symbolic): `reads_per_example`
        then counts it as 1, a lower bound, and the cost estimate is per unit of that dim."""
        dims = self.read_dims
        return dims is not None and None not in dims


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
    host_notes: list = field(default_factory=list)  # {node, op, reason} of convolutions left to the host
    opset_converted_from: int | None = None  # the model's opset, when the frontend upgraded it
    initializers: dict = field(default_factory=dict)  # the graph's initializers as read {name: array}
    batch: ModelBatch | None = None  # what the model's inputs say about the batch axis (frontend)

    @property
    def dense_layers(self) -> list[Dense]:
        return [s for s in self.steps if isinstance(s, Dense)]

    @property
    def host_segments(self) -> list[HostSegment]:
        return [s for s in self.steps if isinstance(s, HostSegment)]


def type_dims(type_proto) -> list | None:
    """A tensor type's shape as a list (None for an unknown dim), None without a shape."""
    if type_proto is None or not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in type_proto.tensor_type.shape.dim]


def symbolic_dims(type_proto) -> list | None:
    """As `type_dims`, but a symbolic dim keeps its name (a str), so the model's batch
    symbol can be told from a sequence's; None for an anonymous dim."""
    if type_proto is None or not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in type_proto.tensor_type.shape.dim]


@dataclass(frozen=True)
class ModelBatch:
    """What the model's inputs say about the batch axis: its symbol(s) (`names`), or the
    fixed size the inputs share on axis 0 (`size`). The batch symbol is one named like a
    batch, else what the inputs hold on axis 0, else the inputs' only symbol (a
    time-major [5, N, 16] input's N)."""

    names: frozenset = frozenset()
    size: int | None = None

    @classmethod
    def of(cls, input_dims: list) -> "ModelBatch":
        shaped = [dims for dims in input_dims if dims]
        symbols = {d for dims in shaped for d in dims if isinstance(d, str)}
        names = {s for s in symbols if "batch" in s.lower()} or {dims[0] for dims in shaped if isinstance(dims[0], str)}
        if not names and len(symbols) == 1:
            names = symbols
        sizes = {dims[0] for dims in shaped if isinstance(dims[0], int) and dims[0] > 0}
        return cls(frozenset(names), sizes.pop() if not names and not symbols and len(sizes) == 1 else None)


def example_dims(dims: list | None, batch: ModelBatch) -> list | None:
    """The dims of a dense layer's input [..., K] that one example reads through (None
    for an unknown one), or None when nothing tells which axis is the batch.
    The batch axis is the one holding the inputs' batch symbol (a time-major [T, N, K]
    reads T times); else the first anonymous or unnamed-by-the-inputs symbolic axis;
    else, with a fixed batch B, axis 0 if it is B, or the merged axes' product / B when
    B divides it (a [B·T, K] reshape reads T times)."""
    if not dims:
        return None
    lead = list(dims[:-1])
    if not lead:
        return []
    for axis, d in enumerate(lead):
        if isinstance(d, str) and d in batch.names:
            return [e if isinstance(e, int) else None for e in lead[:axis] + lead[axis + 1:]]
    for axis, d in enumerate(lead):
        if not isinstance(d, int):
            return [e if isinstance(e, int) else None for e in lead[:axis] + lead[axis + 1:]]
    if batch.size is None or lead[0] == batch.size:
        return lead[1:]
    total = prod(lead)
    return [total // batch.size] if total % batch.size == 0 else None


def output_positions(spatial: list | None, conv: ConvGeometry) -> list | None:
    """Output size per spatial axis (None where the input's size is unknown), ONNX rules."""
    if spatial is None or len(spatial) != len(conv.kernel):
        return None
    known = [1 if d is None else d for d in spatial]
    pads = resolve_pads(known, conv.kernel, conv.strides, conv.dilations, conv.pads, conv.auto_pad)
    out = output_shape(known, conv.kernel, conv.strides, conv.dilations, pads)
    return [None if d is None else o for d, o in zip(spatial, out)]


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
