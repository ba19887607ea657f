"""What the frontend's converters consult about the model being converted (constants,
value types, consumers, names in use): its own module so that the converters in fusion,
fusion_by_value and host_grouping can name it without importing the frontend, which
imports them."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import helper

from analogc.mapper.node_attrs import node_label


@dataclass
class Context:
    """Facts about the model that converters consult."""

    model: onnx.ModelProto
    origin: str
    constants: dict
    value_types: dict
    consumers: dict
    graph_outputs: set
    opset: int
    claimed: set = field(default_factory=set)
    names: set = field(default_factory=set)
    layer_names: set = field(default_factory=set)
    new_names: set = field(default_factory=set)
    notes: list = field(default_factory=list)  # {node, op, reason}: layer-like nodes left to the host
    fold_batchnorm: bool = False  # compile --fold-batchnorm: absorb inference BatchNormalization into the layer

    def layer_name(self, node: onnx.NodeProto, index: int) -> str:
        """The layer is named for its node (unique among layers and new tensors)."""
        base = node_label(node, index)
        if base not in self.layer_names and base not in self.new_names:
            self.layer_names.add(base)
            return base
        name = self.fresh(base)
        self.layer_names.add(name)
        return name

    def fresh(self, base: str) -> str:
        """A tensor or layer name not used anywhere in the model."""
        candidate, k = base, 0
        while candidate in self.names:
            k += 1
            candidate = f"{base}_{k}"
        self.names.add(candidate)
        self.new_names.add(candidate)
        return candidate

    def rank(self, name: str) -> int | None:
        known = self.value_types.get(name)
        if known is None or not known.tensor_type.HasField("shape"):
            return None
        return len(known.tensor_type.shape.dim)

    def elem_type(self, name: str) -> int:
        known = self.value_types.get(name)
        return known.tensor_type.elem_type if known is not None else 0

    def declare(self, name: str, elem_type: int, shape: list | None = None) -> None:
        self.value_types[name] = helper.make_tensor_type_proto(elem_type, shape=shape)

    def sole_consumer(self, tensor: str):
        """(index, node) of the only reader of `tensor` when fusing it away is safe."""
        readers = self.consumers.get(tensor, [])
        if len(readers) != 1 or tensor in self.graph_outputs or readers[0] in self.claimed:
            return None
        index = readers[0]
        node = self.model.graph.node[index]
        if node.domain not in ("", "ai.onnx") or tensor not in node.input:
            return None
        return index, node
