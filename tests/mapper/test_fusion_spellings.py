"""GELU as other exporters spell it is fused into the layer before it and matches
onnxruntime through the file: the dynamo exporter's (1 + erf(x/√2))·0.5 then ·x, and
tanh-GELU before opset 20 (x³ as Mul(x, Mul(x, x)) or Pow(x, 3)). A formula that
differs (another constant) stays on the host. Training through these activations:
tests/test_train.py::test_other_hidden_activations_train_and_export.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.mapper.onnx_builders import compile_and_compare, init, layer_graph, make_model, vector, vi, weight

KAPPA, BETA = 0.044715, float(np.sqrt(2 / np.pi))


def gelu_nodes(form: str, z: str, out: str, kappa: float = KAPPA) -> tuple[list, dict]:
    """(nodes, scalar constants) computing GELU of `z` into `out`, as `form` writes it."""
    consts = {"sqrt2": np.sqrt(2), "one": 1.0, "half": 0.5, "kappa": kappa, "beta": BETA, "three": 3.0}
    mk = helper.make_node
    if form == "dynamo":  # onnxscript's aten_gelu: Div, Erf, Add, Mul by 0.5, then Mul by x
        nodes = [mk("Div", [z, "sqrt2"], ["d"]), mk("Erf", ["d"], ["e"]), mk("Add", ["e", "one"], ["a"]),
                 mk("Mul", ["half", "a"], ["h"]), mk("Mul", [z, "h"], [out])]
    elif form == "half_first":  # 0.5·x first, then times (1 + erf)
        nodes = [mk("Mul", [z, "half"], ["h"]), mk("Div", [z, "sqrt2"], ["d"]), mk("Erf", ["d"], ["e"]),
                 mk("Add", ["one", "e"], ["a"]), mk("Mul", ["h", "a"], [out])]
    elif form in ("tanh_mul", "tanh_pow"):  # torch.onnx (TorchScript) before opset 20, and Pow(x, 3)
        cube = ([mk("Mul", [z, z], ["z2"]), mk("Mul", [z, "z2"], ["z3"])] if form == "tanh_mul"
                else [mk("Pow", [z, "three"], ["z3"])])
        nodes = cube + [mk("Mul", ["kappa", "z3"], ["kz3"]), mk("Add", [z, "kz3"], ["inner"]), mk("Mul", ["beta", "inner"], ["scaled"]),
                        mk("Tanh", ["scaled"], ["t"]), mk("Add", ["one", "t"], ["a"]), mk("Mul", [z, "a"], ["m"]), mk("Mul", ["half", "m"], [out])]
    else:
        raise ValueError(form)
    return nodes, consts


def layer_gelu_layer(form: str, kappa: float = KAPPA, lead=("N",)) -> onnx.ModelProto:
    """x → MatMul + Add → GELU (as `form`) → MatMul → y."""
    rng = np.random.default_rng(31)
    act, consts = gelu_nodes(form, "z", "g", kappa)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["xw"]), helper.make_node("Add", ["xw", "b1"], ["z"]), *act,
             helper.make_node("MatMul", ["g", "W2"], ["y"])]
    used = {i for n in act for i in n.input}
    inits = [init("W1", weight(rng, 90, 70)), init("b1", vector(rng, (70,))), init("W2", weight(rng, 70, 10))]
    inits += [init(name, np.array(value, np.float32)) for name, value in consts.items() if name in used]
    return make_model(nodes, [vi("x", [*lead, 90])], [vi("y", [*lead, 10])], inits, opset=13)


@pytest.mark.parametrize("form, name", [("dynamo", "gelu"), ("half_first", "gelu"), ("tanh_mul", "gelu_tanh"), ("tanh_pow", "gelu_tanh")])
def test_gelu_spelling_is_fused(tmp_path, form, name):
    model = layer_gelu_layer(form)
    graph = layer_graph(model, tmp_path)
    assert graph.host_segments == []
    assert [d.activation for d in graph.dense_layers] == [name, "identity"]
    compile_and_compare(model, tmp_path)


def test_gelu_spelling_on_a_sequence_is_fused(tmp_path):
    model = layer_gelu_layer("dynamo", lead=("B", 7))
    assert [d.activation for d in layer_graph(model, tmp_path).dense_layers] == ["gelu", "identity"]
    compile_and_compare(model, tmp_path)


def test_tanh_gelu_lookalike_stays_on_host(tmp_path):
    model = layer_gelu_layer("tanh_mul", kappa=0.05)
    graph = layer_graph(model, tmp_path)
    assert [d.activation for d in graph.dense_layers] == ["identity", "identity"]
    assert "Tanh" in [n.op_type for s in graph.host_segments for n in s.model.graph.node]
    compile_and_compare(model, tmp_path)


def test_gelu_whose_inner_value_is_read_elsewhere_stays_on_host(tmp_path):
    """The Erf's output is also a graph output: fusing would lose it."""
    model = layer_gelu_layer("dynamo")
    model.graph.output.append(vi("e", ["N", 70]))
    graph = layer_graph(model, tmp_path)
    assert [d.activation for d in graph.dense_layers] == ["identity", "identity"]
    compile_and_compare(model, tmp_path)
