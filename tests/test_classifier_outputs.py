"""Classifier exports (scikit-learn style): an integer label output first, a ZipMap
sequence of maps second. Accuracy uses the label; non-tensor outputs pass through."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from analogc.data import load_digits
from tests.conftest import assert_user_error


def classifier(path, zipmap=True):
    data = load_digits()
    x = data.x_train.reshape(len(data.x_train), -1)
    # A least-squares linear classifier: good enough to be far above chance.
    targets = np.eye(10)[data.y_train]
    w, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), targets, rcond=None)
    inits = [numpy_helper.from_array(w[:-1].astype(np.float32), "W"), numpy_helper.from_array(w[-1].astype(np.float32), "b")]
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label2d"], axis=1, keepdims=1),
        helper.make_node("Flatten", ["label2d"], ["label_flat"], axis=0),
        helper.make_node("Squeeze", ["label_flat", "zero"], ["output_label"]),
    ]
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"))
    outputs = [helper.make_tensor_value_info("output_label", TensorProto.INT64, ["N"])]
    if zipmap:
        nodes.append(helper.make_node("ZipMap", ["probabilities"], ["output_probability"], domain="ai.onnx.ml", classlabels_int64s=list(range(10))))
        outputs.append(helper.make_value_info("output_probability", helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))))
    else:
        outputs.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]))
    graph = helper.make_graph(nodes, "clf", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    onnx.save(model, path)
    return path


def test_label_output_drives_accuracy(tmp_path, cli):
    model = classifier(tmp_path / "clf.onnx")
    assert cli("compile", model, "-o", tmp_path / "clf.atp", "-q").code == 0
    result = cli("run", tmp_path / "clf.atp", "--data", "digits", "--ideal", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    data = load_digits()
    expected = ort.InferenceSession(str(model)).run(["output_label"], {"input": data.x_test.reshape(-1, 64)})[0]
    assert report["accuracy"] == report["onnxruntime_accuracy"] == np.mean(expected == data.y_test)
    assert report["accuracy"] > 0.8


def test_zipmap_output_is_written_as_arrays(tmp_path, cli):
    """The .npz names everything it holds: the labels, and the ZipMap's probabilities as
    a [N, classes] array with the class keys beside it, equal to onnxruntime's maps."""
    model = classifier(tmp_path / "clf.onnx")
    cli("compile", model, "-o", tmp_path / "clf.atp", "-q")
    x = np.random.default_rng(0).random((4, 64), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli("run", tmp_path / "clf.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz", "--ideal", "-q").code == 0
    saved = np.load(tmp_path / "y.npz")
    assert sorted(saved.files) == ["output_label", "output_probability", "output_probability.labels"]
    labels, maps = ort.InferenceSession(str(model)).run(["output_label", "output_probability"], {"input": x})
    np.testing.assert_array_equal(saved["output_label"], labels)
    keys = saved["output_probability.labels"].tolist()
    assert sorted(keys) == sorted(maps[0])
    np.testing.assert_allclose(saved["output_probability"], [[m[k] for k in keys] for m in maps], rtol=1e-5, atol=1e-6)


def test_first_output_tensor_goes_to_npy(tmp_path, cli):
    model = classifier(tmp_path / "clf.onnx", zipmap=False)
    cli("compile", model, "-o", tmp_path / "clf.atp", "-q")
    np.save(tmp_path / "x.npy", np.zeros((3, 64), dtype=np.float32))
    assert cli("run", tmp_path / "clf.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "-q").code == 0
    assert np.load(tmp_path / "y.npy").shape == (3,)


def test_sequence_first_output_refused_for_npy(tmp_path, cli):
    model = onnx.load(classifier(tmp_path / "clf.onnx"))
    model.graph.output.reverse()  # ZipMap sequence first
    onnx.save(model, tmp_path / "rev.onnx")
    cli("compile", tmp_path / "rev.onnx", "-o", tmp_path / "rev.atp", "-q")
    np.save(tmp_path / "x.npy", np.zeros((2, 64), dtype=np.float32))
    assert_user_error(cli("run", tmp_path / "rev.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy"), "not a tensor")
    assert not (tmp_path / "y.npy").exists()
