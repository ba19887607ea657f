"""One test per bug that fuzzing (tests/fuzz_properties.py) found in the loaders; each
was an internal error (exit 1) or a second stderr line before its fix."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from tests.conftest import assert_user_error
from tests.corpus import make_corpus as corpus
from tests.fuzz_properties import mutate, npy_bytes


def test_npy_header_that_breaks_numpys_tokenizer(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.atp").write_bytes(corpus.program_bytes())
    data = mutate(npy_bytes(np.array([None, {}], dtype=object)), [("duplicate", 0.0, 41)])
    (tmp_path / "x.npy").write_bytes(data)
    assert_user_error(cli("run", "p.atp", "--input", "x.npy", "--output", "y.npy"), "x.npy: not a readable .npy array")
    assert not (tmp_path / "y.npy").exists()


def test_raw_data_longer_than_the_dims(tmp_path, cli):
    """The checker refuses too little raw data but let one byte too many reach numpy."""
    model = corpus.model_proto()
    model.graph.initializer[0].raw_data = b"\x00" + model.graph.initializer[0].raw_data
    onnx.save(model, tmp_path / "m.onnx")
    assert_user_error(cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.atp"), "m.onnx: tensor 'W' holds 129 bytes, its dims [8, 4] need 128")


def test_typed_data_count_that_does_not_match_the_dims(tmp_path, cli):
    model = corpus.model_proto()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.float_data[:] = [1.0] * 31
    onnx.save(model, tmp_path / "m.onnx")
    assert_user_error(cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.atp"), "tensor 'W' holds 31 values in float_data, its dims [8, 4] need 32")


def test_plan_of_a_program_without_row_split(tmp_path, cli):
    """`plan` read layer fields that the program check did not require (KeyError)."""
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["layers"][0].pop("row_split")))
    assert_user_error(cli("plan", tmp_path / "p.atp"), "inconsistent tile program: layer 'fc' lacks row_split or col_split")


def test_program_target_without_a_name(tmp_path, cli):
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["target"].pop("name")))
    assert_user_error(cli("plan", tmp_path / "p.atp"), "p.atp: target: a target spec needs a name")


def test_library_warnings_do_not_add_stderr_lines(tmp_path, cli):
    """onnx warns about unknown external-data keys; the user still gets one line."""
    model = onnx.ModelProto.FromString(corpus.external("absent.bin"))
    entry = model.graph.initializer[0].external_data.add()
    entry.key, entry.value = "other", "x"
    onnx.save(model, tmp_path / "m.onnx")
    assert_user_error(cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.atp"), "external data file 'absent.bin' of tensor 'W' is missing")


def test_zero_sized_product_stays_on_the_host_and_matches_onnxruntime(tmp_path, cli):
    """A MatMul with a [8, 0] weight was mapped to a layer whose program then failed to load."""
    w = np.zeros((8, 0), np.float32)
    model = onnx.ModelProto.FromString(corpus.chain_model(
        [onnx.helper.make_node("MatMul", ["x", "W"], ["m"]), onnx.helper.make_node("Concat", ["m", "x"], ["y"], axis=1)],
        {"W": w}, k=8, n=8,
    ))
    onnx.save(model, tmp_path / "z.onnx")
    assert cli("compile", tmp_path / "z.onnx", "-o", tmp_path / "z.atp", "--placer", "greedy", "-q").code == 0
    x = np.random.default_rng(0).random((3, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli("run", tmp_path / "z.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--ideal", "-q").code == 0
    expected = ort.InferenceSession(str(tmp_path / "z.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    assert expected.shape == (3, 8)


def test_float_input_times_int_weight_is_refused_at_compile(tmp_path, cli):
    """Typed shape inference: this model compiled, and onnxruntime refused it only at `run`."""
    (tmp_path / "m.onnx").write_bytes(corpus.model_bytes(w=np.ones((8, 4), np.int32)))
    assert_user_error(cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.atp"), "B has inconsistent type tensor(int32)")


def test_names_that_are_not_utf8(tmp_path, cli):
    """protobuf returns such a string field as bytes; writing program.json then failed."""
    data = corpus.model_bytes()
    at = data.find(b"fc")
    (tmp_path / "m.onnx").write_bytes(data[:at] + b"\xff\xfe" + data[at + 2 :])
    assert_user_error(cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.atp"), "m.onnx: field onnx.NodeProto.name holds text that is not valid UTF-8")
    assert not (tmp_path / "m.atp").exists()
