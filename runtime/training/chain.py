"""Which layers of a tile program train on the chip, and where their weights start.

Training trains the *trainable chain*: the longest run of analog layers at the end of
the instruction stream in which each layer reads the previous one's output (trailing
host segments, such as a label ArgMax or a ZipMap, run after it as in inference). The
loss is softmax cross-entropy on the last layer's pre-activation, so that layer's
activation must be softmax, log-softmax or identity (logits). Everything before the
chain (host segments, analog layers feeding them, and convolution layers, which are
analog but not trained in situ) is frozen: the chip computes its outputs once per
example, with its nonidealities, as the paper did for CIFAR features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime.format.replicas import refuse_training

LOGIT_ACTIVATIONS = ("softmax", "log_softmax", "identity")
HIDDEN_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "elu", "selu", "softplus", "softsign", "hard_sigmoid")


@dataclass(frozen=True)
class Chain:
    layers: list  # layer entries of the trainable chain, in order
    frozen_layers: list  # names of analog layers that do not train
    frozen_segments: list  # names of host segments (never trained)


def find_chain(program) -> Chain:
    refuse_training(program, "tile program")
    steps = []  # ("layer", name) / ("host", name) in instruction order
    for instruction in program.meta["instructions"]["inference"]:
        if instruction["op"] == "load":
            steps.append(("layer", instruction["layer"]))
        elif instruction["op"] == "host":
            steps.append(("host", instruction["segment"]))
    while steps and steps[-1][0] == "host":
        check_trailing_segment(program, steps.pop()[1])
    chain: list[dict] = []
    for kind, name in reversed(steps):
        if kind != "layer":
            break
        entry = program.layer(name)
        if entry.get("kind") == "conv" or (chain and chain[0]["input"] != entry["output"]):
            break  # (a convolution's weights do not train in situ: it is part of the frozen prefix)
        chain.insert(0, entry)
    if not chain:
        raise AnalogcError("this program has no analog layer at its end to train (every analog layer feeds host operations)")
    last = chain[-1]
    if last["activation"]["op"] not in LOGIT_ACTIVATIONS:
        raise AnalogcError(
            f"layer {last['name']!r} ends the network with {last['activation']['op']}; training uses softmax "
            f"cross-entropy and needs logits, softmax or log-softmax there"
        )
    for entry in chain[:-1]:
        if entry["activation"]["op"] not in HIDDEN_ACTIVATIONS:
            raise AnalogcError(f"layer {entry['name']!r}: activation {entry['activation']['op']} inside the network cannot be trained")
    names = {e["name"] for e in chain}
    frozen_layers = [l["name"] for l in program.layers if l["name"] not in names]
    frozen_segments = [s["name"] for s in program.meta.get("host_segments", [])]
    return Chain(chain, frozen_layers, frozen_segments)


# Ops that may follow the trained logits: they keep each example's predicted class (the
# loss is on the logits, so anything that could change the decision would go untrained).
LABEL_OPS = {
    "ArgMax", "ZipMap", "Softmax", "LogSoftmax", "Identity", "Cast", "CastLike", "Reshape", "Flatten",
    "Squeeze", "Unsqueeze", "Shape", "Gather", "Constant", "ReduceMax", "TopK", "Max", "Concat", "Slice",
    "Equal", "Greater", "Less", "Not", "Where", "ArrayFeatureExtractor", "LabelEncoder", "Normalizer",
}


def check_trailing_segment(program, name: str) -> None:
    """A host segment after the last analog layer must only turn logits into labels or
    scores; a `Sin` or another layer there would change the decision the loss never sees."""
    import onnx  # heavy: onnx (0.5 s), only for programs with host segments

    segment = next(s for s in program.meta.get("host_segments", []) if s["name"] == name)
    graph = onnx.load_from_string(program.members[segment["member"]]).graph
    other = sorted({node.op_type for node in graph.node if not (is_inference_dropout(node) or is_labelling(node))} - LABEL_OPS)
    if other:
        raise AnalogcError(
            f"host segment {name!r} after the last analog layer computes {', '.join(other[:4])}; training puts the "
            f"loss on that layer's logits, so only label ops ({', '.join(sorted(LABEL_OPS)[:6])}, ...) may follow it"
        )


def glorot_limit(rows: int, cols: int) -> float:
    return float(np.sqrt(6.0 / (rows + cols)))


def initial_weights(program, entry: dict, init: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """(array matrix K(+1) x N, digital bias or None) to start from, float32.

    `compiled`: the program's weights; `random`: Glorot-uniform weights, zero biases.
    """
    k, n = entry["shape"]
    analog_bias = entry["bias"] == "analog"
    if init == "random":
        a = glorot_limit(k, n)
        weight = rng.uniform(-a, a, size=(k, n)).astype(np.float32)
        bias = np.zeros(n, dtype=np.float32) if entry["bias"] != "none" else None
    else:
        weight = np.array(program.arrays[f"weight/{entry['name']}"], dtype=np.float32)
        bias = np.array(program.arrays[f"bias/{entry['name']}"], dtype=np.float32) if entry["bias"] != "none" else None
    if analog_bias:
        return np.vstack([weight, bias[None, :]]), None
    return weight, bias


def training_w_max(entry: dict, matrix: np.ndarray, spec) -> float:
    """The weight range mapped to the full conductance range while training: room to
    grow (weight_range × Glorot's limit), and never less than the starting weights."""
    k, n = entry["shape"]
    start = float(np.max(np.abs(matrix))) if matrix.size else 0.0
    return max(spec.training.weight_range * glorot_limit(k, n), start, 1e-12)


def is_inference_dropout(node) -> bool:
    """A Dropout without a training-mode input passes its input through at inference (the
    compiler bypasses such nodes between layers; one that makes a graph output stays)."""
    return node.op_type == "Dropout" and (len(node.input) < 3 or not node.input[2]) and (len(node.output) < 2 or not node.output[1])


def is_labelling(node) -> bool:
    """A LinearClassifier with identity coefficients and zero intercepts, which the
    compiler leaves after a scikit-learn classifier's layer: it only turns the layer's
    scores into labels and probabilities (its post transform keeps their order)."""
    if node.op_type != "LinearClassifier" or node.domain != "ai.onnx.ml":
        return False
    import onnx  # heavy: onnx (0.5 s), only for programs with host segments

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    coefficients, intercepts = np.asarray(attrs.get("coefficients", [])), np.asarray(attrs.get("intercepts", []))
    rows = intercepts.size
    return rows > 1 and coefficients.size == rows * rows and np.array_equal(coefficients.reshape(rows, rows), np.eye(rows)) and not intercepts.any()
