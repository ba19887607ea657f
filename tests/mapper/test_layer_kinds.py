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
