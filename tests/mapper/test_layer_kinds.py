"""Every layer of a plan says its kind and how many tile reads one example needs; the
cost model multiplies a layer's per-read counts by that number."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper

from tests.mapper.onnx_builders import init, make_model, vi, weight


def sequence_and_vector_model(path, t: int = 7) -> None:
    """x [B, T, 12] → MatMul(12x5) + Add → ReduceMean over T → Gemm(5x3)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="seq_fc"),
        helper.make_node("Add", ["h", "b1"], ["h1"]),
        helper.make_node("ReduceMean", ["h1"], ["m"], axes=[1], keepdims=0),
        helper.make_node("Gemm", ["m", "W2"], ["y"], name="head"),
    ]
    inits = [init("W1", weight(rng, 12, 5)), init("b1", np.ones(5, np.float32)), init("W2", weight(rng, 5, 3))]
    onnx.save(make_model(nodes, [vi("x", ["N", t, 12])], [vi("y", ["N", 3])], inits), str(path))


def test_dense_layers_report_kind_and_reads_per_example(cli, tmp_path):
    model, program = tmp_path / "seq.onnx", tmp_path / "seq.atp"
    sequence_and_vector_model(model)
    assert cli("compile", model, "-o", program, "--target", "tiny", "--placer", "greedy", "-q").code == 0
    result = cli("plan", program, "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    layers = {layer["name"]: layer for layer in plan["layers"]}
    assert layers["seq_fc"]["kind"] == "dense" and layers["seq_fc"]["reads_per_example"] == 7
    assert layers["head"]["kind"] == "dense" and layers["head"]["reads_per_example"] == 1
    assert "kernel" not in layers["head"]
    # MACs per example: 7 reads of the 13x5 array (12 weights + the analog bias row), one of 5x3.
    assert plan["cost_estimate"]["counts"]["macs"] == 7 * 13 * 5 + 5 * 3
    text = cli("plan", program)
    assert text.code == 0 and "reads/example" in text.out


def reads_of(cli, tmp_path, nodes, x_dims, y_dims, inits) -> dict:
    """{layer: (reads_per_example, exact)} of the model compiled and planned as a user would."""
    model, program = tmp_path / "m.onnx", tmp_path / "m.atp"
    onnx.save(make_model(nodes, [vi("x", x_dims)], [vi("y", y_dims)], inits), str(model))
    assert cli("compile", model, "-o", program, "--target", "tiny", "--placer", "greedy", "-q").code == 0
    plan = json.loads(cli("plan", program, "--json").out)
    return {layer["name"]: (layer["reads_per_example"], layer["reads_per_example_exact"]) for layer in plan["layers"]}


def test_a_time_major_sequence_reads_once_per_step(cli, tmp_path):
    """x [T=5, N, 16] (PyTorch's batch_first=False): the batch is the symbolic axis 1, so
    one example is 5 reads, not N."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="proj")]
    assert reads_of(cli, tmp_path, nodes, [5, "N", 16], [5, "N", 8], [init("W", weight(rng, 16, 8))]) == {"proj": (5, True)}


def test_rows_that_merge_batch_and_sequence_read_once_per_step(cli, tmp_path):
    """[N, 5, 8] reshaped to [-1, 8] before a Gemm (an exported attention's out-projection):
    each example is 5 rows of the Gemm, 5 reads; so are heads merged back ([N, 5, 2, 4] →
    [-1, 8]). Regrouped to [-1, 10], the rows no longer map to steps: at least one read,
    and the plan says it is a bound."""
    rng = np.random.default_rng(2)
    for x_dims, k, expected in ((["N", 5, 8], 8, (5, True)), (["N", 5, 2, 4], 8, (5, True)), (["N", 5, 8], 10, (1, False))):
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["rows"]), helper.make_node("Gemm", ["rows", "W"], ["y"], name="out_proj")]
        inits = [init("shape", np.array([-1, k], np.int64)), init("W", weight(rng, k, 3))]
        assert reads_of(cli, tmp_path, nodes, x_dims, [None, 3], inits) == {"out_proj": expected}


def test_a_fixed_batch_merged_with_its_sequence_reads_once_per_step(cli, tmp_path):
    """A fixed batch of 2: [2, 6, 8] reshaped to [12, 8] is 6 reads per example, not 12
    and not 1; a flattened example [2, 48] is one read."""
    rng = np.random.default_rng(3)
    for shape, k, expected in (([12, 8], 8, (6, True)), ([2, 48], 48, (1, True))):
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["rows"]), helper.make_node("Gemm", ["rows", "W"], ["y"], name="fc")]
        inits = [init("shape", np.array(shape, np.int64)), init("W", weight(rng, k, 3))]
        assert reads_of(cli, tmp_path, nodes, [2, 6, 8], [shape[0], 3], inits) == {"fc": expected}
