"""The cost model: operation counts against a hand count, pricing against hand
arithmetic, host FLOPs against a hand count, the chip's own counts, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from analogc.errors import AnalogcError
from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.cost.host_flops import segment_flops
from analogc.runtime.cost.opcounts import layer_program_counts, per_vector_table
from analogc.runtime.cost.pricing import OpCounts, price, static_block_counts, summary_lines
from analogc.runtime.format.spec import CostSpec, load_target
from tests.test_cli import random_mlp

# 100-70-10 (bias on fc1 only, Relu after fc1) on `tiny` (64x64 tiles), first fit. The
# plan is worked out by hand in tests/test_cli.py (test_compile_and_plan_greedy_...):
#   b0 fc1 rows [0,64)   cols [0,64)  tile (0,0) offset (0,0)
#   b1 fc1 rows [0,64)   cols [64,70) tile (0,1) offset (0,0)
#   b2 fc1 rows [64,101) cols [0,64)  tile (0,2) offset (0,0)   (row 100 is the bias row)
#   b3 fc1 rows [64,101) cols [64,70) tile (0,1) offset (0,6)
#   b4 fc2 rows [0,64)   cols [0,10)  tile (0,1) offset (0,12)
#   b5 fc2 rows [64,70)  cols [0,10)  tile (0,1) offset (0,22)
HAND_PLAN = [
    ("fc1", [0, 64], [0, 64], [0, 0], [0, 0]),
    ("fc1", [0, 64], [64, 70], [0, 1], [0, 0]),
    ("fc1", [64, 101], [0, 64], [0, 2], [0, 0]),
    ("fc1", [64, 101], [64, 70], [0, 1], [0, 6]),
    ("fc2", [0, 64], [0, 10], [0, 1], [0, 12]),
    ("fc2", [64, 70], [0, 10], [0, 1], [0, 22]),
]

# One inference, by hand:
# macs: fc1 64·64 + 64·6 + 37·64 + 37·6 = 7070, fc2 64·10 + 6·10 = 700
# DAC (rows): fc1 64+64+37+37 = 202, fc2 64+6 = 70; ADC (cols): fc1 64+6+64+6 = 140, fc2 20
# digital: fc1 2·101 (scale inputs incl. bias) + 70 (rescale) + 70 (relu) + partial-sum adds
#   b2→b0 64 + b3→b1 6 = 412; fc2 2·70 + 10 + 0 (identity) + b5→b4 10 = 160
# flows: fc1 out b0→b4 64 words 1 hop, b1→b5 6 words 0 hops; partial b2→b0 64 words 2
#   hops, b3→b1 6 words 0 hops; fc2 partial b5→b4 0 hops → moved 128, word-hops 192
# read steps: fc1: tile (0,1) holds b1 and b3, which share tile rows → 2; fc2: b4, b5
#   share rows → 2. hop steps: fc1 partial 64 + 2 − 1 = 65, fc1 output 64 + 1 − 1 = 64.
HAND_INFERENCE = {
    "fc1": {"macs": 7070, "dac_conversions": 202, "adc_conversions": 140, "digital_ops": 412,
            "words_moved": 128, "word_hops": 192, "read_steps": 2, "hop_steps": 129},
    "fc2": {"macs": 700, "dac_conversions": 70, "adc_conversions": 20, "digital_ops": 160, "read_steps": 2},
}
# Backward (transpose read: DAC on columns, ADC on the non-bias rows):
# DAC fc1 140, fc2 20; ADC fc1 64+64+36+36 = 200, fc2 70
# digital: fc1 2·70 + 100 + 70·2 (relu derivative) + column partial sums b1→b0 64, b3→b2 36
#   = 480; fc2 2·10 + 70 + 0 = 90
# flows: fc2's error b4→b0 64 words 1 hop, b4→b2 64 words 1 hop, b5→b1/b3 6+6 words 0
#   hops; fc1 partial b1→b0 64 words 1 hop, b3→b2 36 words 1 hop
# hop steps: fc2 output 64, fc1 partial 64.
HAND_BACKWARD = {
    "fc1": {"macs": 7070, "dac_conversions": 140, "adc_conversions": 200, "digital_ops": 480,
            "words_moved": 100, "word_hops": 100, "read_steps": 2, "hop_steps": 64},
    "fc2": {"macs": 700, "dac_conversions": 20, "adc_conversions": 70, "digital_ops": 90,
            "words_moved": 128, "word_hops": 128, "read_steps": 2, "hop_steps": 64},
}
# Update: rows + cols per block; 2 sequential steps per layer × 16 pulse slots.
HAND_UPDATE = {"fc1": {"digital_ops": 128 + 70 + 101 + 43, "update_steps": 32}, "fc2": {"digital_ops": 74 + 16, "update_steps": 32}}
# Transfer: every cell read once, one-hot rows: distinct tile rows per tile, slowest tile.
HAND_TRANSFER = {
    "fc1": {"pcm_reads": 7070, "adc_conversions": 7070, "dac_conversions": 202, "read_steps": 64},
    "fc2": {"pcm_reads": 700, "adc_conversions": 700, "dac_conversions": 70, "read_steps": 64},
}


@pytest.fixture(scope="module")
def hand_program(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cost")
    program = compile_model(random_mlp(folder / "mlp.onnx"), load_target("tiny"), placer="greedy")
    got = [(b["layer"], b["rows"], b["cols"], b["tile"], b["offset"]) for b in program.blocks]
    assert got == HAND_PLAN
    return program


def by_layer(counts: OpCounts, phase: str) -> dict:
    out: dict = {}
    for (p, layer, _), kinds in counts.table.items():
        assert p == phase
        for kind, n in kinds.items():
            out.setdefault(layer, {})
            out[layer][kind] = out[layer].get(kind, 0) + n
    return out


@pytest.mark.parametrize(
    "phase, hand",
    [("inference", HAND_INFERENCE), ("forward", HAND_INFERENCE), ("backward", HAND_BACKWARD), ("update", HAND_UPDATE), ("transfer", HAND_TRANSFER)],
)
def test_static_counts_match_the_hand_count(hand_program, phase, hand):
    one = static_block_counts(hand_program, phase, 1)
    assert by_layer(one, phase) == hand
    batch = static_block_counts(hand_program, phase, 37)
    assert by_layer(batch, phase) == {layer: {k: 37 * v for k, v in kinds.items()} for layer, kinds in hand.items()}
    assert batch.examples == {phase: 37}


def test_counts_per_tile_of_the_hand_plan(hand_program):
    table = static_block_counts(hand_program, "inference", 1).table
    # tile (0,1) holds b1, b3 (fc1) and receives b3's 6 partial sums; b0 on (0,0) receives 64.
    assert table[("inference", "fc1", (0, 1))] == {"macs": 64 * 6 + 37 * 6, "dac_conversions": 101, "adc_conversions": 12, "digital_ops": 6}
    assert table[("inference", "fc1", (0, 0))] == {"macs": 4096, "dac_conversions": 64, "adc_conversions": 64, "digital_ops": 64, "words_moved": 64, "word_hops": 64}
    assert table[("inference", "fc1", (0, 2))] == {"macs": 2368, "dac_conversions": 37, "adc_conversions": 64, "words_moved": 64, "word_hops": 128}


def test_word_hops_equal_the_placers_traffic(hand_program):
    counts = static_block_counts(hand_program, "inference", 1)
    assert counts.total("word_hops") == hand_program.meta["placement"]["traffic"] == 192


def test_layers_argument_restricts_the_pass(hand_program):
    counts = static_block_counts(hand_program, "backward", 2, layers=["fc2"])
    assert set(by_layer(counts, "backward")) == {"fc2"}
    assert counts.total("macs") == 1400


ROUND_COST = CostSpec(
    mvm_energy_per_mac=1e-15, dac_energy=1e-12, adc_energy=1e-11, pulse_energy=1e-14, pcm_program_energy=1e-10,
    pcm_read_energy=2e-15, digital_op_energy=1e-13, word_move_energy=1e-12, word_hop_energy=1e-13, host_flop_energy=1e-11,
    mvm_time=1e-7, pulse_time=1e-8, pcm_program_time=1e-6, hop_time=1e-9, host_flop_time=1e-10, tile_area=0.5,
)


def test_price_against_hand_arithmetic(hand_program):
    spec = dataclasses.replace(load_target("tiny"), cost=ROUND_COST)
    report = price(static_block_counts(hand_program, "inference", 10), spec, hand_program)
    # per example: 7770 MACs·1 fJ + 272 DACs·1 pJ + 160 ADCs·10 pJ + 572 digital·0.1 pJ
    #            + 128 words·1 pJ + 192 word-hops·0.1 pJ
    energy = 7770e-15 + 272e-12 + 160e-11 + 572e-13 + 128e-12 + 192e-13
    time = 4 * 1e-7 + 129 * 1e-9  # 4 read steps, 129 hop steps
    assert report.examples == 10
    assert report.energy_per_example_j == pytest.approx(energy, rel=1e-12)
    assert report.latency_per_example_s == pytest.approx(time, rel=1e-12)
    assert report.throughput_examples_per_s == pytest.approx(1 / time, rel=1e-12)
    assert report.tiles_used == 3 and report.area_mm2 == pytest.approx(1.5)
    assert report.ops == 2 * 7770 * 10
    assert report.gops_per_w == pytest.approx(2 * 7770 / energy / 1e9, rel=1e-12)
    assert report.gops_per_mm2 == pytest.approx(2 * 7770 / time / 1.5 / 1e9, rel=1e-12)
    assert report.energy_by_layer["fc2"] == pytest.approx(10 * (700e-15 + 70e-12 + 20e-11 + 160e-13), rel=1e-12)
    assert report.time_by_layer["fc1"] == pytest.approx(10 * (2e-7 + 129e-9), rel=1e-12)
    assert report.energy_by_kind["adc_conversions"] == pytest.approx(10 * 160e-11, rel=1e-12)
    # the full-tile peak: 64·64 MACs, 64 DACs, 64 ADCs in one 100 ns read on 0.5 mm²
    assert report.peak["gops_per_w"] == pytest.approx(2 * 4096 / (4096e-15 + 64e-12 + 64e-11) / 1e9)
    assert report.peak["gops_per_mm2"] == pytest.approx(2 * 4096 / 1e-7 / 0.5 / 1e9)


def test_price_of_training_phases_and_setup(hand_program):
    """Data-dependent kinds added by a trainer, and the one-time set-up kept apart."""
    spec = dataclasses.replace(load_target("tiny"), cost=ROUND_COST)
    counts = OpCounts()
    counts.add("update", "fc1", (0, 0), pulses=1000)
    counts.add("transfer", "fc1", (0, 0), pcm_program_iterations=30)
    counts.add("transfer", "fc1", None, program_steps=7)
    counts.add("program", "(chip)", None, program_steps=100)
    report = price(counts, spec, hand_program, examples=4)
    assert report.energy_j == pytest.approx(1000 * 1e-14 + 30 * 1e-10)
    assert report.time_s == pytest.approx(7 * 1e-6)
    assert report.setup_time_s == pytest.approx(100 * 1e-6) and report.setup_energy_j == 0
    assert report.energy_per_example_j == pytest.approx(report.energy_j / 4)
    assert report.ops == 0 and report.gops_per_w == 0


def test_opcounts_rejects_unknown_phases_kinds_and_negatives():
    counts = OpCounts()
    with pytest.raises(AnalogcError, match="phase"):
        counts.add("inferense", "fc", None, macs=1)
    with pytest.raises(AnalogcError, match="kind"):
        counts.add("inference", "fc", None, flops=1)
    with pytest.raises(AnalogcError, match="≥ 0"):
        counts.add("inference", "fc", None, macs=-1)
    counts.add("inference", "fc", (0, 1), macs=np.int64(5))
    counts.add("inference", "fc", (0, 1), macs=2)
    assert counts.table == {("inference", "fc", (0, 1)): {"macs": 7}}
    assert OpCounts().merge(counts, 3).total("macs") == 21


def test_chip_counts_what_it_ran(hand_program):
    """The chip tallies rows per layer; its counts equal the static counts of the rows it
    ran, and the programming counts sum the closed loop's iterations."""
    chip = Chip(hand_program, seed=3, drift_time=3600.0)
    x = np.random.default_rng(0).normal(size=(5, 100)).astype(np.float32)
    chip.run({"x": x})
    chip.run({"x": x[:2]})
    counts = chip.op_counts()
    inference = {k: v for k, v in counts.table.items() if k[0] == "inference"}
    assert inference == static_block_counts(hand_program, "inference", 7).table
    iterations = sum(int(store.iterations.sum()) for store in chip.stores.values())
    assert counts.total("pcm_program_iterations", phase="program") == iterations > 0
    # drift compensation: two whole-tile reads of each of the 3 tiles
    assert counts.total("pcm_reads", phase="program") == 3 * 2 * 64 * 64
    assert Chip(hand_program, ideal=True).op_counts().table == {}


def test_counting_off_records_nothing(hand_program):
    chip = Chip(hand_program, ideal=True, count_ops=False)
    chip.run({"x": np.ones((4, 100), dtype=np.float32)})
    assert chip.vectors == {} and chip.host_calls == {}


def test_counts_are_deterministic_and_cached(hand_program, tmp_path):
    first = static_block_counts(hand_program, "inference", 3).table
    assert per_vector_table(hand_program, "inference") is per_vector_table(hand_program, "inference")
    again = compile_model(random_mlp(tmp_path / "mlp.onnx"), load_target("tiny"), placer="greedy")
    assert static_block_counts(again, "inference", 3).table == first


def conv_segment() -> onnx.ModelProto:
    """x[N,1,8,8] → Conv(4 filters 3x3, bias) → Relu → MaxPool 2x2/2 → Flatten → MatMul(36x10) → Add."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b"),
        numpy_helper.from_array(rng.normal(size=(36, 10)).astype(np.float32), "m"),
        numpy_helper.from_array(np.zeros(10, np.float32), "c"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["conv"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("MatMul", ["flat", "m"], ["mm"]),
        helper.make_node("Add", ["mm", "c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "seg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_host_flops_against_a_hand_count():
    # Conv: 4·6·6 = 144 outputs × (2·1·3·3 + 1 bias) = 2736; Relu 144; MaxPool 36 outputs
    # × 4 = 144; Flatten 0; MatMul 2·36·10 = 720; Add 10 → 3754 per example.
    flops, uncounted = segment_flops(conv_segment(), {"x": (1, 1, 8, 8)})
    assert (flops, uncounted) == (3754, [])
    assert segment_flops(conv_segment(), {"x": (3, 1, 8, 8)})[0] == 3 * 3754


def test_host_flops_name_what_they_cannot_count():
    model = conv_segment()
    model.graph.node.append(helper.make_node("NonMaxSuppression", ["y"], ["z"], name="nms"))
    flops, uncounted = segment_flops(model, {"x": (1, 1, 8, 8)})
    assert flops == 3754 and uncounted == ["nms"]


def test_layer_program_counts_map_a_layers_iterations_to_tiles(hand_program):
    """fc1's 101x70 iteration matrix: b0 → tile (0,0), b1 + b3 → (0,1) side by side in
    rows 0..63 and 0..36, b2 → (0,2). Slots: a tile row costs its largest count."""
    iterations = np.zeros((101, 70), dtype=np.int64)
    iterations[0, 0] = 5  # b0, tile (0,0), tile row 0
    iterations[0, 64] = 3  # b1, tile (0,1), tile row 0
    iterations[64, 65] = 4  # b3, tile (0,1), tile row 0 (its row 64 sits at tile row 0)
    iterations[70, 1] = 2  # b2, tile (0,2), tile row 6
    iterations[100, 3] = 1  # b2's bias row, tile (0,2), tile row 36
    counts = layer_program_counts(hand_program, "transfer", "fc1", iterations)
    assert counts.table[("transfer", "fc1", (0, 0))] == {"pcm_program_iterations": 5}
    assert counts.table[("transfer", "fc1", (0, 1))] == {"pcm_program_iterations": 7}
    assert counts.table[("transfer", "fc1", (0, 2))] == {"pcm_program_iterations": 3}
    # slowest tile: (0,0) row 0 → 5; (0,1) row 0 → max(3, 4) = 4; (0,2) rows 6, 36 → 3
    assert counts.table[("transfer", "fc1", None)] == {"program_steps": 5}


def test_summary_says_n_a_where_a_figure_is_undefined():
    """An all-host program: no chip time or ops, so throughput and efficiencies are
    undefined; the summary says so instead of printing 0."""
    report = {"examples": 2, "energy_per_example_j": 0.0, "latency_per_example_s": 0.0, "throughput_examples_per_s": None,
              "gops_per_w": None, "gops_per_mm2": None, "tiles_used": 0, "area_mm2": 0.0, "setup_energy_j": 0, "setup_time_s": 0,
              "peak": {"gops_per_w": 14102.0, "gops_per_mm2": 1590.0}}
    first, second = summary_lines(report)
    assert first.endswith("throughput n/a examples/s")
    assert second.startswith("n/a GOP/s/W, n/a GOP/s/mm² on 0 tiles")
