"""A program holds each weight once: original.onnx keeps placeholders for the initializers
that are exactly a layer's weights, and `run --ideal` / `export` put them back."""

from __future__ import annotations

import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from analogc.runtime.format.original_model import original_bytes
from analogc.runtime.format.program import load_program

from .conftest import assert_user_error


def big_model(path, alpha: float = 1.0):
    """Gemm (transB, 1.3 MB weight) -> Relu -> MatMul (1.2 MB, not transposed) + Add."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((640, 520), dtype=np.float32) * np.float32(0.05)  # [N, K]: transB
    w1 = rng.standard_normal((640, 480), dtype=np.float32) * np.float32(0.05)
    b1 = rng.standard_normal(480, dtype=np.float32) * np.float32(0.1)
    nodes = [
        helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1, alpha=alpha, name="fc0"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w1"], ["m"], name="fc1"),
        helper.make_node("Add", ["m", "b1"], ["y"], name="fc1_bias"),
    ]
    inits = [numpy_helper.from_array(w0, "w0"), numpy_helper.from_array(np.zeros(640, np.float32), "b0"),
             numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1")]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 520])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 480])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.fixture
def compiled(tmp_path, cli):
    model = big_model(tmp_path / "big.onnx")
    assert cli("compile", model, "--placer", "greedy", "-o", tmp_path / "big.atp", "-q").code == 0
    return model, tmp_path / "big.atp"


def test_the_weights_are_stored_once_and_restored_bit_for_bit(compiled):
    model, atp = compiled
    with zipfile.ZipFile(atp) as archive:
        sizes = {i.filename: i.file_size for i in archive.infolist()}
    assert sizes["original.onnx"] < 50_000 < sizes["arrays.npz"]  # the 2.5 MB of weights once
    program = load_program(atp)
    stripped = program.meta["model"]["stripped_initializers"]
    assert {(s["name"], s["transpose"]) for s in stripped} == {("w0", True), ("w1", False)}
    restored = onnx.load_from_string(original_bytes(program))
    source = onnx.load(str(model))
    want = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer}
    got = {t.name: numpy_helper.to_array(t) for t in restored.graph.initializer}
    assert set(got) == set(want)
    for name in want:
        assert want[name].tobytes() == got[name].tobytes(), name


def test_run_ideal_and_export_reproduce_onnxruntime(compiled, cli, tmp_path):
    model, atp = compiled
    x = np.random.default_rng(0).uniform(-1, 1, (7, 520)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    reference = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert cli("run", atp, "--ideal", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "-q").code == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), reference, rtol=1e-4, atol=1e-5)
    assert cli("export", atp, "-o", tmp_path / "e.onnx", "-q").code == 0
    exported = ort.InferenceSession(str(tmp_path / "e.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(exported, reference, rtol=1e-5, atol=1e-5)


def test_a_scaled_weight_is_kept_in_the_model(tmp_path, cli):
    """alpha != 1: the layer's weight is alpha·B, not B, so B stays in original.onnx."""
    model = big_model(tmp_path / "scaled.onnx", alpha=0.5)
    assert cli("compile", model, "--placer", "greedy", "-o", tmp_path / "s.atp", "-q").code == 0
    program = load_program(tmp_path / "s.atp")
    assert [s["name"] for s in program.meta["model"]["stripped_initializers"]] == ["w1"]
    restored = onnx.load_from_string(original_bytes(program))
    w0 = next(t for t in restored.graph.initializer if t.name == "w0")
    assert numpy_helper.to_array(w0).tobytes() == numpy_helper.to_array(next(t for t in onnx.load(str(model)).graph.initializer if t.name == "w0")).tobytes()


def test_a_stripped_entry_naming_no_array_is_refused(compiled, cli, tmp_path):
    from analogc.runtime.format.program import save_program

    _, atp = compiled
    program = load_program(atp)
    program.meta["model"]["stripped_initializers"][0]["array"] = "weight/nothing"
    save_program(program, tmp_path / "bad.atp")
    assert_user_error(cli("plan", tmp_path / "bad.atp"), "bad.atp", "stripped initializer")


def test_the_header_check_refuses_arrays_that_differ_from_the_written_ones(compiled):
    """compile's check before the rename reads arrays.npz's headers, not its data."""
    from analogc.errors import AnalogcError

    _, atp = compiled
    program = load_program(atp)
    assert load_program(atp, arrays=program.arrays).meta == program.meta
    for change in ({"weight/extra": np.zeros(2, np.float32)}, {next(iter(program.arrays)): np.zeros(3, np.float64)}):
        with pytest.raises(AnalogcError, match="does not hold the arrays"):
            load_program(atp, arrays={**program.arrays, **change})


def test_only_the_frontends_unchanged_arrays_stand_in_for_the_initializer(tmp_path):
    """strip_weights compares a layer's weights with the frontend's read-only view of the
    initializer (no copy of raw_data); a writable array (one a converter could have
    changed) is not trusted: the initializer's own bytes decide."""
    from types import SimpleNamespace

    from analogc.mapper.strip_weights import strip_weights

    model = onnx.load(str(big_model(tmp_path / "big.onnx")))
    w1 = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w1"))
    other = w1 + np.float32(1)
    layer = SimpleNamespace(name="fc1", weight=other)
    writable = {"w1": other.copy()}
    assert strip_weights(model, [layer], writable)[1] == []
    assert strip_weights(model, [SimpleNamespace(name="fc1", weight=w1)], writable)[1] == [
        {"name": "w1", "array": "weight/fc1", "transpose": False}
    ]
    read_only = np.frombuffer(w1.tobytes(), dtype=np.float32).reshape(w1.shape)
    assert [s["name"] for s in strip_weights(model, [SimpleNamespace(name="fc1", weight=w1)], {"w1": read_only})[1]] == ["w1"]
