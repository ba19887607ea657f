"""The copy-aware read counts equal the per-vector table's counts for programs without
copies (the table is the independent reference: one vector through every block)."""

from __future__ import annotations

import pytest

from analogc.mapper import compile_model
from analogc.runtime.cost.opcounts import OpCounts, layer_vector_counts
from analogc.runtime.cost.replica_counts import read_counts, shared_positions
from analogc.runtime.format.program import load_program, save_program
from analogc.runtime.format.spec import load_target
from tests.conftest import MODELS


@pytest.mark.parametrize("model, target", [("digits_mlp.onnx", "tiny"), ("fashion_mlp.onnx", "tiny"), ("fashion_mlp.onnx", "pcm3t1c-2018")])
def test_equal_to_per_vector_table_without_copies(tmp_path, model, target):
    save_program(compile_model(MODELS / model, load_target(target), time_limit=1.0), tmp_path / "m.atp")
    program = load_program(tmp_path / "m.atp")
    vectors = {layer["name"]: 11 for layer in program.layers}  # a direct edge's two ends read alike
    ours = OpCounts()
    # Vectors spread over examples of 1 and of 3 positions: only the total matters here.
    read_counts(program, "inference", {name: {1: n - 3, 3: 1} for name, n in vectors.items()}, ours)
    assert ours.table == layer_vector_counts(program, "inference", vectors).table


def test_shared_positions_by_hand():
    # 7 positions, producer 2 throughput copies, consumer 3: positions {1, 3, 5} ∩ {2, 5} = {5}.
    assert shared_positions(7, ("throughput", 2), 1, ("throughput", 3), 2) == 1
    assert shared_positions(7, ("throughput", 2), 0, ("throughput", 3), 0) == 2  # {0, 6}
    assert shared_positions(7, ("accuracy", 4), 0, ("throughput", 3), 1) == 2  # {1, 4}
    assert shared_positions(7, ("none", 1), 0, ("none", 1), 0) == 7


def test_position_rows_is_the_modulo_rule():
    import numpy as np

    from analogc.runtime.format.replicas import position_rows

    for rows, positions, copies in [(0, 1, 3), (12, 4, 3), (35, 7, 7), (35, 7, 10), (30, 1, 4), (20, 6, 4), (64 * 5, 64, 51)]:
        expected = [np.flatnonzero((np.arange(rows) % positions) % copies == c) for c in range(copies)]
        got = position_rows(rows, positions, copies)
        assert len(got) == copies and all(np.array_equal(g, e) for g, e in zip(got, expected)), (rows, positions, copies)
