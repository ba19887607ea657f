"""Models as older tools and other exporters write them go through the file (compile →
.atp → plan → run --ideal) and match onnxruntime, or an independent reference where
onnxruntime cannot run the original: IR version 3 (initializers listed as inputs),
tensors the frontend makes up without a shape (a Gemm's transposed input, the product
before a bias that varies along the batch), an ai.onnx.ml Scaler in front of the layers
(skl2onnx's StandardScaler + MLP), opsets before 7 (upgraded, and the plan says so), and
products of two activations (attention's Q·Kᵀ) on the host.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.conftest import assert_user_error
from tests.mapper.onnx_builders import (
    compile_and_compare,
    compile_plan_run,
    gemm_model,
    init,
    layer_graph,
    make_model,
    random_feeds,
    save,
    vector,
    vi,
    weight,
)


def ir3_conv_mlp(seed: int = 0) -> onnx.ModelProto:
    """Conv → Relu → MaxPool → Flatten → Gemm → Relu → Dropout(mask unread) → Gemm → Softmax,
    at IR 3 / opset 9, every initializer also a graph input (as the onnx package's
    light models and Caffe2 exports are)."""
    rng = np.random.default_rng(seed)
    inits = [init("conv_W", (rng.standard_normal((4, 1, 3, 3)) / 3).astype(np.float32)), init("conv_b", vector(rng, (4,))),
             init("fc1_W", weight(rng, 36, 70)), init("fc1_b", vector(rng, (70,))), init("fc2_W", weight(rng, 70, 10)), init("fc2_b", vector(rng, (10,)))]
    nodes = [
        helper.make_node("Conv", ["x", "conv_W", "conv_b"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="conv_relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc1_W", "fc1_b"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="fc1_relu"),
        helper.make_node("Dropout", ["hr"], ["d", "mask"], name="drop", ratio=0.5),
        helper.make_node("Gemm", ["d", "fc2_W", "fc2_b"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax"),
    ]
    return make_model(nodes, [vi("x", ["N", 1, 8, 8])], [vi("y", ["N", 10])], inits, opset=9, ir_version=3)


def test_ir3_model_with_initializers_as_inputs(tmp_path):
    model = ir3_conv_mlp()
    assert model.ir_version == 3
    program = compile_and_compare(model, tmp_path, random_feeds(model, batch=3))
    names = [layer["name"] for layer in program.layers]
    assert "fc1" in names and "fc2" in names
    # The Dropout's mask is declared but nobody reads it: bypassed, fc1 → fc2 stay adjacent on the chip.
    assert not any("drop" in node for s in program.meta["host_segments"] for node in s["onnx_nodes"])


@pytest.mark.parametrize("case", ["transA", "transA_bias_per_example", "bias_per_example", "bias_input"])
def test_made_up_tensors_are_written_with_shapes(tmp_path, case):
    """The frontend's own tensors (Transpose for transA, the product before a host bias)
    reach the host segments typed and shaped: the written program loads and runs."""
    trans_a = int(case.startswith("transA"))
    bias = {"transA": "1d", "transA_bias_per_example": "full", "bias_per_example": "full", "bias_input": "input_full"}[case]
    model = gemm_model(k=80, n=70, trans_a=trans_a, bias=bias, batch=4)
    compile_and_compare(model, tmp_path, random_feeds(model, batch=4))


def scaler_mlp(seed: int = 5) -> onnx.ModelProto:
    """skl2onnx's StandardScaler + MLPRegressor shape: ai.onnx.ml Scaler (which ONNX shape
    inference does not see through), then MatMul + Add + Relu, MatMul + Add."""
    rng = np.random.default_rng(seed)
    k, h, n = 20, 30, 5
    nodes = [
        helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml", name="scaler",
                         offset=rng.normal(size=k).tolist(), scale=rng.uniform(0.5, 2, k).tolist()),
        helper.make_node("MatMul", ["s", "W1"], ["m1"], name="mm1"), helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "W2"], ["m2"], name="mm2"), helper.make_node("Add", ["m2", "b2"], ["y"], name="add2"),
    ]
    inits = [init("W1", weight(rng, k, h)), init("b1", vector(rng, (h,))), init("W2", weight(rng, h, n)), init("b2", vector(rng, (n,)))]
    graph = helper.make_graph(nodes, "scaler_mlp", [vi("x", ["N", k])], [vi("y", ["N", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_scaler_in_front_of_the_layers(tmp_path):
    model = scaler_mlp()
    graph = layer_graph(model, tmp_path)
    # Both MatMul + Add pairs are layers (bias fused, ReLU fused), only the Scaler on the host.
    assert [(d.onnx_nodes, d.activation) for d in graph.dense_layers] == [(["mm1", "add1", "relu1"], "relu"), (["mm2", "add2"], "identity")]
    assert [s.onnx_nodes for s in graph.host_segments] == [["scaler"]]
    compile_and_compare(model, tmp_path)


def test_layers_after_an_op_without_shape_inference(tmp_path):
    """skl2onnx's ColumnTransformer output: Scaler, then FeatureVectorizer (no ONNX
    shape inference: every tensor after it has no shape, its rank unknown to the
    frontend until it runs the model once). Both MatMul + 1-D bias Add pairs are layers."""
    model = scaler_mlp()
    graph = model.graph
    graph.node.insert(1, helper.make_node("FeatureVectorizer", ["s"], ["fv"], domain="ai.onnx.ml", name="vectorizer", inputdimensions=[20]))
    graph.node[2].input[0] = "fv"
    onnx.checker.check_model(model)
    assert not any(v.name == "m1" for v in onnx.shape_inference.infer_shapes(model).graph.value_info)
    structure = layer_graph(model, tmp_path)
    assert [(d.onnx_nodes, d.bias is not None) for d in structure.dense_layers] == [(["mm1", "add1", "relu1"], True), (["mm2", "add2"], True)]
    compile_and_compare(model, tmp_path)


@pytest.mark.parametrize("opset", [1, 6])
def test_opset_before_7_is_upgraded_and_the_plan_says_so(tmp_path, cli, opset):
    """onnxruntime has no kernel for Gemm before opset 7: compile upgrades the model with
    onnx's version converter; the ideal chip matches the product computed in numpy."""
    model = gemm_model(k=80, n=70, trans_a=1, bias="1d", opset=opset)
    path = save(model, tmp_path)
    feeds = random_feeds(model, batch=4)
    got = compile_plan_run(path, feeds)
    values = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_allclose(got["y"], feeds["x"].T @ values["B"] + values["C"], rtol=1e-4, atol=1e-5)
    plan = cli("plan", tmp_path / "model.atp", "--json")
    assert json.loads(plan.out)["opset_converted"] == {"from": opset, "to": 7}
    assert "upgraded from ONNX opset" in cli("plan", tmp_path / "model.atp").out


def test_opset_the_converter_cannot_upgrade_is_refused_at_compile(tmp_path, cli):
    """A node the version converter cannot upgrade (a Dropout in training mode, is_test =
    0, at opset 5): one line at compile naming the file and the opset, no program."""
    node = helper.make_node("Dropout", ["x"], ["y"], name="drop", is_test=0)
    model = make_model([node], [vi("x", [2, 3])], [vi("y", [2, 3])], opset=5)
    path = save(model, tmp_path)
    result = cli("compile", path, "-o", tmp_path / "out.atp", "--target", "tiny")
    assert_user_error(result, str(path), "opset 5", "version converter")
    assert not (tmp_path / "out.atp").exists()


def attention_scores_model(seed: int = 2) -> onnx.ModelProto:
    """Q = x·Wq, K = x·Wk, V = x·Wv (layers); Softmax(Q·Kᵀ / √d)·V: products of two
    activations, on the host."""
    rng = np.random.default_rng(seed)
    d = 16
    inits = [init("Wq", weight(rng, d, d)), init("Wk", weight(rng, d, d)), init("Wv", weight(rng, d, d)), init("scale", np.array(1 / np.sqrt(d), np.float32))]
    nodes = [
        helper.make_node("MatMul", ["x", "Wq"], ["q"], name="q_proj"),
        helper.make_node("MatMul", ["x", "Wk"], ["k"], name="k_proj"),
        helper.make_node("MatMul", ["x", "Wv"], ["v"], name="v_proj"),
        helper.make_node("Transpose", ["k"], ["kt"], name="k_t", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"], name="scores"),
        helper.make_node("Mul", ["qk", "scale"], ["qks"], name="scaled"),
        helper.make_node("Softmax", ["qks"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"], name="mix"),
    ]
    return make_model(nodes, [vi("x", ["B", 5, d])], [vi("y", ["B", 5, d])], inits, opset=13)


def test_activation_times_activation_matmul_is_a_host_op(tmp_path):
    model = attention_scores_model()
    graph = layer_graph(model, tmp_path)
    assert [d.name for d in graph.dense_layers] == ["q_proj", "k_proj", "v_proj"]
    host_nodes = [n for s in graph.host_segments for n in s.onnx_nodes]
    assert "scores" in host_nodes and "mix" in host_nodes
    compile_and_compare(model, tmp_path, random_feeds(model, batch=2))


def test_weight_fed_as_graph_input_stays_an_error(tmp_path, cli):
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="runtime_weight")
    model = make_model([node], [vi("x", ["N", 8]), vi("w", [8, 4])], [vi("y", ["N", 4])])
    result = cli("compile", save(model, tmp_path), "-o", tmp_path / "out.atp", "--target", "tiny")
    assert_user_error(result, "model.onnx", "runtime_weight", "'w'")


def test_does_not_fit_names_the_file(tmp_path, cli):
    model = gemm_model(k=2000, n=2000, bias=None)
    result = cli("compile", save(model, tmp_path, "big"), "-o", tmp_path / "out.atp", "--target", "tiny")
    assert_user_error(result, "does not fit")
    assert result.err.startswith(f"analogc: error: {tmp_path / 'big.onnx'}: ")
