"""Bad input on the command line: exit status 2, exactly one `analogc: error:` line on
stderr that names the file or the problem, no traceback, nothing on stdout, and no file
left behind (neither the output nor a temporary file), an existing output unchanged."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from analogc.cli import main
from tests.conftest import MODELS, assert_user_error

TINY = Path(__file__).resolve().parents[1] / "target_specs" / "tiny.toml"


def gemm_model(path: Path, k: int, n: int, weight_as_input: bool = False, bias: bool = True, seed: int = 0) -> Path:
    """x[N, k] → Gemm → y[N, n]; the weight an initializer, or a graph input when asked."""
    rng = np.random.default_rng(seed)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])]
    inits = []
    if weight_as_input:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [k, n]))
    else:
        inits.append(numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), "W"))
    node_inputs = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(size=n).astype(np.float32), "b"))
        node_inputs.append("b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", node_inputs, ["y"], name="fc")],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty working folder, made current; `work.check()` after a failing command
    asserts that the folder holds exactly the files it held before."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def fails(cli, folder: Path, *argv, fragments=()):
    """Run a command that must fail as a user error, changing nothing in `folder`."""
    before = snapshot(folder)
    result = cli(*argv)
    assert_user_error(result, *fragments)
    assert result.out == "", result.out
    after = snapshot(folder)
    assert after == before, f"files changed: {set(after) ^ set(before) or 'contents'}"
    return result


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """A compiled 64→10 program (input [N, 64]) on the tiny target."""
    folder = tmp_path_factory.mktemp("prog")
    model = gemm_model(folder / "m.onnx", 64, 10)
    out = folder / "m.atp"
    assert main(["compile", str(model), "--target", "tiny", "--placer", "greedy", "-o", str(out), "-q"]) == 0
    return out


# ---------------------------------------------------------------- compile: the model


def test_compile_missing_file(cli, work):
    fails(cli, work, "compile", "absent.onnx", "-o", "out.atp", fragments=("absent.onnx", "no such file"))


def test_compile_empty_file(cli, work):
    (work / "empty.onnx").write_bytes(b"")
    fails(cli, work, "compile", "empty.onnx", "-o", "out.atp", fragments=("empty.onnx", "empty file"))


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3, b"this is a text file, not a model\n", b"\xff" * 40],
    ids=["binary", "text", "ff"],
)
def test_compile_not_onnx(cli, work, data):
    (work / "junk.onnx").write_bytes(data)
    fails(cli, work, "compile", "junk.onnx", "-o", "out.atp", fragments=("junk.onnx", "not an ONNX model"))


def test_compile_a_real_torch_save_file_gets_the_export_hint(cli, work):
    torch = pytest.importorskip("torch")  # a tooling dependency only; the corpus has a hand-built twin
    torch.save(torch.nn.Linear(4, 2), work / "model.pt")
    fails(cli, work, "compile", "model.pt", "-o", "out.atp", fragments=("model.pt: a PyTorch file", "torch.onnx.export"))


def test_a_truncated_model_says_so_a_damaged_one_does_not(cli, work):
    whole = (MODELS / "digits_mlp.onnx").read_bytes()
    for cut in (len(whole) - 1, len(whole) // 2, 40):
        (work / "cut.onnx").write_bytes(whole[:cut])
        fails(cli, work, "compile", "cut.onnx", "-o", "out.atp", fragments=("cut.onnx: truncated ONNX file", f"ends after {cut:,} bytes"))
    damaged = bytearray(whole)
    damaged[2:6] = b"\xff\xff\xff\xff"  # an impossible length inside the first fields
    (work / "bad.onnx").write_bytes(bytes(damaged))
    result = cli("compile", work / "bad.onnx", "-o", work / "out.atp")
    assert result.code == 2 and "truncated ONNX file" not in result.err and "not an ONNX model" in result.err


def test_compile_folder_as_model(cli, work):
    (work / "dir.onnx").mkdir()
    fails(cli, work, "compile", "dir.onnx", "-o", "out.atp", fragments=("dir.onnx", "not a file"))


def test_compile_weight_as_runtime_input(cli, work):
    gemm_model(work / "winput.onnx", 8, 4, weight_as_input=True)
    result = fails(cli, work, "compile", "winput.onnx", "-o", "out.atp", fragments=("winput.onnx", "'W'", "runtime input"))
    assert "fc" in result.err


@pytest.mark.parametrize("placer", ["greedy", "cpsat"])
def test_compile_model_too_big_for_the_target(cli, work, placer):
    """200x100 without bias = 20000 cells; a 2x2 grid of 64x64 tiles holds 4 x 4096 = 16384,
    so at least ceil(20000 / 4096) = 5 tiles are needed and 4 exist."""
    (work / "small.toml").write_text("[chip]\ngrid_rows = 2\ngrid_cols = 2\ntile_rows = 64\ntile_cols = 64\n")
    gemm_model(work / "big.onnx", 200, 100, bias=False)
    (work / "out.atp").write_bytes(b"an older program")
    result = fails(
        cli, work, "compile", "big.onnx", "--target", "small.toml", "-o", "out.atp", "--placer", placer, "--time-limit", "2",
        fragments=("does not fit", "tiles", "4 usable tiles"),
    )
    assert "5" in result.err.split("needs", 1)[1].split("tiles", 1)[0], result.err


def test_compile_all_tiles_faulty(cli, work):
    (work / "allfaulty.toml").write_text(
        "[chip]\ngrid_rows = 2\ngrid_cols = 2\nfaulty_tiles = [[0, 0], [0, 1], [1, 0], [1, 1]]\n"
    )
    gemm_model(work / "m.onnx", 8, 4)
    fails(cli, work, "compile", "m.onnx", "--target", "allfaulty.toml", "-o", "out.atp", fragments=("allfaulty", "faulty"))


def test_compile_failure_leaves_an_existing_output_unchanged(cli, work):
    gemm_model(work / "winput.onnx", 8, 4, weight_as_input=True)
    (work / "out.atp").write_bytes(b"previous program")
    fails(cli, work, "compile", "winput.onnx", "-o", "out.atp")
    assert (work / "out.atp").read_bytes() == b"previous program"


# ---------------------------------------------------------------- compile: target specs


def tiny_with(**replacements) -> str:
    """tiny.toml with whole lines replaced: {"grid_rows = 10": "grid_rows = 2"}."""
    text = TINY.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


@pytest.mark.parametrize(
    "text, fragments",
    [
        (tiny_with(**{"g_max = 25.0": "g_maxx = 25.0"}), ("[pcm]", "unknown key 'g_maxx'")),
        ('name = "x"\nbogus_table = 3\n', ("unknown key 'bogus_table'",)),
        (tiny_with(**{"tile_rows = 64": 'tile_rows = "sixty-four"'}), ("[chip]", "tile_rows", "integer", "sixty-four")),
        (tiny_with(**{"drift = true": "drift = 1"}), ("[pcm]", "drift", "true or false")),
        (tiny_with(**{'bias = "analog"': 'bias = "sideways"'}), ("[chip]", "bias", "sideways")),
        (tiny_with(**{"adc_bits = 8": "adc_bits = 0"}), ("[periphery]", "adc_bits", "[1, 32]", "got 0")),
        (tiny_with(**{"dead_fraction = 0.0": "dead_fraction = 1.5"}), ("[pcm]", "dead_fraction", "1.5")),
        (tiny_with(**{"g_max = 25.0": "g_max = nan"}), ("[pcm]", "g_max", "finite")),
        ("[chip\ngrid_rows = 2\n", ("not valid TOML",)),
        ("\x00\x01\x02 binary", ("not valid TOML",)),
        (tiny_with(**{"faulty_tiles = []": "faulty_tiles = [[3, 10]]"}), ("[chip]", "faulty_tiles", "[3, 10]", "outside", "10x10")),
        (tiny_with(**{"faulty_tiles = []": "faulty_tiles = [[1, -1]]"}), ("[chip]", "faulty_tiles", "[1, -1]")),
        (tiny_with(**{"faulty_tiles = []": 'faulty_tiles = "none"'}), ("[chip]", "faulty_tiles")),
    ],
    ids=[
        "unknown-key", "unknown-table", "wrong-type", "bool-as-int", "bad-choice", "out-of-range", "fraction-above-1",
        "nan", "not-toml", "binary", "faulty-outside-grid", "faulty-negative", "faulty-not-list",
    ],
)
def test_compile_bad_target_spec(cli, work, text, fragments):
    (work / "spec.toml").write_text(text, encoding="utf-8")
    gemm_model(work / "m.onnx", 8, 4)
    fails(cli, work, "compile", "m.onnx", "--target", "spec.toml", "-o", "out.atp", fragments=("spec.toml", *fragments))


def test_compile_spec_not_utf8(cli, work):
    (work / "spec.toml").write_bytes(b"name = \"\xff\xfe\"\n")
    gemm_model(work / "m.onnx", 8, 4)
    fails(cli, work, "compile", "m.onnx", "--target", "spec.toml", "-o", "out.atp", fragments=("spec.toml",))


def test_compile_missing_target_file_and_unknown_name(cli, work):
    gemm_model(work / "m.onnx", 8, 4)
    fails(cli, work, "compile", "m.onnx", "--target", "absent.toml", "-o", "out.atp", fragments=("absent.toml", "cannot read"))
    fails(cli, work, "compile", "m.onnx", "--target", "pcm2099", "-o", "out.atp", fragments=("unknown target 'pcm2099'", "tiny"))


# ---------------------------------------------------------------- compile: the output


def test_compile_output_problems(cli, work):
    gemm_model(work / "m.onnx", 8, 4)
    fails(cli, work, "compile", "m.onnx", "-o", "out.txt", fragments=("out.txt", ".atp"))
    fails(cli, work, "compile", "m.onnx", "-o", "nowhere/out.atp", fragments=("nowhere", "does not exist"))
    (work / "d.atp").mkdir()
    fails(cli, work, "compile", "m.onnx", "-o", "d.atp", "--placer", "greedy", fragments=("d.atp", "folder"))
    fails(cli, work, "compile", "m.onnx", "--time-limit", "0", fragments=("--time-limit",))


# ---------------------------------------------------------------- run


def test_run_data_shape_does_not_fit_the_model(cli, work):
    gemm_model(work / "ten.onnx", 10, 3)
    assert cli("compile", "ten.onnx", "--placer", "greedy", "-q").code == 0
    fails(cli, work, "run", "ten.atp", "--data", "digits", fragments=("digits", "(8, 8)", "('N', 10)"))


def test_run_npz_data_shape_does_not_fit_the_model(cli, work, program):
    np.savez(
        work / "d.npz",
        x_train=np.zeros((2, 5), np.float32), y_train=np.zeros(2, np.int64),
        x_test=np.zeros((3, 7, 7), np.float32), y_test=np.zeros(3, np.int64),
    )
    fails(cli, work, "run", program, "--data", "d.npz", fragments=("d.npz", "(7, 7)", "('N', 64)"))


@pytest.mark.parametrize(
    "name, data, fragment",
    [
        ("m.onnx", None, "not a tile program"),
        ("notes.atp", b"just some text\n", "not a tile program"),
        ("empty.atp", b"", "not a tile program"),
    ],
)
def test_run_on_a_file_that_is_not_a_program(cli, work, name, data, fragment):
    if data is None:
        gemm_model(work / name, 64, 10)
    else:
        (work / name).write_bytes(data)
    fails(cli, work, "run", name, "--data", "digits", fragments=(name, fragment))


def test_run_missing_program(cli, work):
    fails(cli, work, "run", "absent.atp", "--data", "digits", fragments=("absent.atp", "no such file"))


@pytest.mark.parametrize(
    "array, fragments",
    [
        (np.zeros((5, 33), np.float32), ("(5, 33)", "'x'", "('N', 64)")),
        (np.zeros((5, 8, 8), np.float32), ("(5, 8, 8)", "('N', 64)")),
        (np.zeros(64, np.float32), ("(64,)", "('N', 64)")),
        (np.zeros((5, 64), np.int32), ("int32", "float32")),
        (np.full((2, 64), np.nan, np.float32), ("NaN",)),
        (np.zeros((0, 64), np.float32), ("no examples",)),
    ],
    ids=["features", "images", "no-batch", "ints", "nan", "empty"],
)
def test_run_input_that_does_not_fit(cli, work, program, array, fragments):
    np.save(work / "x.npy", array)
    fails(cli, work, "run", program, "--input", "x.npy", "--output", "y.npy", fragments=("x.npy", *fragments))


def test_run_input_problems(cli, work, program):
    fails(cli, work, "run", program, "--input", "absent.npy", fragments=("absent.npy", "no such file"))
    (work / "x.npy").write_bytes(b"not numpy")
    fails(cli, work, "run", program, "--input", "x.npy", fragments=("x.npy", "not a .npy or .npz file"))
    np.save(work / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    fails(cli, work, "run", program, "--input", "obj.npy", fragments=("obj.npy",))
    np.savez(work / "in.npz", z=np.zeros((2, 64), np.float32))
    fails(cli, work, "run", program, "--input", "in.npz", fragments=("in.npz", "x"))


def test_run_output_problems(cli, work, program):
    np.save(work / "x.npy", np.zeros((3, 64), np.float32))
    fails(cli, work, "run", program, "--input", "x.npy", "--output", "y.txt", fragments=("y.txt", ".npy"))
    fails(cli, work, "run", program, "--input", "x.npy", "--output", "nowhere/y.npy", fragments=("nowhere", "does not exist"))
    (work / "y.npy").mkdir()
    fails(cli, work, "run", program, "--input", "x.npy", "--output", "y.npy", fragments=("y.npy", "folder"))
    fails(cli, work, "run", program, "--data", "digits", "--output", "z.npy", fragments=("--output",))


@pytest.mark.parametrize("spec, fragments", [("mnist", ("unknown data set 'mnist'",)), ("idx:absent", ("absent", "not a folder")), ("absent.npz", ("absent.npz", "no such file"))])
def test_run_unknown_or_missing_data(cli, work, program, spec, fragments):
    fails(cli, work, "run", program, "--data", spec, fragments=fragments)


def test_run_empty_data_set(cli, work, program):
    np.savez(
        work / "e.npz",
        x_train=np.zeros((2, 64), np.float32), y_train=np.zeros(2, np.int64),
        x_test=np.zeros((0, 64), np.float32), y_test=np.zeros(0, np.int64),
    )
    fails(cli, work, "run", program, "--data", "e.npz", fragments=("e.npz", "no examples"))


@pytest.mark.parametrize(
    "option, value, fragment",
    [("--limit", "0", "--limit"), ("--batch-size", "0", "--batch-size"), ("--drift-time", "-1", "--drift-time"), ("--drift-time", "nan", "--drift-time")],
)
def test_run_bad_option_values(cli, work, program, option, value, fragment):
    fails(cli, work, "run", program, "--data", "digits", option, value, fragments=(fragment,))


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["frobnicate"], ("invalid choice: 'frobnicate'", "analogc --help")),
        ([], ("no command",)),
        (["compile"], ("MODEL.onnx", "required", "analogc compile --help")),
        (["plan"], ("PROGRAM.atp", "required")),
        (["run", "p.atp"], ("--data", "--input", "required")),
        (["run", "p.atp", "--data", "digits", "--input", "x.npy"], ("not allowed with",)),
        (["compile", "m.onnx", "--placer", "magic"], ("--placer", "magic")),
        (["compile", "m.onnx", "--seed", "abc"], ("--seed", "abc")),
        (["targets", "--bogus"], ("unrecognized arguments: --bogus",)),
        (["run", "p.atp", "--data"], ("--data", "expected one argument")),
    ],
    ids=["unknown-command", "no-command", "compile-no-model", "plan-no-program", "run-no-source", "run-both-sources",
         "bad-choice", "bad-int", "unknown-option", "missing-value"],
)
def test_bad_usage(cli, work, argv, fragments):
    fails(cli, work, *argv, fragments=fragments)


def test_internal_errors_are_not_user_errors(cli, work, monkeypatch):
    """Anything but an AnalogcError is ours: exit 1, one line, traceback only with --debug."""
    import analogc.commands

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(analogc.commands, "cmd_targets", broken)
    result = cli("targets")
    assert result.code == 1 and result.err.strip().splitlines() == [result.err.strip()]
    assert "internal error" in result.err and "boom" in result.err and "Traceback" not in result.err
    debug = cli("targets", "--debug")
    assert debug.code == 1 and "Traceback" in debug.err and os.listdir(work) == []


def test_an_error_while_an_interrupt_unwinds_is_the_interrupt(cli, work, monkeypatch):
    """Ctrl-C in the middle of writing a zip member makes zipfile's close raise ValueError
    while the KeyboardInterrupt unwinds: still `analogc: interrupted`, exit 130."""
    import analogc.commands

    def cut_short(args):
        try:
            raise KeyboardInterrupt
        finally:
            raise ValueError("Can't close the ZIP file while there is an open writing handle on it.")

    monkeypatch.setattr(analogc.commands, "cmd_targets", cut_short)
    result = cli("targets")
    assert result.code == 130 and result.err.strip() == "analogc: interrupted"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["weight", "bias"])
def test_non_finite_weights_are_refused(tmp_path, cli, bad, where):
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((4, 3), dtype=np.float32)
    b = np.zeros(3, dtype=np.float32)
    (w if where == "weight" else b)[0] = bad
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    path = tmp_path / "nan.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    out = tmp_path / "nan.atp"
    result = cli("compile", path, "-o", out)
    assert_user_error(result, "NaN or Inf", "nan.onnx")
    assert not out.exists()


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_weights_beyond_the_simulated_range_are_refused(tmp_path, cli, scale):
    """Finite weights this small or large compiled, and `run` returned NaN: the periphery
    computes in float32 in weight units, where the read-noise variance (~w_max²) overflows."""
    path = gemm_model(tmp_path / "m.onnx", 8, 4)
    model = onnx.load(path)
    for tensor in model.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * np.float32(scale), tensor.name))
    onnx.save(model, path)
    assert_user_error(cli("compile", path, "-o", tmp_path / "m.atp"), "m.onnx", "layer 'fc'", "range")
    assert not (tmp_path / "m.atp").exists()


@pytest.mark.parametrize("edits", [{"g_per_volt": 0.0}, {"dv_up": 0.0, "dv_down": 0.0}])
def test_train_refuses_a_capacitor_that_updates_cannot_move(cli, work, edits):
    """A zero read slope, or zero pulse steps, divided by zero in the update (exit 1)."""
    text = TINY.read_text()
    for key, value in edits.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    (work / "spec.toml").write_text(text)
    gemm_model(work / "m.onnx", 8, 4)
    assert cli("compile", "m.onnx", "--target", "spec.toml", "--placer", "greedy", "-o", "m.atp", "-q").code == 0
    rng = np.random.default_rng(0)
    np.savez(work / "d.npz", x_train=rng.random((20, 8), np.float32), y_train=rng.integers(0, 4, 20),
             x_test=rng.random((5, 8), np.float32), y_test=rng.integers(0, 4, 5))
    fails(cli, work, "train", "m.atp", "--data", "d.npz", "-o", "t.atp", fragments=["[capacitor]", next(iter(edits))])


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999", "abc", "1.5"])
@pytest.mark.parametrize("command", ["compile", "run"])
def test_bad_seed_is_a_usage_error(tmp_path, cli, seed, command):
    args = [command, tmp_path / "m.onnx", "--seed", seed] if command == "compile" else [command, tmp_path / "m.atp", "--data", "digits", "--seed", seed]
    assert_user_error(cli(*args), "--seed")


def test_a_target_spec_that_is_no_regular_file_or_too_large_is_refused(cli, tmp_path):
    """A FIFO as --target blocked the read for ever; a huge file (a link to /dev/zero
    never ends) was read whole before TOML saw it."""
    model = gemm_model(tmp_path / "m.onnx", 8, 4)
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "folder.toml").mkdir()
    with open(tmp_path / "huge.toml", "wb") as handle:
        handle.truncate((16 << 20) + 1)  # sparse: no 16 MiB written
    for name, what in (("fifo.toml", "target spec is not a regular file"), ("folder.toml", "target spec is not a regular file"),
                       ("huge.toml", "target spec of 16,777,217 bytes is larger than the 16,777,216 a TOML file here may be")):
        assert_user_error(cli("compile", model, "-o", tmp_path / "m.atp", "--target", tmp_path / name), f"{name}: {what}")
        assert not (tmp_path / "m.atp").exists()


def test_input_arrays_that_are_no_file_say_so(cli, tmp_path):
    """--input and --data FILE.npz naming a folder or a FIFO said 'no such file'."""
    model = gemm_model(tmp_path / "m.onnx", 8, 4)
    assert cli("compile", model, "-o", tmp_path / "m.atp", "--placer", "greedy", "-q").code == 0
    (tmp_path / "x.npy").mkdir()
    os.mkfifo(tmp_path / "d.npz")
    assert_user_error(cli("run", tmp_path / "m.atp", "--input", tmp_path / "x.npy"), "x.npy: not a file")
    assert_user_error(cli("run", tmp_path / "m.atp", "--data", tmp_path / "d.npz"), "d.npz: not a file")
    assert_user_error(cli("run", tmp_path / "m.atp", "--input", tmp_path / "absent.npy"), "absent.npy: no such file")
