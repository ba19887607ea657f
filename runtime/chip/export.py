"""`analogc export`: the weights a chip holds, read back into an ONNX model.

The exported graph is the program's own dataflow written out in ONNX: host segments as
they were cut from the original model (their nodes and constants), each analog layer as
MatMul with the weights the chip holds, Add of its bias, and its activation (a conv
layer as a Conv holding the chip's weights and bias), under the
original tensor names; graph inputs and outputs, opset imports and producer fields come
from the original model. onnxruntime on it computes exactly what `run --ideal` computes
on the program, which is what tests check. For a program that was never trained, the
held weights are the compiled ones.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from analogc.errors import AnalogcError

ACTIVATION_OPS = {
    "identity": "Identity",
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "leaky_relu": "LeakyRelu",
    "elu": "Elu",
    "selu": "Selu",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "hard_sigmoid": "HardSigmoid",
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
}


def export_model(program) -> onnx.ModelProto:
    try:
        original = onnx.load_from_string(program.members["original.onnx"])
    except Exception as exc:  # a damaged member passed the checksum only if written so
        raise AnalogcError(f"the program's original model cannot be parsed ({type(exc).__name__})") from None
    opset = next((i.version for i in original.opset_import if i.domain in ("", "ai.onnx")), None)
    names = Names(original)
    nodes, initializers = [], {}
    layers = {layer["name"]: layer for layer in program.layers}
    segments = {s["name"]: onnx.load_from_string(program.members[s["member"]]) for s in program.meta.get("host_segments", [])}
    for segment in segments.values():
        names.add_graph(segment.graph)
    for name in program.meta["model"].get("constant_outputs", []):
        value = np.asarray(program.arrays[f"constant/{name}"])
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name=names.fresh(f"{name}_value"))))
    for instruction in program.meta["instructions"]["inference"]:
        if instruction["op"] == "host":
            segment = segments[instruction["segment"]]
            for tensor in segment.graph.initializer:
                initializers.setdefault(tensor.name, tensor)
            nodes.extend(segment.graph.node)
        elif instruction["op"] == "load":
            layer_nodes, layer_inits = dense_nodes(program, layers[instruction["layer"]], opset, names)
            nodes.extend(layer_nodes)
            initializers.update({t.name: t for t in layer_inits})
    graph = helper.make_graph(
        nodes,
        original.graph.name or program.meta["model"]["name"],
        [v for v in original.graph.input if v.name in model_inputs(program) and v.name not in initializers],
        list(original.graph.output),
        initializer=list(initializers.values()),
    )
    model = helper.make_model(graph, opset_imports=list(original.opset_import), producer_name="analogc export")
    model.ir_version = original.ir_version
    model.doc_string = f"weights read back from the chip of tile program {program.meta['model']['name']}"
    for prop in original.metadata_props:
        model.metadata_props.add(key=prop.key, value=prop.value)
    return model


def model_inputs(program) -> set:
    return {i["name"] for i in program.meta["model"]["inputs"]}


def dense_nodes(program, layer: dict, opset: int | None, names: "Names") -> tuple[list, list]:
    """MatMul (+ Add) (+ activation) from the layer's input to its output tensor."""
    name = layer["name"]
    dtype = np.dtype(layer.get("dtype", "float32"))
    weight = np.asarray(program.arrays[f"weight/{name}"]).astype(dtype)
    w_name = names.fresh(f"{name}.chip_weight")
    inits = [numpy_helper.from_array(weight, name=w_name)]
    op = layer["activation"]["op"]
    steps = [("MatMul", [w_name], {})]
    if layer.get("kind") == "conv":  # the weight folded back to ONNX's [C_out, C_in/group, *kernel]
        inits[0] = numpy_helper.from_array(conv_weight(weight, layer["conv"]), name=w_name)
        steps = [("Conv", [w_name], conv_attributes(layer["conv"]))]
    if layer["bias"] != "none":
        b_name = names.fresh(f"{name}.chip_bias")
        inits.append(numpy_helper.from_array(np.asarray(program.arrays[f"bias/{name}"]).astype(dtype), name=b_name))
        if steps[0][0] == "Conv":
            steps[0][1].append(b_name)  # Conv adds its own bias, one value per output channel
        else:
            steps.append(("Add", [b_name], {}))
    nodes, current = [], layer["input"]
    for i, (kind, extra, attrs) in enumerate(steps):
        last = i == len(steps) - 1 and op == "identity"
        out = layer["output"] if last else names.fresh(f"{name}.{kind.lower()}")
        nodes.append(helper.make_node(kind, [current, *extra], [out], name=names.fresh(f"{name}.{kind}"), **attrs))
        current = out
    if op != "identity":
        more_nodes, more_inits = activation_nodes(layer, current, opset, names)
        nodes += more_nodes
        inits += more_inits
    return nodes, inits


def conv_weight(matrix: np.ndarray, conv: dict) -> np.ndarray:
    """The array matrix [C_in·prod(kernel), C_out] as ONNX's [C_out, C_in/group, *kernel]:
    each group's diagonal block (the zeros between them are not part of the convolution)."""
    group, kernel = conv["group"], conv["kernel"]
    size = int(np.prod(kernel))
    c_in_group = conv["channels"] // group
    out_group = matrix.shape[1] // group
    blocks = [
        matrix[g * c_in_group * size : (g + 1) * c_in_group * size, g * out_group : (g + 1) * out_group].T
        for g in range(group)
    ]
    return np.ascontiguousarray(np.concatenate(blocks).reshape(matrix.shape[1], c_in_group, *kernel))


def conv_attributes(conv: dict) -> dict:
    """The Conv node's attributes; SAME padding stays SAME (any input size), as compiled."""
    attrs = {"kernel_shape": conv["kernel"], "strides": conv["strides"], "dilations": conv["dilations"], "group": conv["group"]}
    if conv["auto_pad"] in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        attrs["auto_pad"] = conv["auto_pad"]
    else:
        attrs["pads"] = conv["pads"]
    return attrs


# Activations with no ONNX op of their own (or none before opset 20), written as
# exporters write them: (op, inputs) steps where "x" is the activation's input, "prev"
# the step before, and a number a constant of the layer's dtype.
DECOMPOSED = {
    "silu": [("Sigmoid", ["x"]), ("Mul", ["x", "prev"])],
    "gelu": [("Div", ["x", np.sqrt(2.0)]), ("Erf", ["prev"]), ("Add", ["prev", 1.0]), ("Mul", ["x", "prev"]), ("Mul", ["prev", 0.5])],
    # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), as torch's TorchScript exporter writes it
    "gelu_tanh": [("Mul", ["x", "x"]), ("Mul", ["x", "prev"]), ("Mul", ["prev", 0.044715]), ("Add", ["x", "prev"]),
                  ("Mul", ["prev", float(np.sqrt(2 / np.pi))]), ("Tanh", ["prev"]), ("Add", ["prev", 1.0]), ("Mul", ["x", "prev"]),
                  ("Mul", ["prev", 0.5])],
}


def activation_nodes(layer: dict, x: str, opset: int | None, names: "Names") -> tuple[list, list]:
    """The layer's activation from tensor `x` to its output tensor."""
    name, op, y = layer["name"], layer["activation"]["op"], layer["output"]
    # The parameters are kept under their ONNX attribute names (alpha, beta, gamma).
    attrs = {k: float(v) for k, v in layer["activation"].items() if k != "op"}
    if op in ("softmax", "log_softmax"):
        attrs["axis"] = -1 if (opset or 13) >= 11 else 1
    if op in ("gelu", "gelu_tanh") and (opset or 0) >= 20:
        return [helper.make_node("Gelu", [x], [y], name=names.fresh(f"{name}.gelu"), approximate="tanh" if op == "gelu_tanh" else "none")], []
    if op not in DECOMPOSED:
        return [helper.make_node(ACTIVATION_OPS[op], [x], [y], name=names.fresh(f"{name}.{op}"), **attrs)], []
    nodes, inits, previous = [], [], x
    dtype = np.dtype(layer.get("dtype", "float32"))
    steps = DECOMPOSED[op]
    for i, (kind, inputs) in enumerate(steps):
        resolved = []
        for item in inputs:
            if isinstance(item, float):
                const = names.fresh(f"{name}.{op}_const")
                inits.append(numpy_helper.from_array(np.asarray(item, dtype=dtype), name=const))
                resolved.append(const)
            else:
                resolved.append(x if item == "x" else previous)
        out = y if i == len(steps) - 1 else names.fresh(f"{name}.{op}_{kind.lower()}")
        nodes.append(helper.make_node(kind, resolved, [out], name=names.fresh(f"{name}.{op}_{kind}")))
        previous = out
    return nodes, inits


class Names:
    """Fresh tensor and node names that clash with nothing in the original model."""

    def __init__(self, model: onnx.ModelProto):
        self.used = set()
        self.add_graph(model.graph)

    def add_graph(self, graph) -> None:
        self.used |= {t.name for t in graph.initializer} | {v.name for v in graph.input} | {v.name for v in graph.output}
        for node in graph.node:
            self.used.update(node.input)
            self.used.update(node.output)
            self.used.add(node.name)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


def export_bytes(program) -> bytes:
    return export_model(program).SerializeToString()
