"""Conv layers on the tiles: compile → .atp → run --ideal equals onnxruntime.

The cases cover kernels 1 to 7, strides 1 to 3, dilations 1 and 2, explicit (asymmetric)
pads and every auto_pad mode, 1-D and 2-D, and C_in·kh·kw (+ the bias row) above the
`tiny` target's 64 tile rows, so rows split across tiles and partial sums are added; one
case also splits the columns. onnxruntime refuses dilations with SAME padding, so that
case is checked against onnx's reference evaluator instead.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

from analogc.runtime.chip import im2col
from analogc.runtime.chip.chip import Chip
from analogc.runtime.format.program import load_program
from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import dac_kernels
from tests.mapper.conv_builders import conv_input, conv_model

RTOL, ATOL = 1e-4, 1e-5

CASES = {
    # name: conv_model keywords
    "k1_rows_split": dict(cin=70, cout=8, kernel=1, size=5),
    "k2_s2_valid": dict(cin=3, kernel=2, strides=2, auto_pad="VALID", size=(8, 9)),
    "k3_d2_asym_pads_rows_split": dict(cin=8, kernel=3, dilations=2, pads=(1, 0, 2, 1), size=(9, 10)),
    "k4_s3_same_upper": dict(cin=5, kernel=4, strides=3, auto_pad="SAME_UPPER", size=(10, 11)),
    "k5_s2_same_lower_rows_and_cols_split": dict(cin=3, cout=70, kernel=5, strides=2, auto_pad="SAME_LOWER", size=(9, 8)),
    "k6x4_mixed_strides_dilations": dict(cin=2, kernel=(6, 4), strides=(1, 2), dilations=(2, 1), pads=(2, 1, 3, 0), size=(13, 9)),
    "k7_s3_d2_valid_rows_split": dict(cin=2, kernel=7, strides=3, dilations=2, auto_pad="VALID", size=(20, 19)),
    "1d_k1_s3": dict(rank=1, cin=4, kernel=1, strides=3, size=10),
    "1d_k4_s2_same_lower_rows_split": dict(rank=1, cin=20, kernel=4, strides=2, auto_pad="SAME_LOWER", size=11),
    "1d_k7_s2_d2_valid_rows_split": dict(rank=1, cin=10, kernel=7, strides=2, dilations=2, auto_pad="VALID", size=30),
    "1d_k5_d2_pads_same_upper_no_bias": dict(rank=1, cin=3, kernel=5, dilations=1, auto_pad="SAME_UPPER", bias=False, size=12, after=("LeakyRelu",)),
    "1d_k3_d2_explicit_pads": dict(rank=1, cin=6, kernel=3, dilations=2, pads=(3, 1), size=9, after=("Sigmoid",)),
    "grouped_2_same_upper": dict(cin=8, cout=6, kernel=3, group=2, auto_pad="SAME_UPPER", size=7),
    "batch_norm_folded_then_relu": dict(cin=4, cout=5, kernel=3, pads=(1, 1, 1, 1), batch_norm=True, size=6),
    "opset_9_no_activation": dict(cin=3, kernel=3, after=(), opset=9, size=6),
}


def compile_to_file(cli, model, tmp_path, placer: str = "greedy", *options):
    program = tmp_path / "model.atp"
    result = cli("compile", model, "--target", "tiny", "-o", program, "--placer", placer, "-q", *options)
    assert result.code == 0, result.err
    return program


def run_ideal(cli, program, x, tmp_path) -> np.ndarray:
    x_path, y_path = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x_path, x)
    result = cli("run", program, "--input", x_path, "--output", y_path, "--ideal", "-q")
    assert result.code == 0, result.err
    return np.load(y_path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_conv_ideal_matches_onnxruntime(cli, tmp_path, case):
    keywords = CASES[case]
    if not keywords.get("after", ("Relu",)):
        keywords = {**keywords, "after": ("Identity",)}
    model = conv_model(tmp_path / "model.onnx", **keywords)
    program = compile_to_file(cli, model, tmp_path, "greedy", *(["--fold-batchnorm"] if keywords.get("batch_norm") else []))
    plan = json.loads(cli("plan", program, "--json").out)
    (layer,) = plan["layers"]
    assert layer["kind"] == "conv" and plan["host_segments"] == []  # the activation (and BN, when asked) fused too
    x = conv_input(model)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert layer["reads_per_example"] == int(np.prod(expected.shape[2:]))
    np.testing.assert_allclose(run_ideal(cli, program, x, tmp_path), expected, rtol=RTOL, atol=ATOL)


def test_batch_norm_stays_on_the_host_unless_folding_is_asked(cli, tmp_path):
    """The contract keeps BatchNormalization a host segment; --fold-batchnorm absorbs it
    into the conv's weight and bias. Both match onnxruntime in ideal mode."""
    model = conv_model(tmp_path / "model.onnx", **CASES["batch_norm_folded_then_relu"])
    x = conv_input(model)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    plan = json.loads(cli("plan", compile_to_file(cli, model, tmp_path), "--json").out)
    (layer,) = plan["layers"]
    nodes = [node for segment in plan["host_segments"] for node in segment["onnx_nodes"]]
    assert layer["kind"] == "conv" and layer["activation"] == "identity" and "bn" in nodes and "relu0" in nodes
    assert plan["batchnorm_folded"] is False
    np.testing.assert_allclose(run_ideal(cli, tmp_path / "model.atp", x, tmp_path), expected, rtol=RTOL, atol=ATOL)
    plan = json.loads(cli("plan", compile_to_file(cli, model, tmp_path, "greedy", "--fold-batchnorm"), "--json").out)
    assert plan["host_segments"] == [] and plan["layers"][0]["activation"] == "relu" and plan["batchnorm_folded"] is True
    assert "BatchNormalization after a layer folded" in cli("plan", tmp_path / "model.atp").out
    np.testing.assert_allclose(run_ideal(cli, tmp_path / "model.atp", x, tmp_path), expected, rtol=RTOL, atol=ATOL)


def test_plan_reports_conv_geometry_and_row_splits(cli, tmp_path):
    model = conv_model(tmp_path / "model.onnx", cin=8, cout=4, kernel=3, strides=2, pads=(1, 0, 1, 0), size=9)
    plan = json.loads(cli("plan", compile_to_file(cli, model, tmp_path), "--json").out)
    (layer,) = plan["layers"]
    assert layer["shape"] == [72, 4] and layer["array_shape"] == [73, 4]
    assert (layer["kernel"], layer["strides"], layer["pads"], layer["dilations"], layer["group"]) == ([3, 3], [2, 2], [1, 0, 1, 0], [1, 1], 1)
    assert layer["reads_per_example"] == 5 * 4  # (9 + 2 − 3) // 2 + 1 rows, (9 − 3) // 2 + 1 columns
    assert layer["partial_sums_added_digitally"]
    # The cost model reads every patch: MACs per example = positions × array cells.
    assert plan["cost_estimate"]["counts"]["macs"] == 20 * 73 * 4


def test_same_padding_with_dilation_matches_the_onnx_reference(tmp_path, cli):
    """onnxruntime refuses this combination; the ONNX spec (reference evaluator) does not."""
    model = conv_model(tmp_path / "model.onnx", cin=3, kernel=3, dilations=2, strides=2, auto_pad="SAME_UPPER", size=(9, 8))
    program = load_program(compile_to_file(cli, model, tmp_path))
    x = conv_input(model)
    expected = ReferenceEvaluator(str(model)).run(None, {"x": x})[0]
    np.testing.assert_allclose(Chip(program, ideal=True).run({"x": x})["y"], expected, rtol=RTOL, atol=ATOL)


def test_depthwise_conv_stays_on_the_host_and_plan_says_why(cli, tmp_path):
    model = conv_model(tmp_path / "model.onnx", cin=6, cout=6, kernel=3, group=6, size=7)
    program = compile_to_file(cli, model, tmp_path)
    plan = json.loads(cli("plan", program, "--json").out)
    assert plan["layers"] == []
    (note,) = plan["host_reasons"]
    assert note["node"] == "conv" and "6 groups" in note["reason"]
    assert "6 groups" in cli("plan", program).out
    x = conv_input(model)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(run_ideal(cli, program, x, tmp_path), expected, rtol=RTOL, atol=ATOL)


def test_conv_compiles_with_cpsat_and_runs_in_default_mode_deterministically(cli, tmp_path):
    model = conv_model(tmp_path / "model.onnx", cin=8, cout=12, kernel=3, pads=(1, 1, 1, 1), size=6)
    program = compile_to_file(cli, model, tmp_path, placer="cpsat")
    x = conv_input(model, n=4)
    np.save(tmp_path / "x.npy", x)
    outputs = []
    for seed in (3, 3, 4):
        result = cli("run", program, "--input", tmp_path / "x.npy", "--output", tmp_path / f"y{len(outputs)}.npy", "--seed", seed, "-q")
        assert result.code == 0, result.err
        outputs.append(np.load(tmp_path / f"y{len(outputs)}.npy"))
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(outputs[0] - expected).max() < 0.3 * np.abs(expected).max()


@pytest.mark.parametrize("case", ["grouped_2_same_upper", "batch_norm_folded_then_relu", "1d_k3_d2_explicit_pads", "k4_s3_same_upper"])
def test_export_writes_conv_ops_that_reproduce_run_ideal(cli, tmp_path, case):
    model = conv_model(tmp_path / "model.onnx", **CASES[case])
    program = compile_to_file(cli, model, tmp_path, "greedy", *(["--fold-batchnorm"] if CASES[case].get("batch_norm") else []))
    assert cli("export", program, "-o", tmp_path / "exported.onnx").code == 0
    exported = onnx.load(str(tmp_path / "exported.onnx"))
    assert "Conv" in [n.op_type for n in exported.graph.node] and "BatchNormalization" not in [n.op_type for n in exported.graph.node]
    x = conv_input(model)
    got = ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, run_ideal(cli, program, x, tmp_path), rtol=RTOL, atol=ATOL)


def test_conv_with_a_runtime_weight_stays_on_the_host_and_plan_says_why(cli, tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], name="dynamic", kernel_shape=[3, 3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5]),
                                            helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 3, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "model.onnx"))
    plan = json.loads(cli("plan", compile_to_file(cli, tmp_path / "model.onnx", tmp_path), "--json").out)
    assert plan["layers"] == [] and plan["host_reasons"][0]["node"] == "dynamic"
    assert "computed at run time" in plan["host_reasons"][0]["reason"]


def host_only_model(path, op: str):
    """x → op (constant weights, the op's own types) → Gemm → y: the op stays on the host
    with its reason, the Gemm goes on the tiles."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    gemm_w = numpy_helper.from_array(rng.standard_normal((2 * 5 * 5, 3)).astype(np.float32), "G")
    if op == "ConvTranspose":  # [N, 3, 3, 3] → [N, 2, 5, 5]
        x_type, inits = TensorProto.FLOAT, [numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "W")]
        nodes = [helper.make_node("ConvTranspose", ["x", "W"], ["c"], name="up", kernel_shape=[3, 3])]
    elif op == "GRU":  # [T=3, N=2, 5] → last state [1, 2, 50] → [2, 50]
        x_type = TensorProto.FLOAT
        inits = [numpy_helper.from_array(rng.standard_normal((1, 150, 5)).astype(np.float32), "W"),
                 numpy_helper.from_array(0.3 * rng.standard_normal((1, 150, 50)).astype(np.float32), "R"),
                 numpy_helper.from_array(np.array([0], np.int64), "axes")]
        nodes = [helper.make_node("GRU", ["x", "W", "R"], ["", "h"], name="up", hidden_size=50),
                 helper.make_node("Squeeze", ["h", "axes"], ["c"], name="squeeze")]
    else:  # ConvInteger: uint8 [N, 3, 7, 7] ⊛ uint8 [2, 3, 3, 3] → int32 [N, 2, 5, 5]
        x_type, inits = TensorProto.UINT8, [numpy_helper.from_array(rng.integers(0, 4, (2, 3, 3, 3)).astype(np.uint8), "W")]
        nodes = [helper.make_node("ConvInteger", ["x", "W"], ["ci"], name="up", kernel_shape=[3, 3]),
                 helper.make_node("Cast", ["ci"], ["c"], name="cast", to=TensorProto.FLOAT)]
    nodes += [helper.make_node("Flatten", ["c"], ["f"], name="flat"), helper.make_node("Gemm", ["f", "G"], ["y"], name="fc")]
    shape = {"ConvTranspose": ["N", 3, 3, 3], "GRU": [3, 2, 5]}.get(op, ["N", 3, 7, 7])
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", x_type, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[1] if op == "GRU" else "N", 3])], [*inits, gemm_w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("op, words", [("ConvTranspose", "transposed convolution"), ("ConvInteger", "integer convolution"), ("GRU", "recurrent layer")])
def test_transposed_and_integer_convolutions_stay_on_the_host_and_plan_says_why(cli, tmp_path, op, words):
    model = host_only_model(tmp_path / "model.onnx", op)
    program = compile_to_file(cli, model, tmp_path)
    plan = json.loads(cli("plan", program, "--json").out)
    assert [layer["name"] for layer in plan["layers"]] == ["fc"]
    (note,) = plan["host_reasons"]
    assert (note["node"], note["op"]) == ("up", op) and words in note["reason"]
    assert words in cli("plan", program).out
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    x = {"ConvTranspose": lambda: rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "GRU": lambda: rng.standard_normal((3, 2, 5)).astype(np.float32),
         "ConvInteger": lambda: rng.integers(0, 8, (4, 3, 7, 7)).astype(np.uint8)}[op]()
    expected = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(run_ideal(cli, program, x, tmp_path), expected, rtol=RTOL, atol=ATOL * max(1.0, np.abs(expected).max()))


def test_reads_per_example_says_when_a_symbolic_dim_was_counted_as_one(cli, tmp_path):
    """A conv over [N, 2, H, W] cannot know its output positions: the plan says the count
    (1 per unknown dim) is a lower bound; with the sizes known it is exact."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "W")
    plans = {}
    for dims in (["N", 2, "H", "W"], ["N", 2, 6, 5]):
        node = helper.make_node("Conv", ["x", "W"], ["y"], name="conv", kernel_shape=[3, 3])
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, None, None])], [weight])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.save(model, str(tmp_path / "model.onnx"))
        program = compile_to_file(cli, tmp_path / "model.onnx", tmp_path)
        plans[str(dims[2])] = (json.loads(cli("plan", program, "--json").out)["layers"][0], cli("plan", program).out)
    (symbolic, text), (known, known_text) = plans["H"], plans["6"]
    assert (symbolic["reads_per_example"], symbolic["reads_per_example_exact"]) == (1, False)
    assert "≥1" in text and "symbolic input dim" in text
    assert (known["reads_per_example"], known["reads_per_example_exact"]) == (4 * 3, True)
    assert "≥" not in known_text


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_dacs_gather_the_same_patches_as_im2col(cli, tmp_path, case):
    """In default mode the DACs read each patch straight from the padded input
    (im2col.layer_gather): the same rows as the sliding-window im2col that the ideal
    chip uses (checked against onnxruntime above), and the same DAC bits."""
    model = conv_model(tmp_path / "model.onnx", **CASES[case])
    program = load_program(compile_to_file(cli, model, tmp_path))
    spec = dataclasses.replace(load_target("tiny").periphery, quantization=True)
    x = conv_input(model)
    for layer in (layer for layer in program.layers if layer["kind"] == "conv"):
        patches, fold = im2col.layer_patches(x, layer)
        gather, gather_fold = im2col.layer_gather(x, layer)
        assert gather_fold == fold and gather.shape == patches.shape
        np.testing.assert_array_equal(gather.rows(), patches)
        for bias in (False, True):
            expected = dac_kernels.dac_layer_numpy(patches.astype(np.float32), bias, spec, squares=True)
            for got in (dac_kernels.dac_layer(gather, bias, spec, squares=True), dac_kernels.dac_gathered(gather, bias, spec, True, compiled=False)):
                for a, b in zip(got, expected):
                    np.testing.assert_array_equal(a, b)
