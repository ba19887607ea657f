"""Outputs that do not hold one row per example, through the files a user gets (compile →
.atp → run --input X.npz --output Y.npz, several batches with --batch-size), compared with
onnxruntime on the original model run on all the examples at once. Found by a sweep with
exporters' models: skl2onnx writes a multi-target MLPRegressor's output as [N·targets, 1];
a graph may output a constant (a layer's own weight); scikit-learn's string class labels.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import assert_user_error

FLOAT = TensorProto.FLOAT


def save(tmp_path, nodes, outputs, inits, name="m", opsets=(("", 13),)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, ["N", 6])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def weights(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)


def compile_and_run(cli, tmp_path, path, x, *extra):
    """compile PATH, run --ideal on x in batches of 2 (x has 5 rows: 3 batches, the last short)."""
    atp = path.with_suffix(".atp")
    assert cli("compile", path, "-o", atp, "--placer", "greedy", "-q").code == 0
    np.savez(tmp_path / "x.npz", x=x)
    return cli("run", atp, "--ideal", "--input", tmp_path / "x.npz", "--output", tmp_path / "y.npz", "--batch-size", 2, "-q", *extra)


def onnxruntime_all(path, x) -> dict:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))


def x5():
    return np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)


def test_a_layer_weight_that_is_also_a_graph_output_is_written_whole(cli, tmp_path):
    w, b = weights()
    path = save(tmp_path, [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc")],
                [helper.make_tensor_value_info("y", FLOAT, ["N", 3]), helper.make_tensor_value_info("W", FLOAT, [6, 3])],
                [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    x = x5()
    result = compile_and_run(cli, tmp_path, path, x)
    assert result.code == 0, result.err
    expected, got = onnxruntime_all(path, x), np.load(tmp_path / "y.npz")
    np.testing.assert_array_equal(got["W"], w)  # was cut to the first rows of each batch
    np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-5, atol=1e-6)


def test_an_output_with_several_rows_per_example_is_joined_over_batches(cli, tmp_path):
    """skl2onnx's MLPRegressor with 3 targets: Reshape([N, 3] → [-1, 1]) gives 3N rows."""
    w, b = weights(2)
    path = save(tmp_path, [helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc"), helper.make_node("Reshape", ["h", "shape"], ["variable"])],
                [helper.make_tensor_value_info("variable", FLOAT, [None, 1])],
                [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array([-1, 1], np.int64), "shape")])
    x = x5()
    result = compile_and_run(cli, tmp_path, path, x)
    assert result.code == 0, result.err
    got = np.load(tmp_path / "y.npz")["variable"]
    assert got.shape == (15, 1)  # was (5, 1): the rows of the first examples only
    np.testing.assert_allclose(got, onnxruntime_all(path, x)["variable"], rtol=1e-5, atol=1e-6)


def test_an_output_over_the_whole_batch_is_refused_when_batches_differ(cli, tmp_path):
    """A sum over the examples depends on how they are cut into batches: refused over
    several batches (it was silently stacked per batch), exact in one batch."""
    w, b = weights(3)
    path = save(tmp_path, [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc"),
                           helper.make_node("ReduceSum", ["y", "axis"], ["total"], keepdims=1)],
                [helper.make_tensor_value_info("y", FLOAT, ["N", 3]), helper.make_tensor_value_info("total", FLOAT, [1, 3])],
                [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array([0], np.int64), "axis")])
    x = x5()
    assert_user_error(compile_and_run(cli, tmp_path, path, x), "output 'total'", "--batch-size")
    assert not (tmp_path / "y.npz").exists()
    assert cli("run", path.with_suffix(".atp"), "--ideal", "--input", tmp_path / "x.npz", "--output", tmp_path / "y.npz", "-q").code == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["total"], onnxruntime_all(path, x)["total"], rtol=1e-5, atol=1e-5)


def test_string_class_labels_are_written(cli, tmp_path):
    """scikit-learn's classifiers with string classes output a string tensor of labels."""
    w, b = weights(4)
    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml", name="clf",
                            coefficients=w.T.ravel().tolist(), intercepts=b.tolist(), classlabels_strings=["cat", "dog", "emu"])
    path = save(tmp_path, [node], [helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
                                   helper.make_tensor_value_info("scores", FLOAT, ["N", 3])], [], opsets=(("", 13), ("ai.onnx.ml", 1)))
    x = x5()
    result = compile_and_run(cli, tmp_path, path, x)
    assert result.code == 0, result.err
    got, expected = np.load(tmp_path / "y.npz"), onnxruntime_all(path, x)
    assert sorted(got.files) == ["label", "scores"]  # the labels were left out
    assert got["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(got["scores"], expected["scores"], rtol=1e-5, atol=1e-6)


def test_a_model_without_inputs_is_refused_at_run(cli, tmp_path):
    graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.ones((2, 3), np.float32), "c"))], "g", [],
                              [helper.make_tensor_value_info("y", FLOAT, [2, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "c.onnx"))
    assert cli("compile", tmp_path / "c.onnx", "-o", tmp_path / "c.atp", "-q").code == 0
    np.savez(tmp_path / "none.npz")
    result = cli("run", tmp_path / "c.atp", "--ideal", "--input", tmp_path / "none.npz", "--output", tmp_path / "y.npz")
    assert_user_error(result, "none.npz: the model has no inputs to feed")  # was an internal error (StopIteration)
    assert not (tmp_path / "y.npz").exists()


def test_output_over_the_input_file_is_refused(cli, tmp_path):
    w, b = weights()
    path = save(tmp_path, [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc")], [helper.make_tensor_value_info("y", FLOAT, ["N", 3])],
                [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    assert cli("compile", path, "-o", tmp_path / "m.atp", "-q").code == 0
    np.savez(tmp_path / "x.npz", x=x5())
    before = (tmp_path / "x.npz").read_bytes()
    assert_user_error(cli("run", tmp_path / "m.atp", "--input", tmp_path / "x.npz", "--output", tmp_path / "." / "x.npz"), "is the --input file")
    assert (tmp_path / "x.npz").read_bytes() == before


def test_a_time_major_sequence_is_not_cut_along_time(cli, tmp_path):
    """x [seq, batch, 6] (PyTorch's default RNN and Transformer layout, both axes
    symbolic) → MatMul → CumSum over time: its examples are on axis 1, so `run` cannot
    cut axis 0 into batches (with --batch-size 2 the sums restarted every 2 steps, and the
    onnxruntime reference, cut the same way, agreed: max diff 0); --limit keeps examples."""
    import json

    w = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"), helper.make_node("CumSum", ["h", "axis"], ["y"], name="cumsum")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, ["seq", "batch", 6])],
                              [helper.make_tensor_value_info("y", FLOAT, ["seq", "batch", 3])],
                              [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(0, np.int64), "axis")])
    path = tmp_path / "tm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = np.random.default_rng(6).standard_normal((7, 3, 6)).astype(np.float32)
    result = compile_and_run(cli, tmp_path, path, x, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["examples"] == 3
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["y"], onnxruntime_all(path, x)["y"], rtol=1e-5, atol=1e-5)
    limited = cli("run", path.with_suffix(".atp"), "--ideal", "--input", tmp_path / "x.npz", "--output", tmp_path / "y2.npz", "--limit", 2, "-q")
    assert limited.code == 0, limited.err
    np.testing.assert_allclose(np.load(tmp_path / "y2.npz")["y"], onnxruntime_all(path, x[:, :2])["y"], rtol=1e-5, atol=1e-5)


def test_run_json_is_strict_when_outputs_hold_nan(cli, tmp_path):
    """A model whose outputs hold NaN where onnxruntime's do too (a NaN constant added):
    the chip agrees (max diff 0, was NaN) and --json prints strict JSON (was a bare NaN,
    which jq and browsers refuse); a NaN beside a number would be a difference of null."""
    import json

    w, b = weights()
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc"), helper.make_node("Add", ["h", "c"], ["y"], name="add")]
    path = save(tmp_path, nodes, [helper.make_tensor_value_info("y", FLOAT, ["N", 3])],
                [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array([np.nan, 0, 0], np.float32), "c")])
    result = compile_and_run(cli, tmp_path, path, x5(), "--json")
    assert result.code == 0, result.err

    def refuse(constant):
        raise AssertionError(f"non-standard JSON {constant}")

    report = json.loads(result.out, parse_constant=refuse)
    assert report["max_abs_diff_vs_onnxruntime"] == 0.0
    got = np.load(tmp_path / "y.npz")["y"]
    np.testing.assert_allclose(got, onnxruntime_all(path, x5())["y"], rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(got[:, 0]).all()


def test_max_abs_diff_counts_equal_nans_and_infinities_as_equal():
    from analogc.console import finite
    from analogc.run_command import max_abs_diff

    inf, nan = np.inf, np.nan
    assert max_abs_diff(np.array([nan, inf, -inf, 1.0]), np.array([nan, inf, -inf, 1.5])) == 0.5
    assert max_abs_diff(np.array([nan, 1.0]), np.array([2.0, 1.0])) == inf
    assert max_abs_diff(np.array([inf]), np.array([-inf])) == inf
    assert finite({"a": [np.float32(nan), inf, 1.5], "b": np.float64(-inf), "c": "NaN"}) == {"a": [None, None, 1.5], "b": None, "c": "NaN"}
