"""The command line end to end: help, targets, compile → plan JSON checked against hand
computation and against its own invariants, run against onnxruntime and numpy, custom
target files, seeds. Models are built here with onnx.helper (no shipped files needed)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from analogc.cli import main
from analogc.data import load_digits
from analogc.runtime.format.spec import shipped_targets

SHIPPED_TARGETS = {"pcm3t1c-2018", "tiny", "hermes-64"}

# ---------------------------------------------------------------- model builders


def mlp_model(path: Path, layers: list[tuple], input_dim: int, opset: int = 13) -> Path:
    """x[N, input_dim] → Gemm(W, b) [→ activation] → ... ; layers are (name, W, b or None, act or None)."""
    nodes, inits, current = [], [], "x"
    for name, weight, bias, act in layers:
        inputs = [current, f"{name}_W"] + ([f"{name}_b"] if bias is not None else [])
        inits.append(numpy_helper.from_array(weight.astype(np.float32), f"{name}_W"))
        if bias is not None:
            inits.append(numpy_helper.from_array(bias.astype(np.float32), f"{name}_b"))
        nodes.append(helper.make_node("Gemm", inputs, [f"{name}_out"], name=name))
        current = f"{name}_out"
        if act:
            nodes.append(helper.make_node(act, [current], [f"{name}_{act.lower()}"], name=f"{name}_{act}"))
            current = f"{name}_{act.lower()}"
    out_dim = layers[-1][1].shape[1]
    nodes.append(helper.make_node("Identity", [current], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", input_dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def random_mlp(path: Path, sizes=(100, 70, 10), bias=(True, False), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        b = rng.normal(size=n) * 0.1 if bias[i] else None
        act = "Relu" if i < len(sizes) - 2 else None
        layers.append((f"fc{i + 1}", rng.normal(size=(k, n)) * 0.3, b, act))
    return mlp_model(path, layers, sizes[0])


def train_digits_softmax(steps: int = 300, lr: float = 1.0):
    """Full-batch gradient descent on softmax cross-entropy: a 64→10 Gemm with bias."""
    data = load_digits()
    x = data.x_train.reshape(len(data.x_train), -1).astype(np.float64)
    onehot = np.eye(10)[data.y_train]
    weight, bias = np.zeros((64, 10)), np.zeros(10)
    for _ in range(steps):
        logits = x @ weight + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(x)
        weight -= lr * x.T @ grad
        bias -= lr * grad.sum(axis=0)
    return weight.astype(np.float32), bias.astype(np.float32)


def onnxruntime_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def run_json(cli, *argv) -> dict:
    result = cli(*argv, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A trained digits classifier, its float weights, and a program on the default target."""
    folder = tmp_path_factory.mktemp("digits")
    weight, bias = train_digits_softmax()
    model = mlp_model(folder / "digits_lr.onnx", [("fc", weight, bias, None)], 64)
    program = folder / "digits_lr.atp"
    assert main(["compile", str(model), "-o", str(program), "--placer", "greedy", "-q"]) == 0
    return {"model": model, "program": program, "weight": weight, "bias": bias}


@pytest.fixture(scope="module")
def mlp_atp(tmp_path_factory):
    """A random 100-70-10 MLP compiled for `tiny` (split by rows and columns)."""
    folder = tmp_path_factory.mktemp("mlp")
    model = random_mlp(folder / "mlp.onnx")
    program = folder / "mlp.atp"
    assert main(["compile", str(model), "--target", "tiny", "-o", str(program), "--placer", "greedy", "-q"]) == 0
    return {"model": model, "program": program}


# ---------------------------------------------------------------- help and targets


@pytest.mark.parametrize(
    "command, options",
    [
        ("compile", ["MODEL.onnx", "--target", "-o", "--placer", "--time-limit", "--seed", "--json"]),
        ("plan", ["PROGRAM.atp", "--json", "--png", "-v"]),
        ("run", ["PROGRAM.atp", "--data", "--input", "--output", "--ideal", "--limit", "--seed", "--json", "--drift-time"]),
        ("cost", ["PROGRAM.atp", "--png", "--target", "--json"]),
        ("targets", ["--json"]),
    ],
)
def test_help_of_each_command(cli, command, options):
    result = cli(command, "--help")
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.startswith(f"usage: analogc {command}")
    for option in options:
        assert option in result.out, option


def test_top_level_help_and_version(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("compile", "plan", "run", "targets"):
        assert command in result.out
    version = cli("--version")
    assert version.code == 0 and version.out.startswith("analogc ")


def test_targets_lists_the_shipped_specs(cli):
    result = cli("targets")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    names = {line.split()[0] for line in lines}
    assert SHIPPED_TARGETS <= names
    assert len(lines) == len(names)
    default = [line for line in lines if "(default)" in line]
    assert len(default) == 1 and default[0].startswith("pcm3t1c-2018")
    tiny = next(line for line in lines if line.startswith("tiny "))
    assert "10x10 tiles of 64x64" in tiny


def test_targets_json(cli):
    rows = run_json(cli, "targets")["targets"]
    by_name = {row["name"]: row for row in rows}
    assert SHIPPED_TARGETS <= set(by_name)
    assert [r["name"] for r in rows if r["default"]] == ["pcm3t1c-2018"]
    for name in SHIPPED_TARGETS:
        assert Path(by_name[name]["path"]).is_file()
        assert by_name[name]["description"]
    assert "8x8 tiles of 256x256" in by_name["hermes-64"]["summary"]
    assert set(by_name) == set(shipped_targets())


# ---------------------------------------------------------------- compile and plan


PLAN_FIELDS = {"grid", "tile", "tiles_used", "lower_bound_tiles", "utilization", "solver", "layers", "blocks", "traffic", "traffic_greedy"}


def reference_traffic(plan: dict, edges: list[tuple[str, str]]) -> int:
    """Traffic recomputed from the plan's blocks (the rule in mapper/traffic.py's docstring):
    a producer's reduced outputs (held by its first-row blocks) travel to every consumer
    block whose weight rows read them; partial sums of row-split blocks travel to the
    first-row block holding the same columns. Elements × Manhattan hops."""
    by_layer: dict[str, list] = {}
    for block in plan["blocks"]:
        by_layer.setdefault(block["layer"], []).append(block)
    k_of = {layer["name"]: layer["shape"][0] for layer in plan["layers"]}

    def overlap(a, b):
        return max(0, min(a[1], b[1]) - max(a[0], b[0]))

    def hops(a, b):
        return abs(a["tile"][0] - b["tile"][0]) + abs(a["tile"][1] - b["tile"][1])

    total = 0
    for producer, consumer in edges:
        for src in by_layer[producer]:
            if src["array_rows"][0] == 0:
                for dst in by_layer[consumer]:
                    total += overlap(src["cols"], (dst["array_rows"][0], min(dst["array_rows"][1], k_of[consumer]))) * hops(src, dst)
    for blocks in by_layer.values():
        for block in blocks:
            if block["array_rows"][0] != 0:
                for head in blocks:
                    if head["array_rows"][0] == 0:
                        total += overlap(block["cols"], head["cols"]) * hops(block, head)
    return total


def check_plan_invariants(plan: dict, faulty=()) -> None:
    """What any valid plan satisfies, whatever the placer."""
    assert PLAN_FIELDS <= set(plan), PLAN_FIELDS - set(plan)
    grid_r, grid_c = plan["grid"]
    tile_r, tile_c = plan["tile"]
    layers = {layer["name"]: layer for layer in plan["layers"]}
    cells = 0
    for name, layer in layers.items():
        rows, cols = layer.get("array_shape", layer["shape"])
        blocks = [b for b in plan["blocks"] if b["layer"] == name]
        assert layer["blocks"] == len(blocks), name
        assert layer["tiles"] == len({tuple(b["tile"]) for b in blocks}), name
        covered = np.zeros((rows, cols), dtype=int)
        for b in blocks:
            assert 0 <= b["array_rows"][0] < b["array_rows"][1] <= rows and 0 <= b["cols"][0] < b["cols"][1] <= cols, b
            covered[b["array_rows"][0] : b["array_rows"][1], b["cols"][0] : b["cols"][1]] += 1
        assert (covered == 1).all(), f"{name}: blocks do not cover the array exactly once"
        cells += rows * cols
    occupancy: dict[tuple, np.ndarray] = {}
    for b in plan["blocks"]:
        tile = tuple(b["tile"])
        assert 0 <= tile[0] < grid_r and 0 <= tile[1] < grid_c, b
        assert list(tile) not in [list(f) for f in faulty], b
        r0, c0 = b["offset"]
        height, width = b["array_rows"][1] - b["array_rows"][0], b["cols"][1] - b["cols"][0]
        assert r0 >= 0 and c0 >= 0 and r0 + height <= tile_r and c0 + width <= tile_c, b
        grid = occupancy.setdefault(tile, np.zeros((tile_r, tile_c), dtype=int))
        grid[r0 : r0 + height, c0 : c0 + width] += 1
    assert all((g <= 1).all() for g in occupancy.values()), "blocks overlap inside a tile"
    assert plan["tiles_used"] == len(occupancy)
    assert plan["lower_bound_tiles"] == math.ceil(cells / (tile_r * tile_c))
    assert plan["tiles_used"] >= plan["lower_bound_tiles"]
    assert plan["utilization"] == pytest.approx(cells / (plan["tiles_used"] * tile_r * tile_c))
    assert 0 < plan["utilization"] <= 1
    solver = plan["solver"]
    assert {"status", "objective", "best_bound", "seconds"} <= set(solver)
    assert solver["seconds"] >= 0
    assert solver["best_bound"] <= solver["objective"] + 1e-9
    assert plan["traffic"] <= plan["traffic_greedy"]


def test_compile_and_plan_greedy_against_hand_computation(cli, tmp_path):
    """100-70-10 (bias on fc1 only) on `tiny` (64x64 tiles), first-fit, worked out by hand:
    fc1 array 101x70 → blocks [0,64)x[0,64), [0,64)x[64,70), [64,101)x[0,64), [64,101)x[64,70);
    fc2 array 70x10 → [0,64)x[0,10), [64,70)x[0,10). 7770 cells → lower bound ceil(7770/4096) = 2.
    First fit: tile (0,0) holds block 0; (0,1) blocks 1, 3, 4, 5; (0,2) block 2 → 3 tiles.
    Traffic: fc1→fc2 64 outputs over 1 hop (64) + fc1's partial sums [64,101)x[0,64) from
    (0,2) to (0,0), 64 elements over 2 hops (128) = 192."""
    model = random_mlp(tmp_path / "mlp.onnx")
    out = tmp_path / "mlp.atp"
    compiled = run_json(cli, "compile", model, "--target", "tiny", "-o", out, "--placer", "greedy")
    assert compiled["output"] == str(out) and out.is_file()
    plan = run_json(cli, "plan", out)
    assert {k: v for k, v in compiled.items() if k != "output"} == plan
    check_plan_invariants(plan)
    assert plan["grid"] == [10, 10] and plan["tile"] == [64, 64]
    assert plan["tiles_used"] == 3 and plan["lower_bound_tiles"] == 2
    assert plan["utilization"] == pytest.approx(7770 / (3 * 4096))
    assert plan["solver"]["objective"] == 3 and plan["solver"]["best_bound"] == 2
    assert [(layer["name"], layer["shape"], layer["blocks"], layer["tiles"]) for layer in plan["layers"]] == [
        ("fc1", [100, 70], 4, 3),
        ("fc2", [70, 10], 2, 1),
    ]
    # `rows` are weight rows of K (the contract), `array_rows` include the bias row.
    assert [b["rows"] for b in plan["blocks"]] == [[0, 64], [0, 64], [64, 100], [64, 100], [0, 64], [64, 70]]
    assert [b["bias_row"] for b in plan["blocks"]] == [False, False, True, True, False, False]
    got = [(b["layer"], b["array_rows"], b["cols"], b["tile"], b["offset"]) for b in plan["blocks"]]
    assert got == [
        ("fc1", [0, 64], [0, 64], [0, 0], [0, 0]),
        ("fc1", [0, 64], [64, 70], [0, 1], [0, 0]),
        ("fc1", [64, 101], [0, 64], [0, 2], [0, 0]),
        ("fc1", [64, 101], [64, 70], [0, 1], [0, 6]),
        ("fc2", [0, 64], [0, 10], [0, 1], [0, 12]),
        ("fc2", [64, 70], [0, 10], [0, 1], [0, 22]),
    ]
    assert plan["traffic"] == plan["traffic_greedy"] == 192
    assert reference_traffic(plan, [("fc1", "fc2")]) == 192


def test_compile_cpsat_reaches_the_lower_bound_and_beats_first_fit(cli, tmp_path):
    model = random_mlp(tmp_path / "mlp.onnx")
    out = tmp_path / "mlp.atp"
    plan = run_json(cli, "compile", model, "--target", "tiny", "-o", out, "--time-limit", "3")
    check_plan_invariants(plan)
    assert plan["lower_bound_tiles"] == 2
    assert plan["tiles_used"] == 2  # 7770 cells fit in two 64x64 tiles once blocks are cut
    assert plan["solver"]["status"] in ("OPTIMAL", "FEASIBLE")
    assert plan["traffic_greedy"] == 192  # the first-fit baseline, as computed by hand above
    assert plan["traffic"] == reference_traffic(plan, [("fc1", "fc2")])
    assert plan["traffic"] < plan["traffic_greedy"]
    assert run_json(cli, "plan", out) == {k: v for k, v in plan.items() if k != "output"}


def test_plan_text_and_verbose(cli, mlp_atp):
    result = cli("plan", mlp_atp["program"])
    assert result.code == 0, result.err
    assert "tiles used 3 (lower bound 2)" in result.out
    assert "fc1" in result.out and "fc2" in result.out
    verbose = cli("plan", mlp_atp["program"], "-v")
    assert verbose.code == 0 and "blocks" in verbose.out and "[64, 101)" in verbose.out


def test_compile_default_output_name_and_summary(cli, tmp_path, monkeypatch):
    model = random_mlp(tmp_path / "net.onnx", sizes=(20, 5), bias=(True,))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = cli("compile", model, "--placer", "greedy")
    assert result.code == 0, result.err
    assert "wrote net.atp" in result.out
    assert os.listdir(work) == ["net.atp"]
    plan = run_json(cli, "plan", "net.atp")
    assert plan["grid"] == [8, 8] and plan["tile"] == [512, 512]  # the default target
    assert plan["tiles_used"] == 1 and plan["lower_bound_tiles"] == 1
    assert plan["utilization"] == pytest.approx(21 * 5 / 512**2)


def test_custom_target_file(cli, tmp_path):
    spec = tmp_path / "mychip.toml"
    spec.write_text(
        'name = "mychip"\ndescription = "test chip"\n'
        "[chip]\ngrid_rows = 3\ngrid_cols = 4\ntile_rows = 32\ntile_cols = 48\n"
        'faulty_tiles = [[0, 0], [1, 2]]\nbias = "digital"\n'
        "[periphery]\nadc_bits = 10\n"
    )
    model = random_mlp(tmp_path / "mlp.onnx", sizes=(40, 30, 10), bias=(True, True))
    out = tmp_path / "mlp.atp"
    plan = run_json(cli, "compile", model, "--target", spec, "-o", out, "--placer", "greedy")
    assert plan["target"] == "mychip"
    assert plan["grid"] == [3, 4] and plan["tile"] == [32, 48]
    check_plan_invariants(plan, faulty=[[0, 0], [1, 2]])
    # Bias digital: arrays are 40x30 and 30x10 → 1500 cells, ceil(1500 / 1536) = 1.
    assert plan["lower_bound_tiles"] == 1
    assert [layer["shape"] for layer in plan["layers"]] == [[40, 30], [30, 10]]
    assert all(layer["bias"] == "digital" for layer in plan["layers"])
    assert all(b["tile"] != [0, 0] for b in plan["blocks"])
    result = run_json(cli, "run", out, "--input", write_random_input(tmp_path, 40), "--ideal")
    assert result["target"] == "mychip" and result["max_abs_diff_vs_onnxruntime"] < 1e-4


def write_random_input(folder: Path, dim: int, n: int = 25, seed: int = 3) -> Path:
    path = folder / f"x{dim}.npy"
    np.save(path, np.random.default_rng(seed).random((n, dim), dtype=np.float32))
    return path


# ---------------------------------------------------------------- run


def test_run_ideal_on_digits_matches_onnxruntime_and_numpy(cli, digits):
    result = run_json(cli, "run", digits["program"], "--data", "digits", "--ideal")
    data = load_digits()
    assert result["examples"] == len(data.x_test) == 359
    x = data.x_test.reshape(-1, 64).astype(np.float64)
    expected = float(np.mean(np.argmax(x @ digits["weight"] + digits["bias"], axis=1) == data.y_test))
    assert expected > 0.9  # the model learned something, so agreement means something
    assert result["accuracy"] == result["onnxruntime_accuracy"] == pytest.approx(expected, abs=1 / 359 + 1e-12)
    assert result["max_abs_diff_vs_onnxruntime"] < 1e-4
    assert result["seconds"] > 0
    assert result["examples_per_s"] == pytest.approx(result["examples"] / result["seconds"])
    assert result["mode"] == "ideal" and result["target"] == "pcm3t1c-2018"
    assert not any(result["nonidealities"].values())


def test_run_default_mode_on_digits_keeps_most_of_the_accuracy(cli, digits):
    result = run_json(cli, "run", digits["program"], "--data", "digits", "--seed", "5")
    assert result["mode"] == "default" and result["examples"] == 359
    assert result["max_abs_diff_vs_onnxruntime"] > 0  # nonidealities are on
    assert result["accuracy"] > result["onnxruntime_accuracy"] - 0.1


def test_run_reports_where_drift_compensation_acts(cli, digits):
    at_t0 = run_json(cli, "run", digits["program"], "--data", "digits", "--limit", "20")
    assert at_t0["drift_compensation"] is False and at_t0["drift_compensation_at"] is None
    day = run_json(cli, "run", digits["program"], "--data", "digits", "--limit", "20", "--drift-time", "86400")
    assert day["drift_compensation"] is True and day["drift_compensation_at"] == "adc_gain"
    text = cli("run", digits["program"], "--data", "digits", "--limit", "20", "--drift-time", "86400")
    assert text.code == 0, text.err
    assert "drift compensation on (ADC gain)" in " ".join(text.out.split())  # the console may wrap


def test_run_limit(cli, digits):
    result = run_json(cli, "run", digits["program"], "--data", "digits", "--ideal", "--limit", "50")
    data = load_digits()
    x = data.x_test[:50].reshape(-1, 64)
    expected = float(np.mean(np.argmax(x @ digits["weight"] + digits["bias"], axis=1) == data.y_test[:50]))
    assert result["examples"] == 50 and result["accuracy"] == pytest.approx(expected)


def test_run_text_summary(cli, digits):
    result = cli("run", digits["program"], "--data", "digits", "--ideal", "--limit", "20")
    assert result.code == 0, result.err
    assert "20 examples of digits" in result.out and "chip accuracy" in result.out


def test_run_input_output_matches_onnxruntime(cli, mlp_atp, tmp_path):
    x = write_random_input(tmp_path, 100, n=300)  # more than one batch of 256
    y = tmp_path / "y.npy"
    result = run_json(cli, "run", mlp_atp["program"], "--input", x, "--output", y, "--ideal")
    assert result["examples"] == 300 and "accuracy" not in result
    got = np.load(y, allow_pickle=False)
    expected = onnxruntime_outputs(mlp_atp["model"], np.load(x))
    assert got.shape == expected.shape == (300, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["x100.npy", "y.npy"]


def test_run_input_npz_output_npz(cli, mlp_atp, tmp_path):
    x = np.random.default_rng(4).random((7, 100), dtype=np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    assert cli("run", mlp_atp["program"], "--input", tmp_path / "in.npz", "--output", tmp_path / "out.npz", "--ideal", "-q").code == 0
    with np.load(tmp_path / "out.npz", allow_pickle=False) as out:
        assert out.files == ["y"]
        np.testing.assert_allclose(out["y"], onnxruntime_outputs(mlp_atp["model"], x), rtol=1e-4, atol=1e-5)


def run_seeded(cli, program: Path, x: Path, folder: Path, seed: int, tag: str) -> np.ndarray:
    y = folder / f"y_{tag}.npy"
    assert cli("run", program, "--input", x, "--output", y, "--seed", seed, "-q").code == 0
    return np.load(y)


def test_same_seed_same_outputs_different_seed_different_outputs(cli, mlp_atp, tmp_path):
    x = write_random_input(tmp_path, 100, n=40)
    a = run_seeded(cli, mlp_atp["program"], x, tmp_path, 11, "a")
    b = run_seeded(cli, mlp_atp["program"], x, tmp_path, 11, "b")
    c = run_seeded(cli, mlp_atp["program"], x, tmp_path, 12, "c")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    reference = onnxruntime_outputs(mlp_atp["model"], np.load(x))
    assert not np.allclose(a, reference, atol=1e-6)  # default mode really is noisy
    # ... but it still computes the network: close to the float outputs on average.
    assert np.mean(np.abs(a - reference)) < 0.25 * np.mean(np.abs(reference))
