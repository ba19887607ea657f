"""Every FC pattern the frontend recognises compiles for the tiny target and, on the ideal
chip, reproduces onnxruntime on the original model (float32: rtol 1e-4, atol 1e-5).

Shapes use K, N in 70..150 so that every layer is split by rows (partial sums) and by
columns (concatenation) on 64×64 tiles; `splits` checks that where it matters. Seeds
are fixed.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from analogc.errors import AnalogcError
from analogc.mapper import compile_model
from analogc.mapper.frontend import load_layer_graph
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.export import export_model
from analogc.runtime.format.spec import load_target
from analogc.runtime.training.chain import find_chain
from tests.conftest import assert_user_error
from tests.mapper.onnx_builders import (
    DOUBLE,
    FLOAT16,
    TOLERANCE,
    compile_and_compare,
    gemm_model,
    init,
    layer_graph,
    make_model,
    matmul_model,
    mlp_model,
    onnxruntime_can_run,
    onnxruntime_outputs,
    random_feeds,
    save,
    splits,
    vector,
    vi,
    weight,
)


def host_ops(graph) -> list[str]:
    return [op for segment in graph.host_segments for op in (n.op_type for n in segment.model.graph.node)]


# ---------------------------------------------------------------- Gemm

GEMM_BIASES = [None, "1d", "row", "scalar", "scalar1", "one_one", "full", "col", "input", "input_full"]


@pytest.mark.parametrize("bias", GEMM_BIASES, ids=lambda b: f"C={b}")
@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.7, -1.3)], ids=["alpha1_beta1", "alpha0.7_beta-1.3"])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)], ids=["NN", "NT", "TN", "TT"])
def test_gemm(tmp_path, trans_a, trans_b, alpha, beta, bias):
    batch = 4 if bias in ("full", "col", "input_full") else "N"
    model = gemm_model(k=100, n=90, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, bias=bias, batch=batch)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert dense.shape == (100, 90)
    on_array = bias in ("1d", "row", "scalar", "scalar1", "one_one")
    assert (dense.bias is not None) == on_array
    if on_array:
        c = onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "C"))
        np.testing.assert_allclose(dense.bias, np.broadcast_to(beta * c.reshape(-1), (90,)), rtol=1e-6)
    else:
        # A bias that varies along the batch or is a runtime input is added on the host.
        assert ("Add" in host_ops(graph)) == (bias is not None)
    assert ("Transpose" in host_ops(graph)) == bool(trans_a)
    program = compile_and_compare(model, tmp_path, random_feeds(model, batch=4))
    assert splits(program) == (True, True)


# ---------------------------------------------------------------- MatMul


@pytest.mark.parametrize(
    "bias, bias_first",
    [(None, False), ("1d", False), ("1d", True), ("row", False), ("row", True)],
    ids=["no_bias", "bias_N_right", "bias_N_left", "bias_1N_right", "bias_1N_left"],
)
def test_matmul_bias_fused(tmp_path, bias, bias_first):
    model = matmul_model(k=120, n=80, bias=bias, bias_first=bias_first)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert graph.host_segments == []
    assert (dense.bias is not None) == (bias is not None)
    assert dense.output == "y"
    program = compile_and_compare(model, tmp_path)
    assert splits(program) == (True, True)


@pytest.mark.parametrize("bias", [None, "1d", "full_rank"], ids=["no_bias", "bias_N", "bias_11N"])
def test_matmul_3d_input_applies_on_last_axis(tmp_path, bias):
    model = matmul_model(k=90, n=110, bias=bias, lead=("B", 5))
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert dense.shape == (90, 110) and graph.host_segments == []
    compile_and_compare(model, tmp_path, random_feeds(model, batch=2))


def test_matmul_1d_input(tmp_path):
    model = matmul_model(k=75, n=100, bias="1d", lead=())
    assert len(layer_graph(model, tmp_path).dense_layers) == 1
    compile_and_compare(model, tmp_path)


def test_matmul_bias_varying_along_rows_stays_on_host(tmp_path):
    """An Add of a [T, N] constant is not a per-column bias: it must stay a host Add."""
    rng = np.random.default_rng(3)
    inits = [init("W", weight(rng, 80, 70)), init("b", vector(rng, (4, 70)))]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["y"], name="add"),
    ]
    model = make_model(nodes, [vi("x", ["B", 4, 80])], [vi("y", ["B", 4, 70])], inits)
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers[0].bias is None and host_ops(graph) == ["Add"]
    compile_and_compare(model, tmp_path)


def test_matmul_bias_widening_the_output_stays_on_host(tmp_path):
    """[B, 1] + [70] broadcasts to [B, 70]: not a per-column bias of a one-column layer."""
    rng = np.random.default_rng(8)
    inits = [init("W", weight(rng, 100, 1)), init("b", vector(rng, (70,)))]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["y"], name="add"),
    ]
    model = make_model(nodes, [vi("x", ["N", 100])], [vi("y", ["N", 70])], inits)
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers[0].bias is None and host_ops(graph) == ["Add"]
    compile_and_compare(model, tmp_path)


def test_matmul_output_with_second_consumer_is_not_fused(tmp_path):
    """xw feeds the bias Add and a Relu: the Add cannot be folded into the layer."""
    rng = np.random.default_rng(4)
    inits = [init("W", weight(rng, 100, 90)), init("b", vector(rng, (90,)))]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["y1"], name="add"),
        helper.make_node("Relu", ["xw"], ["y2"], name="relu"),
    ]
    model = make_model(nodes, [vi("x", ["N", 100])], [vi("y1", ["N", 90]), vi("y2", ["N", 90])], inits)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert dense.bias is None and dense.activation == "identity" and dense.output == "xw"
    assert sorted(host_ops(graph)) == ["Add", "Relu"]
    compile_and_compare(model, tmp_path)


@pytest.mark.parametrize("exposed", ["xw", "pre"], ids=["matmul_output", "pre_activation"])
def test_matmul_intermediate_graph_output_is_kept(tmp_path, exposed):
    """A graph output in the middle of MatMul → Add → Relu ends the fusion there."""
    rng = np.random.default_rng(5)
    inits = [init("W", weight(rng, 100, 90)), init("b", vector(rng, (90,)))]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["pre"], name="add"),
        helper.make_node("Relu", ["pre"], ["y"], name="relu"),
    ]
    model = make_model(nodes, [vi("x", ["N", 100])], [vi("y", ["N", 90]), vi(exposed, ["N", 90])], inits)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert dense.activation == "identity"
    assert (dense.bias is not None) == (exposed == "pre")
    assert "Relu" in host_ops(graph)
    compile_and_compare(model, tmp_path)


# ---------------------------------------------------------------- where constants come from


def constant_source_model(source: str, opset: int) -> onnx.ModelProto:
    rng = np.random.default_rng(6)
    k, n = 110, 75
    w, b = weight(rng, k, n), vector(rng, (n,))
    nodes, inits = [], [init("b", b)]
    if source == "initializer":
        inits.append(init("W", w))
    elif source == "constant_node":
        nodes.append(helper.make_node("Constant", [], ["W"], name="const_w", value=init("w_value", w)))
        nodes.append(helper.make_node("Constant", [], ["b2"], name="const_b", value=init("b_value", b)))
        inits = []
    elif source == "transpose":
        inits.append(init("Wt", w.T.copy()))
        nodes.append(helper.make_node("Transpose", ["Wt"], ["W"], name="t", perm=[1, 0]))
    elif source == "cast_reshape":
        inits += [init("Wflat", w.astype(np.float64).reshape(-1)), init("shape", np.array([k, n], dtype=np.int64))]
        nodes.append(helper.make_node("Reshape", ["Wflat", "shape"], ["W64"], name="reshape"))
        nodes.append(helper.make_node("Cast", ["W64"], ["W"], name="cast", to=onnx.TensorProto.FLOAT))
    bias = "b2" if source == "constant_node" else "b"
    nodes += [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", bias], ["y"], name="add"),
    ]
    return make_model(nodes, [vi("x", ["N", k])], [vi("y", ["N", n])], inits, opset=opset)


@pytest.mark.parametrize("opset", [7, 13])
@pytest.mark.parametrize("source", ["initializer", "constant_node", "transpose", "cast_reshape"])
def test_weight_constant_sources(tmp_path, source, opset):
    model = constant_source_model(source, opset)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert graph.host_segments == [] and dense.bias is not None
    assert [t.name for t in graph.inputs] == ["x"]
    compile_and_compare(model, tmp_path)


@pytest.mark.parametrize("opset", [7, 8])
def test_ir3_initializers_listed_as_inputs(tmp_path, opset):
    """IR version 3: every initializer is also a graph input; they are still constants.
    The Mul by a constant between the layers makes a host segment that needs one too."""
    rng = np.random.default_rng(7)
    inits = [
        init("W1", weight(rng, 100, 80)),
        init("b1", vector(rng, (80,))),
        init("scale", np.array([1.5], dtype=np.float32)),
        init("W2", weight(rng, 80, 70)),
        init("b2", vector(rng, (70,))),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="fc1_relu"),
        helper.make_node("Mul", ["h2", "scale"], ["h3"], name="scale_mul"),
        helper.make_node("Gemm", ["h3", "W2", "b2"], ["y"], name="fc2"),
    ]
    model = make_model(nodes, [vi("x", ["N", 100])], [vi("y", ["N", 70])], inits, opset=opset, ir_version=3,
                       inputs_include_initializers=True)
    graph = layer_graph(model, tmp_path)
    assert [t.name for t in graph.inputs] == ["x"]
    assert [d.shape for d in graph.dense_layers] == [(100, 80), (80, 70)]
    assert graph.dense_layers[0].activation == "relu"
    assert host_ops(graph) == ["Mul"]
    compile_and_compare(model, tmp_path)


# ---------------------------------------------------------------- activations

ACTIVATIONS = [
    ("Relu", {}, "relu", {}),
    ("Sigmoid", {}, "sigmoid", {}),
    ("Tanh", {}, "tanh", {}),
    ("LeakyRelu", {"alpha": 0.2}, "leaky_relu", {"alpha": pytest.approx(0.2)}),
    ("Elu", {"alpha": 0.7}, "elu", {"alpha": pytest.approx(0.7)}),
    ("Selu", {}, "selu", {"alpha": pytest.approx(1.6732632), "gamma": pytest.approx(1.0507010)}),
    ("Softplus", {}, "softplus", {}),
    ("Softsign", {}, "softsign", {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, "hard_sigmoid", {"alpha": pytest.approx(0.3), "beta": pytest.approx(0.4)}),
    ("Softmax", {}, "softmax", {}),
    ("LogSoftmax", {}, "log_softmax", {}),
    ("Identity", {}, "identity", {}),
]


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("op, attrs, name, params", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_fused_2d(tmp_path, op, attrs, name, params, opset):
    model = matmul_model(k=100, n=90, bias="1d", activation=op, activation_attrs=attrs, opset=opset)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert graph.host_segments == []
    assert (dense.activation, dense.activation_params, dense.output) == (name, params, "y")
    compile_and_compare(model, tmp_path)


@pytest.mark.parametrize(
    "opset, axis, fused",
    [(11, None, False), (11, 1, False), (11, 2, True), (11, -1, True), (13, None, True), (13, 1, False), (13, 2, True)],
    ids=["opset11_default", "opset11_axis1", "opset11_axis2", "opset11_axis-1", "opset13_default", "opset13_axis1",
         "opset13_axis2"],
)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_3d_axis_semantics(tmp_path, op, opset, axis, fused):
    """Before opset 13, Softmax on [B, T, N] with the default axis=1 normalises over T·N."""
    attrs = {} if axis is None else {"axis": axis}
    model = matmul_model(k=80, n=70, bias="1d", lead=("B", 3), activation=op, activation_attrs=attrs, opset=opset)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    if fused:
        assert dense.activation == {"Softmax": "softmax", "LogSoftmax": "log_softmax"}[op]
        assert graph.host_segments == []
    else:
        assert dense.activation == "identity"
        assert host_ops(graph) == [op]
    compile_and_compare(model, tmp_path, random_feeds(model, batch=2))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_2d_axis0_not_fused(tmp_path, op, opset):
    model = gemm_model(k=100, n=90, bias="1d")
    model.graph.node[0].output[0] = "pre"
    model.graph.node.append(helper.make_node(op, ["pre"], ["y"], name="act", axis=0))
    model.opset_import[0].version = opset
    onnx.checker.check_model(model)
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers[0].activation == "identity" and host_ops(graph) == [op]
    compile_and_compare(model, tmp_path)


def test_gemm_fuses_activation(tmp_path):
    model = gemm_model(k=100, n=90, trans_b=1, alpha=0.5, beta=2.0, bias="1d")
    model.graph.node[0].output[0] = "pre"
    model.graph.node.append(helper.make_node("Tanh", ["pre"], ["y"], name="tanh"))
    onnx.checker.check_model(model)
    (dense,) = layer_graph(model, tmp_path).dense_layers
    assert dense.activation == "tanh"
    compile_and_compare(model, tmp_path)


# ---------------------------------------------------------------- opsets, batch, dtypes

NEWEST_ONNX_OPSET = onnx.defs.onnx_opset_version()


def onnxruntime_opsets() -> list[int]:
    """Opsets ≥ 7 for which onnxruntime loads and runs the MLP."""
    return [o for o in range(7, NEWEST_ONNX_OPSET + 1) if onnxruntime_can_run(mlp_model(o))]


def test_onnxruntime_opset_range_covers_7_to_20():
    supported = onnxruntime_opsets()
    assert set(range(7, 21)) <= set(supported), supported


@pytest.mark.parametrize("opset", range(7, NEWEST_ONNX_OPSET + 1))
def test_mlp_every_opset(tmp_path, opset):
    model = mlp_model(opset)
    if not onnxruntime_can_run(model):
        pytest.skip(f"onnxruntime cannot run opset {opset}")
    graph = layer_graph(model, tmp_path)
    assert [(d.shape, d.activation, d.bias is not None) for d in graph.dense_layers] == [
        ((100, 80), "relu", True),
        ((80, 70), "softmax", True),
    ]
    assert graph.host_segments == []
    program = compile_and_compare(model, tmp_path)
    assert splits(program) == (True, True)


@pytest.mark.parametrize("batch, runs", [("N", (1, 3, 5)), (1, (1,)), (4, (4,))], ids=["symbolic", "fixed1", "fixed4"])
@pytest.mark.parametrize("pattern", ["gemm", "matmul"])
def test_batch_dimension(tmp_path, pattern, batch, runs):
    if pattern == "gemm":
        model = gemm_model(k=90, n=100, trans_b=1, bias="row", batch=batch)
    else:
        model = matmul_model(k=90, n=100, bias="1d", lead=(batch,), activation="Relu")
    for size in runs:
        compile_and_compare(model, tmp_path, random_feeds(model, batch=size, seed=size))


@pytest.mark.parametrize("elem", [DOUBLE, FLOAT16], ids=["float64", "float16"])
@pytest.mark.parametrize("pattern", ["gemm", "matmul"])
def test_dtype(tmp_path, pattern, elem):
    if pattern == "gemm":
        model = gemm_model(k=100, n=80, trans_b=1, alpha=0.5, beta=2.0, bias="1d", elem=elem)
    else:
        model = matmul_model(k=100, n=80, bias="1d", activation="Relu", elem=elem)
    if not onnxruntime_can_run(model):
        pytest.skip(f"onnxruntime has no {pattern} for {onnx.TensorProto.DataType.Name(elem)}")
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers[0].dtype == {DOUBLE: "float64", FLOAT16: "float16"}[elem]
    rtol, atol = TOLERANCE[elem]
    compile_and_compare(model, tmp_path, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- weights that are runtime inputs


def runtime_weight_model(op: str) -> onnx.ModelProto:
    node = helper.make_node(op, ["x", "w"], ["y"], name=f"my_{op.lower()}_node")
    return make_model([node], [vi("x", ["N", 100]), vi("w", [100, 90])], [vi("y", ["N", 90])])


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_runtime_weight_is_an_error(tmp_path, op):
    path = save(runtime_weight_model(op), tmp_path)
    with pytest.raises(AnalogcError, match=f"my_{op.lower()}_node") as caught:
        load_layer_graph(path)
    assert "'w'" in str(caught.value)


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_runtime_weight_cli(tmp_path, cli, op):
    path = save(runtime_weight_model(op), tmp_path)
    result = cli("compile", path, "--target", "tiny", "-o", tmp_path / "out.atp")
    assert_user_error(result, f"my_{op.lower()}_node", op)
    assert not (tmp_path / "out.atp").exists()


@pytest.mark.parametrize("per_axis", [False, True], ids=["per_tensor", "per_column"])
def test_dequantized_int8_weights(tmp_path, cli, per_axis):
    """Weight-only quantised models (int8 weights through DequantizeLinear): the weights
    go on the tiles, and the ideal chip computes the graph's float32 product, checked
    against numpy; `run --ideal` reports agreement with onnxruntime, whose default would
    quantise the activations too (MatMulNBits at accuracy level 4, `runtime/chip/host.py`)."""
    rng = np.random.default_rng(11)
    k, n = 96, 80
    wq = rng.integers(-127, 128, size=(k, n)).astype(np.int8)
    scale = (rng.uniform(0.005, 0.02, size=n) if per_axis else np.array(0.01)).astype(np.float32)
    zero = (rng.integers(-3, 4, size=n) if per_axis else np.array(2)).astype(np.int8)
    b = vector(rng, (n,))
    attrs = {"axis": 1} if per_axis else {}
    nodes = [
        helper.make_node("DequantizeLinear", ["Wq", "scale", "zero"], ["W"], name="dq", **attrs),
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["y"], name="add"),
    ]
    inits = [init("Wq", wq), init("scale", scale), init("zero", zero), init("b", b)]
    model = make_model(nodes, [vi("x", ["N", k])], [vi("y", ["N", n])], inits, opset=13)
    (dense,) = layer_graph(model, tmp_path).dense_layers
    x = random_feeds(model, batch=4)["x"]
    expected = x.astype(np.float64) @ ((wq.astype(np.float64) - zero) * scale) + b
    path = save(model, tmp_path)
    program = compile_model(path, load_target("tiny"), placer="greedy", time_limit=2)
    got = Chip(program, ideal=True).run({"x": x})["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.save(tmp_path / "x.npy", x)
    assert cli("compile", path, "--target", "tiny", "-o", tmp_path / "m.atp", "-q").code == 0
    result = cli("run", tmp_path / "m.atp", "--input", tmp_path / "x.npy", "--ideal", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["max_abs_diff_vs_onnxruntime"] < 1e-5


# ---------------------------------------------------------------- no-ops between layers


def no_op_model(middle: list, opset: int = 13, extra_inputs=(), extra_inits=()) -> onnx.ModelProto:
    """Gemm → Relu → `middle` (nodes from "r" to "m") → Gemm → Identity → Gemm → Dropout → y."""
    rng = np.random.default_rng(12)
    inits = [init("W1", weight(rng, 90, 80)), init("W2", weight(rng, 80, 70)), init("W3", weight(rng, 70, 10)), *extra_inits]
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        *middle,
        helper.make_node("Gemm", ["m", "W2"], ["h2"]),
        helper.make_node("Identity", ["h2"], ["i2"]),
        helper.make_node("Gemm", ["i2", "W3"], ["z"]),
        helper.make_node("Dropout", ["z"], ["y"]),
    ]
    return make_model(nodes, [vi("x", ["N", 90]), *extra_inputs], [vi("y", ["N", 10])], inits, opset=opset)


@pytest.mark.parametrize("opset", [11, 13])  # Dropout's ratio: an attribute before 12, an input from 12
def test_inference_no_ops_between_layers_are_bypassed(tmp_path, opset):
    """Dropout (no training mode) and Identity between layers compute nothing: the three
    layers stay one chain (all of it trains), and only the Dropout that produces the
    graph's output is left, as its host segment. Unnamed nodes keep their index names."""
    extra = [init("ratio", np.array(0.3, np.float32))] if opset >= 12 else []
    middle = [helper.make_node("Dropout", ["r", "ratio"] if extra else ["r"], ["m"], **({} if extra else {"ratio": 0.3}))]
    model = no_op_model(middle, opset, extra_inits=extra)
    graph = layer_graph(model, tmp_path)
    assert [d.name for d in graph.dense_layers] == ["Gemm_0", "Gemm_3", "Gemm_5"]
    assert [d.input for d in graph.dense_layers] == ["x", "r", "h2"]
    assert host_ops(graph) == ["Dropout"]
    program = compile_and_compare(model, tmp_path)
    assert [entry["name"] for entry in find_chain(program).layers] == ["Gemm_0", "Gemm_3", "Gemm_5"]


@pytest.mark.parametrize("case", ["training_mode_input", "mask_used", "training_mode_true"])
def test_dropout_that_may_drop_stays_on_host(tmp_path, case):
    """A Dropout whose training mode is a runtime input or a constant true, or whose mask
    is read, is not a no-op: it stays a host node between the layers."""
    extra_inputs, extra_inits = [], [init("ratio", np.array(0.3, np.float32))]
    if case == "training_mode_input":
        extra_inputs = [vi("train", [], onnx.TensorProto.BOOL)]
        middle = [helper.make_node("Dropout", ["r", "ratio", "train"], ["m"])]
    elif case == "training_mode_true":
        extra_inits.append(init("train", np.array(True)))
        middle = [helper.make_node("Dropout", ["r", "ratio", "train"], ["m"])]
    else:
        middle = [helper.make_node("Dropout", ["r", "ratio"], ["d", "mask"]), helper.make_node("Cast", ["mask"], ["maskf"], to=onnx.TensorProto.FLOAT),
                  helper.make_node("Mul", ["d", "maskf"], ["m"])]
    graph = layer_graph(no_op_model(middle, 13, extra_inputs, extra_inits), tmp_path)
    assert len(graph.dense_layers) == 3 and "Dropout" in host_ops(graph)[:-1]


def test_identity_read_inside_a_subgraph_is_kept(tmp_path):
    """An If branch reads the Identity's output from the enclosing scope: it stays."""
    rng = np.random.default_rng(13)
    branch = lambda name: helper.make_graph(  # noqa: E731
        [helper.make_node("Relu" if name == "then" else "Neg", ["i"], ["out_" + name])], name, [], [vi("out_" + name, ["N", 70])])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
        helper.make_node("Identity", ["h"], ["i"], name="id"),
        helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch("then"), else_branch=branch("else")),
    ]
    model = make_model(nodes, [vi("x", ["N", 80]), vi("c", [], onnx.TensorProto.BOOL)], [vi("y", ["N", 70])], [init("W", weight(rng, 80, 70))])
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers[0].output == "i" and host_ops(graph) == ["If"]
    compile_and_compare(model, tmp_path, {"x": random_feeds(model)["x"], "c": np.array(False)})


# ---------------------------------------------------------------- BatchNormalization after a layer


def batch_norm_model(opset: int) -> onnx.ModelProto:
    """MatMul + Add → BatchNormalization → Relu → Gemm (no bias) → BatchNormalization → y."""
    rng = np.random.default_rng(14)
    k, n, m = 90, 70, 10
    inits = [init("W1", weight(rng, k, n)), init("b1", vector(rng, (n,))), init("W2", weight(rng, n, m))]
    for tag, width in (("1", n), ("2", m)):
        inits += [init(f"scale{tag}", rng.uniform(0.5, 2.0, width).astype(np.float32)), init(f"shift{tag}", vector(rng, (width,))),
                  init(f"mean{tag}", vector(rng, (width,))), init(f"var{tag}", rng.uniform(0.2, 3.0, width).astype(np.float32))]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["xw"]),
        helper.make_node("Add", ["xw", "b1"], ["h"]),
        helper.make_node("BatchNormalization", ["h", "scale1", "shift1", "mean1", "var1"], ["hn"], epsilon=1e-3),
        helper.make_node("Relu", ["hn"], ["r"]),
        helper.make_node("Gemm", ["r", "W2"], ["z"]),
        helper.make_node("BatchNormalization", ["z", "scale2", "shift2", "mean2", "var2"], ["y"], epsilon=1e-3),
    ]
    return make_model(nodes, [vi("x", ["N", k])], [vi("y", ["N", m])], inits, opset=opset)


@pytest.mark.parametrize("opset", [11, 15])
def test_batch_norm_after_a_layer_stays_a_host_segment(tmp_path, opset):
    """The architecture's contract: BatchNorm is a host segment (the Relu after it too,
    having no layer right before it), even where it could fold into the layer."""
    model = batch_norm_model(opset)
    graph = layer_graph(model, tmp_path)
    assert len(graph.dense_layers) == 2 and host_ops(graph) == ["BatchNormalization", "Relu", "BatchNormalization"]
    compile_and_compare(model, tmp_path)


# ---------------------------------------------------------------- scikit-learn linear models (ai.onnx.ml)


def linear_model(op: str, rows: int, k: int = 70, **attrs) -> onnx.ModelProto:
    rng = np.random.default_rng(15)
    attrs = {"coefficients": rng.normal(size=rows * k).tolist(), "intercepts": rng.normal(size=rows).tolist(), **attrs}
    if op == "LinearClassifier":
        labels = attrs.get("classlabels_strings") or attrs.get("classlabels_ints")
        label_type = onnx.TensorProto.STRING if "classlabels_strings" in attrs else onnx.TensorProto.INT64
        outputs = [vi("label", ["N"], label_type), vi("scores", ["N", max(rows, len(labels))])]
    else:
        outputs = [vi("y", ["N", rows])]
    node = helper.make_node(op, ["x"], [o.name for o in outputs], domain="ai.onnx.ml", name="linear", **attrs)
    graph = helper.make_graph([node], "sklearn", [vi("x", ["N", k])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


LINEAR_MODELS = {
    "multiclass_softmax_strings": ("LinearClassifier", 4, {"classlabels_strings": ["a", "b", "c", "d"], "post_transform": "SOFTMAX", "multi_class": 1}),
    "multiclass_none_ints": ("LinearClassifier", 3, {"classlabels_ints": [3, 5, 7]}),
    "binary_logistic": ("LinearClassifier", 1, {"classlabels_ints": [0, 1], "post_transform": "LOGISTIC"}),
    "regressor_two_targets": ("LinearRegressor", 2, {"targets": 2}),
    "regressor_one_target": ("LinearRegressor", 1, {}),
}


@pytest.mark.parametrize("case", list(LINEAR_MODELS))
def test_sklearn_linear_models_go_on_tiles(tmp_path, case):
    """LinearClassifier / LinearRegressor: X·Cᵀ + intercepts on the tiles; the post
    transform and labels stay onnxruntime's, so every output matches it exactly."""
    op, rows, attrs = LINEAR_MODELS[case]
    model = linear_model(op, rows, **attrs)
    graph = layer_graph(model, tmp_path)
    (dense,) = graph.dense_layers
    assert dense.shape == (70, rows)
    assert host_ops(graph) == ([] if op == "LinearRegressor" else [op])
    feeds = random_feeds(model, batch=5)
    expected = onnxruntime_outputs(model, feeds)
    program = compile_model(save(model, tmp_path), load_target("tiny"), placer="greedy", time_limit=2)
    got = Chip(program, ideal=True).run(dict(feeds))
    for name, reference in expected.items():
        if reference.dtype.kind in "fc":
            np.testing.assert_allclose(got[name], reference, rtol=1e-4, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], reference, err_msg=name)


def test_sklearn_linear_model_with_unknown_width_stays_on_host(tmp_path):
    model = linear_model("LinearRegressor", 2, targets=2)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "K"
    graph = layer_graph(model, tmp_path)
    assert graph.dense_layers == [] and host_ops(graph) == ["LinearRegressor"]


# ---------------------------------------------------------------- SiLU written as Sigmoid and Mul


def silu_model(mul_inputs=("z", "g"), sigmoid_also_output: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(16)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["xw"]),
        helper.make_node("Add", ["xw", "b1"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["g"]),
        helper.make_node("Mul", list(mul_inputs), ["a"]),
        helper.make_node("Gemm", ["a", "W2"], ["y"]),
    ]
    outputs = [vi("y", ["N", 10])] + ([vi("g", ["N", 70])] if sigmoid_also_output else [])
    inits = [init("W1", weight(rng, 90, 70)), init("b1", vector(rng, (70,))), init("W2", weight(rng, 70, 10))]
    return make_model(nodes, [vi("x", ["N", 90])], outputs, inits)




def test_silu_whose_gate_is_read_elsewhere_stays_on_host(tmp_path):
    model = silu_model(sigmoid_also_output=True)
    graph = layer_graph(model, tmp_path)
    assert [d.activation for d in graph.dense_layers] == ["identity", "identity"] and host_ops(graph) == ["Sigmoid", "Mul"]
    compile_and_compare(model, tmp_path)


# ---------------------------------------------------------------- GELU: the opset-20 op, and torch's decomposition


@pytest.mark.parametrize("approximate, name", [("none", "gelu"), ("tanh", "gelu_tanh")])
def test_gelu_op_is_fused(tmp_path, approximate, name):
    model = matmul_model(k=100, n=90, bias="1d", activation="Gelu", activation_attrs={"approximate": approximate}, opset=20)
    (dense,) = layer_graph(model, tmp_path).dense_layers
    assert dense.activation == name and dense.output == "y"
    program = compile_and_compare(model, tmp_path)
    # export writes it back as the Gelu op, with its approximation
    exported = export_model(program)
    assert [n.op_type for n in exported.graph.node][-1] == "Gelu"
    x = random_feeds(model)["x"]
    np.testing.assert_allclose(onnxruntime_outputs(exported, {"x": x})["y"], Chip(program, ideal=True).run({"x": x})["y"], rtol=1e-5, atol=1e-6)


def torch_gelu_model(swap: bool = False) -> onnx.ModelProto:
    """Linear → GELU as torch.onnx (TorchScript) writes it before opset 20 → Linear."""
    rng = np.random.default_rng(17)
    consts = [init("sqrt2", np.array(np.sqrt(2), np.float32)), init("one", np.array(1, np.float32)), init("half", np.array(0.5, np.float32))]
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["z"]),
        helper.make_node("Div", ["z", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["one", "e"] if swap else ["e", "one"], ["a"]),
        helper.make_node("Mul", ["a", "z"] if swap else ["z", "a"], ["m"]),
        helper.make_node("Mul", ["half", "m"] if swap else ["m", "half"], ["g"]),
        helper.make_node("Gemm", ["g", "W2"], ["y"]),
    ]
    inits = [init("W1", weight(rng, 90, 70)), init("b1", vector(rng, (70,))), init("W2", weight(rng, 70, 10)), *consts]
    return make_model(nodes, [vi("x", ["N", 90])], [vi("y", ["N", 10])], inits, opset=13)


DECOMPOSED = {  # activations exporters write as several nodes: (model, fused activation)
    "silu_x_times_gate": (lambda: silu_model(("z", "g")), "silu"),
    "silu_gate_times_x": (lambda: silu_model(("g", "z")), "silu"),
    "gelu_as_torch": (lambda: torch_gelu_model(), "gelu"),
    "gelu_operands_swapped": (lambda: torch_gelu_model(swap=True), "gelu"),
}


@pytest.mark.parametrize("case", list(DECOMPOSED))
def test_decomposed_activation_after_a_layer_is_fused(tmp_path, case):
    build, activation_name = DECOMPOSED[case]
    model = build()
    graph = layer_graph(model, tmp_path)
    assert graph.host_segments == [] and [d.activation for d in graph.dense_layers] == [activation_name, "identity"]
    compile_and_compare(model, tmp_path)


def test_gelu_lookalike_with_another_constant_stays_on_host(tmp_path):
    model = torch_gelu_model()
    model.graph.initializer[-1].CopyFrom(init("half", np.array(0.6, np.float32)))
    graph = layer_graph(model, tmp_path)
    assert [d.activation for d in graph.dense_layers] == ["identity", "identity"] and host_ops(graph) == ["Div", "Erf", "Add", "Mul", "Mul"]
    compile_and_compare(model, tmp_path)
