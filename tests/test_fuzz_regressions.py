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
    """`plan` read layer fields that the program check did not require (KeyError): now
    they are recomputed from the blocks when absent, and refused when of the wrong type."""
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["layers"][0].pop("row_split")))
    assert cli("plan", tmp_path / "p.atp", "--json").code == 0
    (tmp_path / "q.atp").write_bytes(corpus.with_members(True, lambda m: m["layers"][0].__setitem__("row_split", "yes")))
    assert_user_error(cli("plan", tmp_path / "q.atp"), "inconsistent tile program: layer 'fc' has a bad row_split or col_split")


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


def fixed_batch_model(path, batch, inputs=("x",)):
    """inputs[batch, 8] summed -> Gemm 8->3 -> y[batch, 3]."""
    rng = np.random.default_rng(5)
    helper = onnx.helper
    nodes, total = [], inputs[0]
    for index, name in enumerate(inputs[1:]):
        nodes.append(helper.make_node("Add", [total, name], [f"s{index}"]))
        total = f"s{index}"
    nodes.append(helper.make_node("Gemm", [total, "W", "b"], ["y"], name="fc"))
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [batch, 8]) for n in inputs],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [batch, 3])],
        [onnx.numpy_helper.from_array(rng.normal(size=(8, 3)).astype(np.float32), "W"),
         onnx.numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_fixed_batch_padding_with_two_inputs(tmp_path, cli):
    """run_batched reused its `pad` flag for the zeros: the second input hit
    'truth value of an array is ambiguous' (an internal error)."""
    model = fixed_batch_model(tmp_path / "two.onnx", 4, inputs=("x", "z"))
    assert cli("compile", model, "-o", tmp_path / "two.atp", "--placer", "greedy", "-q").code == 0
    rng = np.random.default_rng(6)
    feeds = {"x": rng.random((6, 8), dtype=np.float32), "z": rng.random((6, 8), dtype=np.float32)}  # 6 = 4 + 2 padded
    np.savez(tmp_path / "in.npz", **feeds)
    result = cli("run", tmp_path / "two.atp", "--input", tmp_path / "in.npz", "--output", tmp_path / "y.npy", "--ideal", "-q")
    assert result.code == 0, result.err
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = np.concatenate([session.run(None, {k: np.concatenate([v[s:s + 4], np.zeros((max(0, s + 4 - 6), 8), np.float32)]) for k, v in feeds.items()})[0] for s in (0, 4)])[:6]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-5)


def test_enormous_fixed_batch_is_refused_before_padding(tmp_path, cli):
    """A model declaring a batch of 2^30 made `run` pad two examples to 2^30 rows."""
    model = fixed_batch_model(tmp_path / "big.onnx", 1 << 30)
    assert cli("compile", model, "-o", tmp_path / "big.atp", "--placer", "greedy", "-q").code == 0
    np.save(tmp_path / "x.npy", np.ones((2, 8), np.float32))
    result = cli("run", tmp_path / "big.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_user_error(result, "big.atp: its fixed batch of 1073741824 examples need", "of memory")
    assert not (tmp_path / "y.npy").exists()


def test_program_without_inference_instructions(tmp_path, cli):
    """The check let `instructions: {}` through and the dataflow check hit a KeyError."""
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["instructions"].pop("inference")))
    assert_user_error(cli("plan", tmp_path / "p.atp"), "p.atp: inconsistent tile program: no list of inference instructions")


def test_host_segment_that_is_not_onnx(tmp_path, cli):
    """With fresh checksums, a corrupt host member reached the cost model's parser
    (DecodeError, an internal error) in `plan`."""
    members = corpus.program_members()
    host = next(n for n in members if n.startswith("host/"))
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, replace={host: mutate(members[host], [("flip", 0.0, 0)])}))
    assert_user_error(cli("plan", tmp_path / "p.atp"), "p.atp: inconsistent tile program: host segment", "is not a valid ONNX model")


def test_model_input_without_a_shape_key(tmp_path, cli):
    """`run` read inputs[0]["shape"] that the check let be absent (KeyError)."""
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["model"]["inputs"][0].pop("shape")))
    np.save(tmp_path / "x.npy", np.zeros((3, 64), np.float32))
    result = cli("run", tmp_path / "p.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_user_error(result, "p.atp: inconsistent tile program: model inputs entry 'x' has no shape")


def test_run_of_a_program_without_array_shape(tmp_path, cli):
    """The cost model read layer["array_shape"], which the check lets be absent."""
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["layers"][0].pop("array_shape")))
    np.save(tmp_path / "x.npy", np.zeros((3, 64), np.float32))
    assert cli("run", tmp_path / "p.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "-q").code == 0


def test_program_that_reads_a_block_before_loading_its_layer(tmp_path, cli):
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["instructions"]["inference"].pop(1)))  # the load of fc
    assert_user_error(cli("plan", tmp_path / "p.atp"), "p.atp: inconsistent tile program: block 0 is read while layer None is loaded, not 'fc'")


def test_program_whose_outputs_disagree_with_its_original_model(tmp_path, cli):
    """Renaming the model output to the input made `run` compare (3, 64) with (3, 10)."""
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["model"]["outputs"][0].__setitem__("name", "x")))
    np.save(tmp_path / "x.npy", np.zeros((3, 64), np.float32))
    result = cli("run", tmp_path / "p.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_user_error(result, "p.atp: the program's outputs ((3, 64)) disagree with its original model's ((3, 10))")
    assert not (tmp_path / "y.npy").exists()


def test_plan_of_a_program_without_first_fit_traffic(tmp_path, cli):
    (tmp_path / "p.atp").write_bytes(corpus.with_members(True, lambda m: m["placement"].pop("traffic_greedy")))
    assert cli("plan", tmp_path / "p.atp", "--json").code == 0


# ---------------------------------------------------------------- sweep folders


def sweep_folder(tmp_path, parquet_edit=None, record_edit=None):
    """The fuzzer's finished sweep folder (tests/fuzz_properties.py) written to tmp_path,
    its table or sweep.json edited; jobs a resume submits run in this process."""
    import io
    import json

    import pyarrow.parquet as pq

    from tests.fuzz_properties import sweep_seed

    for rel, content in sweep_seed().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content)
    if parquet_edit:
        table = parquet_edit(pq.read_table(io.BytesIO(sweep_seed()["out/results.parquet"])))
        pq.write_table(table, tmp_path / "out" / "results.parquet")
    if record_edit:
        record = json.loads(sweep_seed()["out/sweep.json"])
        record_edit(record)
        (tmp_path / "out" / "sweep.json").write_text(json.dumps(record))
    return tmp_path


def sweep_commands(cli, tmp_path, monkeypatch):
    from tests.fuzz_properties import SWEEP_PLOT, SWEEP_RESUME, sweeps_in_process

    monkeypatch.chdir(tmp_path)
    with sweeps_in_process():
        return cli(*SWEEP_PLOT), cli(*SWEEP_RESUME)


def test_results_table_without_a_seed_column(tmp_path, cli, monkeypatch):
    """sweep-plot met the missing column only when grouping (KeyError, exit 1)."""
    sweep_folder(tmp_path, lambda t: t.drop_columns(["seed"]))
    for result in sweep_commands(cli, tmp_path, monkeypatch):
        assert_user_error(result, "results.parquet: not a results table of analogc sweep (no column 'seed')")
    assert not (tmp_path / "plot.png").exists()


def test_results_table_with_an_empty_seed(tmp_path, cli, monkeypatch):
    """A null seed of an ok row reached sorted() in sweep-plot (TypeError, exit 1)."""
    import pyarrow as pa

    sweep_folder(tmp_path, lambda t: t.set_column(t.column_names.index("seed"), "seed", pa.array([None, 1, 1, 1], pa.int64())))
    for result in sweep_commands(cli, tmp_path, monkeypatch):
        assert_user_error(result, "not a results table of analogc sweep (column 'seed' has empty cells)")


def test_results_table_with_a_swept_column_of_another_type(tmp_path, cli, monkeypatch):
    """A resume kept the old rows and, once the lost job had run, could not write them back
    under the sweep's schema (ArrowInvalid, exit 1): refused before any job now."""
    import pyarrow as pa

    def edit(table):
        table = table.slice(0, 3)  # the fourth job is lost: the resume runs it
        values = [str(v) for v in table["run.drift_time"].to_pylist()]
        return table.set_column(table.column_names.index("run.drift_time"), "run.drift_time", pa.array(values))

    sweep_folder(tmp_path, edit)
    before = (tmp_path / "out" / "results.parquet").read_bytes()
    _, resume = sweep_commands(cli, tmp_path, monkeypatch)
    assert_user_error(resume, "not a results table of analogc sweep (column 'run.drift_time' is string, expected double)")
    assert (tmp_path / "out" / "results.parquet").read_bytes() == before


def test_sweep_record_of_another_sweep_with_a_bad_program_field(tmp_path, cli, monkeypatch):
    """Describing how another sweep differs called .get on its `program` (AttributeError)."""

    def edit(record):
        record["fingerprint"] = "0" * 64
        record["program"] = None

    sweep_folder(tmp_path, record_edit=edit)
    _, resume = sweep_commands(cli, tmp_path, monkeypatch)
    assert_user_error(resume, "out: holds results of a different sweep (another program: sha256 ?…")


def test_string_attribute_that_is_not_utf8(tmp_path, cli):
    """A LinearRegressor's post_transform with a non-UTF-8 byte: compile must not crash
    decoding it; onnxruntime refuses the value, so compile refuses the program in one
    error line (never accepted at compile and refused at run)."""
    model = onnx.load_from_string(corpus.chain_model([], {}))
    model.graph.node.append(onnx.helper.make_node("LinearRegressor", ["x"], ["y"], domain="ai.onnx.ml", targets=4,
                                                  coefficients=[0.1] * 16, intercepts=[0.5] * 4, post_transform="PROBIT"))
    model.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", 1))
    next(a for a in model.graph.node[0].attribute if a.name == "post_transform").s = b"PR\xcfBIT"
    onnx.save(model, tmp_path / "m.onnx")
    assert_user_error(cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.atp", "-q"), "m.onnx", "onnxruntime cannot load")
    assert not (tmp_path / "m.atp").exists()
