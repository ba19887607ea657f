"""Placement invariants on compiled models, first-fit determinism, and too-big errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from analogc.errors import AnalogcError
from analogc.mapper import compile_model
from analogc.runtime.format.spec import load_spec, load_target
from tests.conftest import assert_user_error
from tests.mapper.placement_checks import check_placement


def mlp(path, widths, seed=0):
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (k, n) in enumerate(zip(widths, widths[1:])):
        inits += [numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), f"W{i}"),
                  numpy_helper.from_array(rng.normal(size=n).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"W{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                  helper.make_node("Relu", [f"a{i}"], [f"h{i}"])]
        x = f"h{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", widths[0]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", widths[-1]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("widths", [[70, 90, 10], [10, 20, 30, 5], [200, 130, 64, 63, 1], [5, 3]])
def test_invariants_on_tiny(tmp_path, widths):
    program = compile_model(mlp(tmp_path / "m.onnx", widths), load_target("tiny"))
    check_placement(program)


def test_faulty_tiles_are_skipped(tmp_path):
    spec_path = tmp_path / "faulty.toml"
    spec_path.write_text("[chip]\ngrid_rows = 3\ngrid_cols = 3\ntile_rows = 64\ntile_cols = 64\nfaulty_tiles = [[0, 0], [0, 1], [1, 1]]\n")
    program = compile_model(mlp(tmp_path / "m.onnx", [100, 100, 10]), load_spec(spec_path))
    check_placement(program)
    used = {tuple(b["tile"]) for b in program.blocks}
    assert not used & {(0, 0), (0, 1), (1, 1)}


def test_first_fit_is_deterministic(tmp_path):
    model = mlp(tmp_path / "m.onnx", [150, 90, 40, 10])
    first = compile_model(model, load_target("tiny"))
    second = compile_model(model, load_target("tiny"))
    assert first.blocks == second.blocks


@pytest.mark.parametrize("placer, needs", [("greedy", "needs 7 (lower bound 5) tiles"), ("cpsat", "needs at least 5 tiles")])
def test_too_big_says_needed_and_available(tmp_path, placer, needs):
    spec_path = tmp_path / "small.toml"
    spec_path.write_text("[chip]\ngrid_rows = 1\ngrid_cols = 2\ntile_rows = 64\ntile_cols = 64\n")
    with pytest.raises(AnalogcError) as info:
        compile_model(mlp(tmp_path / "m.onnx", [200, 100]), load_spec(spec_path), placer=placer)
    # 201 x 100 cells: 4 row blocks x 2 column blocks; first fit opens 7 tiles, the
    # lower bound is ceil(20100 / 4096) = 5; the grid has 2.
    assert needs in str(info.value) and "2 usable tiles" in str(info.value)


def test_all_faulty_is_a_user_error(tmp_path, cli):
    spec_path = tmp_path / "dead.toml"
    spec_path.write_text("[chip]\ngrid_rows = 1\ngrid_cols = 2\nfaulty_tiles = [[0, 0], [0, 1]]\n")
    model = mlp(tmp_path / "m.onnx", [10, 5])
    out = tmp_path / "m.atp"
    assert_user_error(cli("compile", model, "--target", spec_path, "-o", out), "faulty")
    assert not out.exists()
