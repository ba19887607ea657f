"""Models mixing analog layers with host segments (onnxruntime subgraphs): they compile
for the tiny target and the ideal chip reproduces onnxruntime on the original model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from analogc.mapper.layer_graph import HostSegment
from tests.mapper.onnx_builders import (
    compile_and_compare,
    init,
    layer_graph,
    make_model,
    random_feeds,
    save,
    splits,
    vector,
    vi,
    weight,
)


def segment_ops(segment: HostSegment) -> list[str]:
    return [n.op_type for n in segment.model.graph.node]


def kinds(graph) -> list[str]:
    return ["host" if isinstance(s, HostSegment) else "dense" for s in graph.steps]


def dense_nodes(name, x, y, k, n, rng, activation=None):
    """MatMul + Add (+ activation) reading x, writing y; returns (nodes, initializers)."""
    inits = [init(f"{name}_W", weight(rng, k, n)), init(f"{name}_b", vector(rng, (n,)))]
    pre = f"{name}_pre" if activation else y
    nodes = [
        helper.make_node("MatMul", [x, f"{name}_W"], [f"{name}_xw"], name=f"{name}_mm"),
        helper.make_node("Add", [f"{name}_xw", f"{name}_b"], [pre], name=f"{name}_add"),
    ]
    if activation:
        nodes.append(helper.make_node(activation, [pre], [y], name=f"{name}_act"))
    return nodes, inits


def test_conv_relu_flatten_gemm(tmp_path):
    rng = np.random.default_rng(10)
    inits = [
        init("conv_W", (rng.standard_normal((4, 1, 3, 3)) / 3).astype(np.float32)),
        init("conv_b", vector(rng, (4,))),
        init("fc_W", weight(rng, 144, 80)),
        init("fc_b", vector(rng, (80,))),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_W", "conv_b"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="conv_relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_W", "fc_b"], ["y"], name="fc"),
    ]
    model = make_model(nodes, [vi("x", ["N", 1, 8, 8])], [vi("y", ["N", 80])], inits)
    graph = layer_graph(model, tmp_path)
    assert kinds(graph) == ["dense", "host", "dense"]  # the Conv (+ Relu) is an analog layer too
    assert segment_ops(graph.host_segments[0]) == ["Flatten"]
    conv, fc = graph.dense_layers
    assert (conv.kind, conv.shape, conv.activation, conv.reads_per_example) == ("conv", (9, 4), "relu", 36)
    assert fc.shape == (144, 80) and fc.input == "f"
    program = compile_and_compare(model, tmp_path)
    assert splits(program) == (True, True)


@pytest.mark.parametrize("placer", ["greedy", "cpsat"])
def test_dense_host_dense(tmp_path, placer):
    """Dense → Mul by a constant → Reshape → Dense → Reshape back (with either placer)."""
    rng = np.random.default_rng(11)
    first, inits1 = dense_nodes("fc1", "x", "h", 100, 140, rng, "Tanh")
    second, inits2 = dense_nodes("fc2", "h4", "h5", 70, 90, rng, "Sigmoid")
    inits = inits1 + inits2 + [
        init("scale", np.array(1.7, dtype=np.float32)),
        init("shape_in", np.array([-1, 70], dtype=np.int64)),
        init("shape_out", np.array([-1, 180], dtype=np.int64)),
    ]
    nodes = first + [
        helper.make_node("Mul", ["h", "scale"], ["h3"], name="scale"),
        helper.make_node("Reshape", ["h3", "shape_in"], ["h4"], name="split_rows"),
    ] + second + [helper.make_node("Reshape", ["h5", "shape_out"], ["y"], name="join_rows")]
    model = make_model(nodes, [vi("x", ["N", 100])], [vi("y", ["N", 180])], inits)
    graph = layer_graph(model, tmp_path)
    assert kinds(graph) == ["dense", "host", "dense", "host"]
    assert [(d.shape, d.activation) for d in graph.dense_layers] == [((100, 140), "tanh"), ((70, 90), "sigmoid")]
    assert [segment_ops(s) for s in graph.host_segments] == [["Mul", "Reshape"], ["Reshape"]]
    program = compile_and_compare(model, tmp_path, placer=placer)
    assert splits(program) == (True, True)


@pytest.mark.parametrize("join", ["Add", "Concat"])
def test_parallel_branches_joined(tmp_path, join):
    rng = np.random.default_rng(12)
    left, inits_l = dense_nodes("left", "x", "a", 100, 80, rng, "Relu")
    right, inits_r = dense_nodes("right", "x", "b", 100, 80, rng, "Tanh")
    joined_k = 160 if join == "Concat" else 80
    head, inits_h = dense_nodes("head", "j", "y", joined_k, 70, rng, "LogSoftmax")
    attrs = {"axis": 1} if join == "Concat" else {}
    nodes = left + right + [helper.make_node(join, ["a", "b"], ["j"], name="join", **attrs)] + head
    model = make_model(nodes, [vi("x", ["N", 100])], [vi("y", ["N", 70])], inits_l + inits_r + inits_h)
    graph = layer_graph(model, tmp_path)
    assert kinds(graph) == ["dense", "dense", "host", "dense"]
    assert [d.activation for d in graph.dense_layers] == ["relu", "tanh", "log_softmax"]
    assert segment_ops(graph.host_segments[0]) == [join]
    assert sorted(graph.host_segments[0].inputs) == ["a", "b"]
    compile_and_compare(model, tmp_path)


def test_two_inputs_two_outputs(tmp_path):
    rng = np.random.default_rng(13)
    d1, i1 = dense_nodes("d1", "x1", "h1", 90, 80, rng)
    d2, i2 = dense_nodes("d2", "x2", "h2", 75, 80, rng)
    d3, i3 = dense_nodes("d3", "h2", "y2", 80, 66, rng, "Softmax")
    nodes = d1 + d2 + [
        helper.make_node("Add", ["h1", "h2"], ["s"], name="sum"),
        helper.make_node("Relu", ["s"], ["y1"], name="sum_relu"),
    ] + d3
    model = make_model(
        nodes, [vi("x1", ["N", 90]), vi("x2", ["N", 75])], [vi("y1", ["N", 80]), vi("y2", ["N", 66])], i1 + i2 + i3
    )
    graph = layer_graph(model, tmp_path)
    assert [t.name for t in graph.inputs] == ["x1", "x2"] and [t.name for t in graph.outputs] == ["y1", "y2"]
    assert len(graph.dense_layers) == 3 and segment_ops(graph.host_segments[0]) == ["Add", "Relu"]
    compile_and_compare(model, tmp_path)


@pytest.mark.parametrize("source", ["constant_node", "initializer", "folded_transpose"])
def test_output_is_a_constant(tmp_path, source):
    rng = np.random.default_rng(14)
    layer, inits = dense_nodes("fc", "x", "y", 100, 90, rng)
    table = vector(rng, (3, 5))
    if source == "constant_node":
        nodes = [helper.make_node("Constant", [], ["c"], name="const", value=init("c_value", table))]
    elif source == "initializer":
        nodes, inits = [], inits + [init("c", table)]
    else:
        nodes = [helper.make_node("Transpose", ["c_t"], ["c"], name="t", perm=[1, 0])]
        inits = inits + [init("c_t", table.T.copy())]
    model = make_model(layer + nodes, [vi("x", ["N", 100])], [vi("y", ["N", 90]), vi("c", [3, 5])], inits)
    graph = layer_graph(model, tmp_path)
    assert set(graph.constant_outputs) == {"c"}
    np.testing.assert_array_equal(graph.constant_outputs["c"], table)
    assert [t.name for t in graph.inputs] == ["x"]
    compile_and_compare(model, tmp_path)


def test_only_output_is_a_constant(tmp_path):
    """No inputs, no layers: the output is a Constant node."""
    table = vector(np.random.default_rng(15), (4, 2))
    node = helper.make_node("Constant", [], ["c"], name="const", value=init("c_value", table))
    model = make_model([node], [], [vi("c", [4, 2])])
    graph = layer_graph(model, tmp_path)
    assert graph.steps == [] and graph.inputs == []
    compile_and_compare(model, tmp_path, feeds={})


@pytest.mark.parametrize("batch", ["N", 2])
def test_all_host_model(tmp_path, batch):
    """No analog layer at all (a depthwise Conv stays on the host): one host segment,
    still compiles and runs."""
    rng = np.random.default_rng(16)
    inits = [
        init("conv_W", (rng.standard_normal((6, 1, 3, 3)) / 4).astype(np.float32)),
        init("scale", np.array([0.5], dtype=np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_W"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=6),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Mul", ["p", "scale"], ["y"], name="scale"),
    ]
    model = make_model(nodes, [vi("x", [batch, 6, 6, 6])], [vi("y", [batch, 6, 3, 3])], inits)
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers == [] and len(graph.host_segments) == 1
    program = compile_and_compare(model, tmp_path, random_feeds(model, batch=2))
    assert program.blocks == []


@pytest.mark.parametrize(
    "shape, y_shape", [([90], ["N"]), ([1, 90, 70], [1, "N", 70]), ([1], ["N"])], ids=["1d_weight", "3d_weight", "1_element"]
)
def test_matmul_with_non_matrix_constant_stays_on_host(tmp_path, shape, y_shape):
    """A constant right operand that is not 2-D is not an analog layer."""
    rng = np.random.default_rng(17)
    w = vector(rng, shape)
    x_shape = ["N", 1] if shape == [1] else ["N", 90]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = make_model(nodes, [vi("x", x_shape)], [vi("y", y_shape)], [init("w", w)])
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers == [] and segment_ops(graph.host_segments[0]) == ["MatMul"]
    compile_and_compare(model, tmp_path)


def test_gemm_full_bias_goes_to_host_add(tmp_path):
    """C of shape [M, N] differs per row: the layer has no bias, a host Add adds beta·C."""
    rng = np.random.default_rng(18)
    inits = [init("B", weight(rng, 100, 90)), init("C", vector(rng, (4, 90)))]
    nodes = [helper.make_node("Gemm", ["x", "B", "C"], ["pre"], name="fc", beta=0.5),
             helper.make_node("Relu", ["pre"], ["y"], name="relu")]
    model = make_model(nodes, [vi("x", [4, 100])], [vi("y", [4, 90])], inits)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert dense.bias is None and dense.activation == "identity"
    assert kinds(graph) == ["dense", "host"] and segment_ops(graph.host_segments[0]) == ["Add", "Relu"]
    compile_and_compare(model, tmp_path, random_feeds(model, batch=4))


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
def test_constant_left_operand_stays_on_host(tmp_path, op):
    """W·x with the constant on the left is a valid model, not a runtime-weight error:
    it is not a layer over x's last axis, so onnxruntime runs it."""
    rng = np.random.default_rng(19)
    nodes = [
        helper.make_node(op, ["W", "x"], ["h"], name="left"),
        helper.make_node("Transpose", ["h"], ["ht"], name="t", perm=[1, 0]),
    ]
    layer, inits = dense_nodes("fc", "ht", "y", 80, 70, rng)
    model = make_model(nodes + layer, [vi("x", [100, "N"])], [vi("y", ["N", 70])], inits + [init("W", weight(rng, 80, 100))])
    graph = layer_graph(model, tmp_path)
    assert kinds(graph) == ["host", "dense"] and segment_ops(graph.host_segments[0]) == [op, "Transpose"]
    compile_and_compare(model, tmp_path)
