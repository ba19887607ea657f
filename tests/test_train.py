"""`analogc train` and `analogc export` end to end: learning, the trained program's device
state, export against run --ideal, checkpoints and resume, refusals."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from analogc.data import load_dataset
from analogc.runtime.format.program import load_program
from analogc.runtime.training.loop_kernel import HAVE_NUMBA
from analogc.runtime.training.trainer import Trainer, TrainOptions

from .conftest import MODELS, assert_user_error


@pytest.fixture(scope="module")
def digits_program(tmp_path_factory):
    from analogc.cli import main

    path = tmp_path_factory.mktemp("train") / "digits.atp"
    assert main(["compile", str(MODELS / "digits_mlp.onnx"), "-o", str(path), "-q"]) == 0
    return path


@pytest.fixture(scope="module")
def trained(digits_program, tmp_path_factory):
    """digits MLP trained from random init on 400 examples, with the float baseline."""
    from analogc.cli import main
    import contextlib
    import io

    out = tmp_path_factory.mktemp("trained") / "trained.atp"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["train", str(digits_program), "--data", "digits", "--init", "random", "--limit", "400",
                     "--epochs", "2", "--baseline", "--seed", "3", "-o", str(out), "--json"])
    assert code == 0
    return out, json.loads(buffer.getvalue())


def test_training_from_random_init_beats_chance_widely(trained):
    _, result = trained
    assert [row["epoch"] for row in result["epochs"]] == [1, 2]
    for row in result["epochs"]:
        for key in ("train_loss", "test_accuracy", "examples_per_s", "software_baseline_accuracy"):
            assert isinstance(row[key], float), key
    # 10 classes: chance is 10%. A few hundred examples on the chip reach far beyond it.
    assert result["epochs"][0]["test_accuracy"] > 0.3
    assert result["epochs"][-1]["test_accuracy"] > 0.5
    assert result["epochs"][-1]["train_loss"] < result["epochs"][0]["train_loss"]
    # Final numbers at the top (the same shape as test_accuracy), per epoch in each row.
    assert result["software_baseline_accuracy"] == result["epochs"][-1]["software_baseline_accuracy"]
    assert result["test_accuracy"] == result["epochs"][-1]["test_accuracy"]
    assert result["transfer_schedule"] == {"rule": "pulses", "pulses_per_cell": 125.0}
    assert "transfer_interval" not in result and "transfer_pulses" not in result
    assert result["trained_layers"] == ["fc1", "fc2"] and result["frozen_host_segments"] == []


def test_run_on_the_trained_program_measures_the_chip_as_trained(trained, cli):
    path, result = trained
    run = cli("run", path, "--data", "digits", "--json", "--seed", "3")
    assert run.code == 0, run.err
    # Same devices, same seed, same batches: exactly the accuracy training reported.
    assert json.loads(run.out)["accuracy"] == result["epochs"][-1]["test_accuracy"]


def test_export_holds_the_trained_weights(trained, cli, tmp_path):
    path, _ = trained
    x = load_dataset("digits").x_test.reshape(-1, 64).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli("run", path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--ideal").code == 0
    result = cli("export", path, "-o", tmp_path / "trained.onnx")
    assert result.code == 0, result.err
    session = ort.InferenceSession(str(tmp_path / "trained.onnx"), providers=["CPUExecutionProvider"])
    (exported,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(exported, np.load(tmp_path / "y.npy"), rtol=1e-5, atol=1e-5)
    # And the weights really moved away from the compiled model.
    original = ort.InferenceSession(str(MODELS / "digits_mlp.onnx"), providers=["CPUExecutionProvider"])
    (before,) = original.run(None, {original.get_inputs()[0].name: x})
    assert np.abs(before - exported).max() > 0.1


@pytest.mark.parametrize("model", ["digits_mlp.onnx", "digits_conv.onnx", "fashion_mlp.onnx"])
def test_export_of_a_compiled_program_reproduces_the_original(model, cli, tmp_path):
    assert cli("compile", MODELS / model, "--target", "tiny", "-o", tmp_path / "m.atp", "-q").code == 0
    assert cli("export", tmp_path / "m.atp", "-o", tmp_path / "m.onnx", "-q").code == 0
    exported = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(MODELS / model), providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 5 for d in original.get_inputs()[0].shape]
    x = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    name = original.get_inputs()[0].name
    for a, b in zip(exported.run(None, {name: x}), original.run(None, {name: x})):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_same_seed_trains_bit_identically(digits_program, cli, tmp_path):
    for name in ("a", "b"):
        assert cli("train", digits_program, "--data", "digits", "--limit", "150", "--seed", "5", "-o", tmp_path / f"{name}.atp", "-q").code == 0
    a, b = load_program(tmp_path / "a.atp"), load_program(tmp_path / "b.atp")
    assert a.arrays.keys() == b.arrays.keys()
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key]), key


def make_trainer(program_path, checkpoint, resume=False, every=170, training=None, epochs=2, baseline=True):
    data = load_dataset("digits")
    program = load_program(program_path)
    program.meta["target"]["training"].update(training or {})
    options = TrainOptions(epochs=epochs, init="random", seed=11, limit=500, baseline=baseline, checkpoint_dir=checkpoint,
                           checkpoint_every=every, resume=resume, data_name="digits")
    x_train = {"input": data.x_train.reshape(-1, 64)}
    x_test = {"input": data.x_test.reshape(-1, 64)}
    name = program.meta["model"]["inputs"][0]["name"]
    return Trainer(program, {name: x_train["input"]}, data.y_train, {name: x_test["input"]}, data.y_test, options)


SCHEDULES = {
    "every 1000 examples, decaying η": {"transfer_pulses": 0.0, "transfer_interval": 1000, "learning_rate_decay": 0.5},
    "adaptive, 40 pulses per cell": {"transfer_pulses": 40.0},
}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_an_interrupted_run_resumes_bit_identically(digits_program, tmp_path, schedule):
    training = SCHEDULES[schedule]
    straight = make_trainer(digits_program, None, training=training)
    expected = straight.train()

    interrupted = make_trainer(digits_program, tmp_path / "ckpt", training=training)

    def stop(epoch, done, total, *_):
        if epoch == 1 and done >= 256:  # mid-way through the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted.train(progress=stop)
    resumed = make_trainer(digits_program, tmp_path / "ckpt", resume=True, training=training)
    assert resumed.position.epoch == 1 and 0 < resumed.position.index < 256
    result = resumed.train()
    strip = lambda rows: [{k: v for k, v in r.items() if "per_s" not in k and k != "seconds"} for r in rows]  # noqa: E731
    assert strip(result["epochs"]) == strip(expected["epochs"])
    a, b = straight.current_program(), resumed.current_program()
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key]), key


def test_the_learning_rate_decays_per_epoch_on_chip_and_baseline_alike(digits_program):
    steady = make_trainer(digits_program, None, epochs=1).train()["epochs"]
    rows = make_trainer(digits_program, None, training={"learning_rate_decay": 0.0}, epochs=2).train()["epochs"]
    assert [row["learning_rate"] for row in rows] == [0.05, 0.0]
    # The decay starts after the first epoch: that epoch is the undecayed run's, bit for bit.
    for key in ("train_loss", "test_accuracy", "software_baseline_accuracy", "pulses_total"):
        assert rows[0][key] == steady[0][key], key
    # η = 0 in the second epoch: no pulse on the chip, no step in the float baseline.
    assert rows[1]["pulses_total"] == rows[0]["pulses_total"] > 0
    assert rows[1]["software_baseline_accuracy"] == rows[0]["software_baseline_accuracy"]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-loop", "per-example-step"])
def test_adaptive_transfer_moves_each_layer_when_its_own_pulses_reach_the_threshold(digits_program, compiled):
    per_cell = 40.0
    trainer = make_trainer(digits_program, None, training={"transfer_pulses": per_cell}, epochs=1, baseline=False)
    assert (trainer.compiled is not None) == HAVE_NUMBA
    if not compiled:
        trainer.compiled = None  # the per-example path (`step`), as without numba
    events = {layer.name: [] for layer in trainer.layers}
    for layer in trainer.layers:
        def update(*args, layer=layer, original=layer.update):
            before = layer.state.pulses_since_transfer
            original(*args)  # (the compiled loop sets last_fired itself)
            layer.last_fired = layer.state.pulses_since_transfer - before

        def transfer(rng, key=None, layer=layer, original=layer.transfer):
            events[layer.name].append((layer.state.pulses_since_transfer, layer.last_fired))
            original(rng, key)

        layer.update, layer.transfer = update, transfer
    result = trainer.train()
    for layer in trainer.layers:
        threshold = per_cell * layer.w.size  # cells of the layer's array (bias row included)
        assert events[layer.name], layer.name
        for since, last in events[layer.name]:
            assert since >= threshold > since - last  # at the first example that reached it
        assert layer.transfers == len(events[layer.name]) == result["epochs"][0]["transfers_by_layer"][layer.name]
        assert layer.state.pulses_since_transfer < threshold
    # The output layer takes more pulses per cell, so it moves more often.
    counts = [len(events[layer.name]) for layer in trainer.layers]
    assert counts[-1] > counts[0]


def test_resume_refuses_a_checkpoint_of_another_run(digits_program, cli, tmp_path):
    args = ["train", digits_program, "--data", "digits", "--limit", "100", "--checkpoint", tmp_path / "c", "-o", tmp_path / "t.atp", "-q"]
    assert cli(*args, "--seed", "1").code == 0
    assert_user_error(cli(*args, "--seed", "2", "--resume"), "belongs to another run: --seed was 1, now 2")
    # Several settings: each one named; the program is named, not shown (a digest).
    other = tmp_path / "other.atp"
    assert cli("compile", MODELS / "digits_mlp.onnx", "--target", "tiny", "-o", other, "-q").code == 0
    args[1] = other
    result = cli(*args, "--seed", "1", "--resume", "--learning-rate", "0.02")
    assert_user_error(result, "belongs to another run: the program differs; the learning rate was 0.05, now 0.02")


def test_train_refusals(digits_program, cli, tmp_path):
    assert_user_error(cli("train", digits_program, "--data", "digits", "--resume"), "--resume needs --checkpoint")
    assert_user_error(cli("train", digits_program, "--data", "digits", "--epochs", "0"), "--epochs (the spec's [training] epochs) must be in [1, 100000], got")
    assert_user_error(cli("train", digits_program, "--data", "digits", "--epochs", str(10**20)), "--epochs (the spec's [training] epochs) must be in [1, 100000], got")
    for bad in ("-0.1", "101", "nan"):  # the knob's range, as a spec file would be held to it
        assert_user_error(cli("train", digits_program, "--data", "digits", "--learning-rate", bad), "--learning-rate (the spec's [training] learning_rate) must be")
    assert_user_error(cli("train", digits_program, "--data", "digits", "-o", tmp_path / "x.onnx"), "must end in .atp")
    (tmp_path / "file").write_text("x")
    assert_user_error(cli("train", digits_program, "--data", "digits", "--checkpoint", tmp_path / "file"), "must be a folder")
    # A folder under a file: NotADirectoryError at the first checkpoint, after training (exit 1).
    assert_user_error(cli("train", digits_program, "--data", "digits", "--limit", "10", "--checkpoint", tmp_path / "file" / "sub",
                          "-o", tmp_path / "o.atp"), "file", "not a folder")
    assert cli("compile", MODELS / "digits_mlp.onnx", "--target", "hermes-64", "-o", tmp_path / "h.atp", "-q").code == 0
    assert_user_error(cli("train", tmp_path / "h.atp", "--data", "digits", "-o", tmp_path / "o.atp"), "does not support in-situ training")
    assert not (tmp_path / "o.atp").exists()


def test_a_conv_model_trains_its_dense_layer_and_says_what_is_frozen(cli, tmp_path):
    assert cli("compile", MODELS / "digits_conv.onnx", "-o", tmp_path / "c.atp", "-q").code == 0
    result = cli("train", tmp_path / "c.atp", "--data", "digits", "--limit", "300", "-o", tmp_path / "t.atp")
    assert result.code == 0, result.err
    said = " ".join(result.out.split())  # (rich wraps long lines)
    assert "frozen (not trained, run on the chip once per example): host segments" in said
    assert "convolution layers conv (on the tiles, read as programmed)" in said
    info = load_program(tmp_path / "t.atp").meta["training"]
    assert info["frozen_host_segments"] and info["trained_layers"] == ["fc"] and info["frozen_layers"] == ["conv"]
    # The exported model holds the chip's conv (as a Conv) and trained dense weights:
    # onnxruntime on it gives what `run --ideal` gives on the trained program.
    assert cli("export", tmp_path / "t.atp", "-o", tmp_path / "t.onnx").code == 0
    x = np.random.default_rng(0).uniform(0, 1, (6, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli("run", tmp_path / "t.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--ideal", "-q").code == 0
    exported = onnx.load(str(tmp_path / "t.onnx"))
    assert [n.op_type for n in exported.graph.node][:2] == ["Conv", "Relu"]
    session = ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], np.load(tmp_path / "y.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p.arrays.pop("device/fc1/v"), "without its 'v' array"),
        (lambda p: p.arrays.__setitem__("device/fc1/g_plus", -p.arrays["device/fc1/g_plus"] - 1), "negative values"),
        (lambda p: p.arrays.__setitem__("device/fc2/dv_up", p.arrays["device/fc2/dv_up"][:-1]), "expected float32"),
        (lambda p: p.arrays.__setitem__("device/fc2/faults_plus", p.arrays["device/fc2/faults_plus"] + 7), "unknown fault codes"),
        (lambda p: p.layer("fc1")["device"].__setitem__("sign", 0.5), "no valid device entry"),
        (lambda p: p.arrays.__setitem__("device/fc1/v", np.full_like(p.arrays["device/fc1/v"], np.nan)), "NaN or Inf"),
        # A conductance no device reaches: run read it as Inf and returned NaN.
        (lambda p: p.arrays.__setitem__("device/fc1/g_minus", p.arrays["device/fc1/g_minus"] + 1e300), "above g_max"),
        # A negative drift exponent grows G with time: NaN outputs after --drift-time 1e6.
        (lambda p: p.arrays.__setitem__("device/fc2/nu_minus", p.arrays["device/fc2/nu_minus"] - 50), "negative values"),
    ],
)
def test_damaged_device_state_is_refused(trained, cli, tmp_path, edit, message):
    from analogc.runtime.format.program import save_program

    program = load_program(trained[0])
    edit(program)
    save_program(program, tmp_path / "bad.atp")  # fresh checksums: only the structure check can catch it
    assert_user_error(cli("run", tmp_path / "bad.atp", "--data", "digits"), "bad.atp", message)


def test_training_cost_counts_every_pulse_on_its_tile(trained):
    _, result = trained
    cost = result["cost"]
    assert cost["counts"]["pulses"] == result["epochs"][-1]["pulses_total"] > 0
    assert cost["energy_per_example_j"] > 0 and cost["latency_per_example_s"] > 0
    assert set(cost["energy_by_phase_j"]) >= {"forward", "backward", "update"}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape", "negative_drift", "above_g_max"])
def test_a_damaged_checkpoint_is_refused(digits_program, cli, tmp_path, damage):
    args = ["train", digits_program, "--data", "digits", "--limit", "100", "--checkpoint", tmp_path / "c", "-o", tmp_path / "t.atp", "-q"]
    assert cli(*args).code == 0
    path = tmp_path / "c" / "checkpoint.npz"
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    else:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        if damage == "wrong_shape":
            arrays["device/fc1/v"] = arrays["device/fc1/v"][:3]
        elif damage == "negative_drift":
            arrays["device/fc1/nu_plus"] = arrays["device/fc1/nu_plus"] - 1
        else:  # the rule trained programs follow (program_check), now checkpoints too
            arrays["device/fc1/g_minus"] = arrays["device/fc1/g_minus"] + 1e30
        np.savez(path, **arrays)
    result = cli(*args, "--resume")
    assert_user_error(result, "checkpoint")
    if damage in ("negative_drift", "above_g_max"):
        assert "nu_plus' of layer 'fc1' has negative values" in result.err or "above g_max" in result.err


@pytest.mark.parametrize(
    "key, value", [("transfers_by_layer", [1]), ("pulses_total", "x"), ("seconds", float("nan")), ("weight_ranges", {"fc1": "wide"}), ("extra", 1)]
)
def test_a_checkpoint_with_a_damaged_history_row_is_refused(digits_program, cli, tmp_path, key, value):
    """Resuming a finished run printed the checkpoint's last row as it was: a list of
    transfers or a string count crashed the summary (exit 1) after writing the program,
    and NaN went into program.json and the --json output."""
    args = ["train", digits_program, "--data", "digits", "--limit", "50", "--checkpoint", tmp_path / "c", "-o", tmp_path / "t.atp"]
    assert cli(*args, "-q").code == 0
    path = tmp_path / "c" / "checkpoint.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["position"]["history"][-1][key] = value
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    (tmp_path / "t.atp").unlink()
    assert_user_error(cli(*args, "--resume"), "checkpoint.npz", "damaged", key)
    assert not (tmp_path / "t.atp").exists()


@pytest.mark.parametrize("tail, trains", [("Sin", False), ("ArgMax", True)])
def test_only_label_ops_may_follow_the_trained_logits(cli, tmp_path, tail, trains):
    """The loss is on the last layer's logits: a trailing Sin would change the decision
    unseen (refused); a label ArgMax keeps it (trains)."""
    from onnx import TensorProto, helper

    from .mapper.onnx_builders import init, make_model, vi, weight

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["logits"], name="fc")]
    if tail == "Sin":
        nodes.append(helper.make_node("Sin", ["logits"], ["y"]))
        out = vi("y", ["N", 10])
    else:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["y"], axis=1, keepdims=0))
        out = vi("y", ["N"], TensorProto.INT64)
    model = make_model(nodes, [vi("x", ["N", 64])], [out], [init("W", weight(rng, 64, 10)), init("b", np.zeros(10, np.float32))])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    assert cli("compile", path, "-o", tmp_path / "m.atp", "-q").code == 0
    result = cli("train", tmp_path / "m.atp", "--data", "digits", "--limit", "50", "-o", tmp_path / "t.atp", "-q")
    if trains:
        assert result.code == 0, result.err
    else:
        assert_user_error(result, "computes Sin")
        assert not (tmp_path / "t.atp").exists()


@pytest.mark.parametrize("op, attrs", [("Elu", {"alpha": 0.7}), ("Selu", {}), ("Softplus", {}), ("Softsign", {}), ("HardSigmoid", {"alpha": 0.3}),
                                       ("SiLU", {}), ("GELU", {}), ("GELU_dynamo", {}), ("GELU_tanh", {})])
def test_other_hidden_activations_train_and_export(op, attrs, cli, tmp_path):
    """A 64-24-10 network with another hidden activation: both layers train on the chip
    (the activation is fused, not a host segment), the chip learns, and export of the
    trained program agrees with run --ideal on it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(21)
    written = {  # as exporters write them (GELU: torch's TorchScript and dynamo exporters before opset 20)
        "SiLU": [helper.make_node("Sigmoid", ["h"], ["g"]), helper.make_node("Mul", ["h", "g"], ["a"])],
        "GELU": [helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]), helper.make_node("Add", ["e", "one"], ["p"]),
                 helper.make_node("Mul", ["h", "p"], ["m"]), helper.make_node("Mul", ["m", "half"], ["a"])],
        "GELU_dynamo": [helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]), helper.make_node("Add", ["e", "one"], ["p"]),
                        helper.make_node("Mul", ["half", "p"], ["m"]), helper.make_node("Mul", ["h", "m"], ["a"])],
        "GELU_tanh": [helper.make_node("Pow", ["h", "three"], ["h3"]), helper.make_node("Mul", ["kappa", "h3"], ["k3"]), helper.make_node("Add", ["h", "k3"], ["i"]),
                      helper.make_node("Mul", ["beta", "i"], ["s"]), helper.make_node("Tanh", ["s"], ["t"]), helper.make_node("Add", ["one", "t"], ["p"]),
                      helper.make_node("Mul", ["h", "p"], ["m"]), helper.make_node("Mul", ["half", "m"], ["a"])],
    }
    act = written.get(op) or [helper.make_node(op, ["h"], ["a"], name="act", **attrs)]
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1"), *act, helper.make_node("Gemm", ["a", "W2", "b2"], ["y"], name="fc2")]
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, (64, 24)).astype(np.float32), "W1"), numpy_helper.from_array(np.zeros(24, np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.2, (24, 10)).astype(np.float32), "W2"), numpy_helper.from_array(np.zeros(10, np.float32), "b2"),
             *(numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("sqrt2", np.sqrt(2)), ("one", 1.0), ("half", 0.5), ("three", 3.0),
                                                                        ("kappa", 0.044715), ("beta", np.sqrt(2 / np.pi))))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    assert cli("compile", tmp_path / "m.onnx", "--target", "tiny", "--placer", "greedy", "-o", tmp_path / "m.atp", "-q").code == 0
    result = cli("train", tmp_path / "m.atp", "--data", "digits", "--init", "random", "--limit", "600", "-o", tmp_path / "t.atp", "--json", "-q")
    assert result.code == 0, result.err
    trained = json.loads(result.out)
    assert trained["trained_layers"] == ["fc1", "fc2"] and trained["epochs"][0]["test_accuracy"] > 0.3
    x = load_dataset("digits").x_test.reshape(-1, 64).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert cli("run", tmp_path / "t.atp", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--ideal", "-q").code == 0
    assert cli("export", tmp_path / "t.atp", "-o", tmp_path / "t.onnx", "-q").code == 0
    session = ort.InferenceSession(str(tmp_path / "t.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], np.load(tmp_path / "y.npy"), rtol=1e-5, atol=1e-5)


def test_resume_accepts_the_same_program_compiled_again(digits_program, tmp_path):
    """A recompile differs only in the placement solver's seconds: its checkpoint resumes."""
    from analogc.runtime.format.program import save_program

    from analogc.mapper import compile_model
    from analogc.runtime.format.spec import spec_from_dict

    make_trainer(digits_program, tmp_path / "ckpt", epochs=1, baseline=False).train()
    compiled = load_program(digits_program)
    again = compile_model(MODELS / "digits_mlp.onnx", spec_from_dict(compiled.meta["target"], origin="test"))
    again.meta["placement"]["solver"]["seconds"] += 1.5
    save_program(again, tmp_path / "again.atp")
    assert load_program(tmp_path / "again.atp").meta["program_sha256"] != load_program(digits_program).meta["program_sha256"]
    resumed = make_trainer(tmp_path / "again.atp", tmp_path / "ckpt", resume=True, epochs=1, baseline=False)
    assert resumed.position.epoch == 1  # the finished epoch was restored, not restarted


def test_a_scikit_learn_linear_classifier_trains_on_the_chip(cli, tmp_path):
    """LinearClassifier (skl2onnx's LogisticRegression, multi-class): its product is the
    layer; the labelling op left on the host keeps the scores' order, so training runs."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(22)
    node = helper.make_node("LinearClassifier", ["x"], ["label", "probabilities"], domain="ai.onnx.ml", name="logreg",
                            coefficients=rng.normal(0, 0.1, 640).tolist(), intercepts=[0.0] * 10, classlabels_ints=list(range(10)),
                            post_transform="SOFTMAX", multi_class=1)
    graph = helper.make_graph([node], "sklearn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
                               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    assert cli("compile", tmp_path / "m.onnx", "--target", "tiny", "--placer", "greedy", "-o", tmp_path / "m.atp", "-q").code == 0
    result = cli("train", tmp_path / "m.atp", "--data", "digits", "--limit", "600", "--json", "-q")
    assert result.code == 0, result.err
    trained = json.loads(result.out)
    assert trained["trained_layers"] == ["logreg"] and trained["epochs"][0]["test_accuracy"] > 0.5
