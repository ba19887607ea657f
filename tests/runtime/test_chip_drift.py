"""Drift compensation (where it acts, what it measures), the weight-range quantile, and
the layer's tile reads in onnxruntime, against hand-computed values and numpy."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from analogc.mapper import compile_model
from analogc.mapper.emit import weight_scale
from analogc.mapper.layer_graph import Dense
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.tile_reads import BlockMatrices, LayerReads, variance_codes
from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import dac_kernels
from analogc.runtime.physics.dac_kernels import square_codes, square_gain
from analogc.runtime.physics.layer_devices import us_per_weight
from tests.mapper.onnx_builders import mlp_model, random_feeds, save

PERIPHERY = load_target(None).periphery

DAY = 86400.0


@pytest.fixture(scope="module")
def program_and_feeds(tmp_path_factory):
    """A 100-80-70 MLP on `tiny` (64×64 tiles): layers split by rows and by columns."""
    model = mlp_model(13)
    path = save(model, tmp_path_factory.mktemp("drift"))
    program = compile_model(path, load_target("tiny"), placer="greedy", time_limit=2)
    return program, random_feeds(model, batch=40, seed=4)


def with_target(program, **changes):
    """A copy of the program whose target has `table.key` = value for each change."""
    program = copy.deepcopy(program)
    for dotted, value in changes.items():
        table, key = dotted.split(".")
        program.meta["target"][table][key] = value
    return program


def outputs(program, feeds, **options):
    return list(Chip(program, **options).run(dict(feeds)).values())


def test_default_compensates_at_the_adc_gain():
    assert load_target(None).pcm.drift_compensation_at == "adc_gain"


def test_gain_and_digital_factor_agree_without_adc_noise_and_quantisation(program_and_feeds):
    """Without output noise and quantisation the ADC is linear, so a gain before it and a
    factor after it give the same outputs (read noise scales with the signal either way)."""
    program, feeds = program_and_feeds
    linear = {"periphery.quantization": False, "periphery.output_noise_enabled": False}
    gain = outputs(with_target(program, **linear, **{"pcm.drift_compensation_at": "adc_gain"}), feeds, seed=3, drift_time=DAY)
    digital = outputs(with_target(program, **linear, **{"pcm.drift_compensation_at": "digital"}), feeds, seed=3, drift_time=DAY)
    for a, b in zip(gain, digital):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_gain_keeps_output_noise_small_after_drift(program_and_feeds):
    """With only output noise on, the ADC-gain chip's outputs after a day stay closer to the
    noise-free ones than the digital-factor chip's (which multiplies the noise by α > 1)."""
    program, feeds = program_and_feeds
    only_output_noise = {"periphery.quantization": False, "pcm.read_noise": False}
    clean = outputs(with_target(program, **only_output_noise, **{"periphery.output_noise_enabled": False}), feeds, seed=3, drift_time=DAY)
    errors = {}
    for where in ("adc_gain", "digital"):
        got = outputs(with_target(program, **only_output_noise, **{"pcm.drift_compensation_at": where}), feeds, seed=3, drift_time=DAY)
        errors[where] = float(np.sqrt(np.mean((got[0] - clean[0]) ** 2)))
    chip = Chip(with_target(program, **only_output_noise), seed=3, drift_time=DAY)
    alpha = np.mean(list(chip.compensation.values()))
    assert alpha > 1.3  # a day of drift: conductances fell by about (4320)^-0.05 or more
    assert errors["adc_gain"] < errors["digital"] / 1.2


def test_calibration_without_read_noise_is_the_column_sum_ratio(program_and_feeds):
    """α per tile = Σ_columns |Σ_rows W(t0)| / Σ_columns |Σ_rows W(t)| (all-ones input)."""
    program, _ = program_and_feeds
    chip = Chip(with_target(program, **{"pcm.read_noise": False}), seed=2, drift_time=DAY)
    assert chip.compensation
    alphas, now = dict(chip.compensation), tile_column_currents(chip)
    chip.set_time(20.0)
    before = tile_column_currents(chip)
    assert set(alphas) == set(now) and len(alphas) > 1
    for key, alpha in alphas.items():  # the chip's block weights are float32
        assert alpha == pytest.approx(np.abs(before[key]).sum() / np.abs(now[key]).sum(), rel=1e-5)


def tile_column_currents(chip) -> dict:
    """Per tile, the column sums of W (µS) over every block placed on it, from the
    chip's effective block weights (weight units) at its current time."""
    columns = {}
    for bid, block in chip.blocks.items():
        current = columns.setdefault(tuple(block["tile"]), np.zeros(chip.spec.chip.tile_cols))
        c0 = block["offset"][1]
        weights = chip.block_weights[bid].astype(np.float64) * chip.us_per_weight[block["layer"]]
        current[c0:c0 + weights.shape[1]] += weights.sum(axis=0)
    return columns


def test_no_compensation_at_t0_or_when_switched_off(program_and_feeds):
    program, _ = program_and_feeds
    assert Chip(program, seed=1).compensation == {}
    assert Chip(with_target(program, **{"pcm.drift_compensation": False}), seed=1, drift_time=DAY).compensation == {}


def test_weight_to_us_follows_the_programs_target(program_and_feeds):
    """Programs store w_max, not µS per weight: a target variant (as a sweep makes) with
    another g_prog_max and F maps the same w_max to F·g_prog_max, and the devices hold it."""
    program, _ = program_and_feeds
    assert all("us_per_weight" not in layer for layer in program.layers)
    changed = with_target(program, **{"pcm.g_prog_max": 10.0, "cell.gain_f": 2.0, "pcm.programming_noise": False,
                                      "pcm.stuck_high_fraction": 0.0, "pcm.dead_fraction": 0.0, "capacitor.enabled": False})
    chip = Chip(changed, seed=0)
    for layer in program.layers:
        assert chip.us_per_weight[layer["name"]] == pytest.approx(2.0 * 10.0 / layer["w_max"])
        store, matrix = chip.stores[(layer["name"], 0)], chip.matrices[layer["name"]]
        held = 2.0 * (store.g_plus - store.g_minus)  # F·(G⁺ − G⁻), µS, exact without programming noise
        np.testing.assert_allclose(held, np.clip(matrix / layer["w_max"], -1, 1) * 20.0, rtol=1e-6, atol=1e-9)


def test_devices_are_held_per_layer_not_per_tile(tmp_path):
    """One device store per layer, of the layer's array shape, whatever the tile size: a
    program for 65536 x 65536 tiles needs the memory of its layers' cells only."""
    spec = load_target("tiny")
    spec = dataclasses.replace(spec, chip=dataclasses.replace(spec.chip, tile_rows=65536, tile_cols=65536))
    model = mlp_model(13)
    program = compile_model(save(model, tmp_path), spec, placer="greedy", time_limit=2)
    chip = Chip(program, seed=0)
    assert {key: store.shape for key, store in chip.stores.items()} == {(name, 0): m.shape for name, m in chip.matrices.items()}
    got = outputs(program, random_feeds(model, batch=8, seed=4), seed=0)
    assert all(np.isfinite(y).all() for y in got)


# --- The weight range. ------------------------------------------------------------------------


def dense(weight, bias=None):
    return Dense("fc", "x", "y", np.asarray(weight, np.float32), None if bias is None else np.asarray(bias, np.float32))


def spec_with_quantile(q):
    spec = load_target(None)
    return dataclasses.replace(spec, cell=dataclasses.replace(spec.cell, w_max_rule="quantile", w_max_quantile=q))


def test_weight_range_quantile_hand_values():
    # |w| = 1, 2, ..., 1000 (signs alternate): numpy's linear quantile at 0.999 sits at
    # position 0.999·999 = 998.001 between 999 and 1000 -> 999.001.
    w = (np.arange(1, 1001) * np.where(np.arange(1000) % 2, -1, 1)).reshape(100, 10)
    assert weight_scale(dense(w), spec_with_quantile(1.0))["w_max"] == 1000.0
    assert weight_scale(dense(w), spec_with_quantile(0.999))["w_max"] == pytest.approx(999.001)
    # An analog bias takes part: 1010 magnitudes, position 0.999·1009 = 1007.991 of the sorted.
    with_bias = weight_scale(dense(w, bias=[5000.0] + [0.5] * 9), spec_with_quantile(0.999))
    magnitudes = np.sort(np.concatenate([np.abs(w).ravel(), [5000.0] + [0.5] * 9]))
    expected = magnitudes[1007] + 0.991 * (magnitudes[1008] - magnitudes[1007])
    assert with_bias["w_max"] == pytest.approx(expected)
    # µS per weight unit: F·g_prog_max (3 × 20 µS in the default target) over w_max.
    assert us_per_weight(spec_with_quantile(0.999), with_bias["w_max"]) == pytest.approx(3.0 * 20.0 / expected)


def test_default_weight_range_minimises_error_and_adc_keeps_the_0999_quantile():
    cell, periphery = load_target(None).cell, load_target(None).periphery
    assert (cell.w_max_rule, cell.w_max_design_time, cell.w_max_quantile) == ("min_error", 20.0, 0.999)
    assert periphery.adc_range == "quantile"


# --- Tile reads in onnxruntime. ---------------------------------------------------------------


def integer_variance(codes_x: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Brute force of the integer variance product: Σ code_x·code_v, scaled (float64)."""
    v_codes, scale = variance_codes(variance)
    step = 1.0 / float(square_gain(1.0))
    return (codes_x.astype(np.int64) @ v_codes.astype(np.int64)) * step * scale.astype(np.float64)


def test_variance_codes_hand_values():
    variance = np.array([[0.0, 2.0, 0.0], [1.0, 0.5, 0.0], [2.0, 2.0, np.nan]], dtype=np.float32)
    codes, scale = variance_codes(variance)
    np.testing.assert_allclose(scale, [2 / 127, 2 / 127, 1.0], rtol=1e-7)
    np.testing.assert_array_equal(codes, [[0, 127, 0], [64, 32, 0], [127, 127, 0]])  # 63.5 and 31.75 round to 64, 32
    assert codes.dtype == np.int8


def test_layer_reads_match_numpy_products():
    """Weights: the float product. Variance: the integer product of the square codes
    exactly (brute force), and within 1% of the float product of the squares."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((70, 9)).astype(np.float32)
    variance = (rng.random((70, 9)) ** 3).astype(np.float32)
    blocks = [
        BlockMatrices(4, (0, 64), weights[:64], variance[:64]),  # a row split ...
        BlockMatrices(7, (64, 70), weights[64:], None),  # ... whose second block has no read noise
    ]
    reads = LayerReads("fc", 70, blocks)
    x = rng.uniform(-1, 1, (33, 70)).astype(np.float32)
    codes = square_codes(x, 1.0)
    got = reads(x, codes)
    assert set(got) == {4, 7}
    np.testing.assert_allclose(got[4][0], x[:, :64] @ weights[:64], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[4][1], integer_variance(codes[:, :64], variance[:64]), rtol=1e-6)
    np.testing.assert_allclose(got[4][1], (x * x)[:, :64] @ variance[:64], rtol=0.01)
    np.testing.assert_allclose(got[7][0], x[:, 64:] @ weights[64:], rtol=1e-5, atol=1e-5)
    assert got[7][1] is None
    # A non-contiguous input and an empty batch.
    strided = np.asfortranarray(x)
    np.testing.assert_array_equal(reads(strided, np.asfortranarray(codes))[4][0], got[4][0])
    empty = reads(np.zeros((0, 70), np.float32), np.zeros((0, 70), np.uint8))
    assert empty[4][0].shape == (0, 9)


def test_layer_reads_take_row_segments_and_join_them_for_a_block_across_segments():
    """Blocks cut the rows at 0, 30, 50, 70: each reads its segments as fed (a tuple, as
    the DAC writes them) or cut from the whole input; a block over two segments joins them."""
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((70, 9)).astype(np.float32)
    variance = np.abs(rng.standard_normal((70, 9))).astype(np.float32)
    blocks = [
        BlockMatrices(0, (0, 30), weights[:30], variance[:30]),
        BlockMatrices(1, (30, 70), weights[30:], variance[30:]),  # spans two segments
        BlockMatrices(2, (50, 70), weights[50:, :4], variance[50:, :4]),
    ]
    reads = LayerReads("fc", 70, blocks)
    assert reads.bounds == (0, 30, 50, 70)
    x = rng.uniform(-1, 1, (17, 70)).astype(np.float32)
    x_sq = square_codes(x, 1.0)
    cut = lambda a: tuple(np.ascontiguousarray(a[:, r0:r1]) for r0, r1 in ((0, 30), (30, 50), (50, 70)))
    whole, parts = reads(x, x_sq), reads(cut(x), cut(x_sq))
    for bid, (r0, r1) in ((0, (0, 30)), (1, (30, 70)), (2, (50, 70))):
        cols = blocks[bid].weights.shape[1]
        np.testing.assert_allclose(whole[bid][0], x[:, r0:r1] @ weights[r0:r1, :cols], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(whole[bid][1], integer_variance(x_sq[:, r0:r1], variance[r0:r1, :cols]), rtol=1e-6)
        np.testing.assert_array_equal(parts[bid][0], whole[bid][0])
        np.testing.assert_array_equal(parts[bid][1], whole[bid][1])


def test_integer_variance_against_the_float_sums_on_a_programmed_layer(tmp_path):
    """On a programmed layer's own variances (the chip's devices) and its DAC outputs,
    the integer sums stay within 2% of the float ones for every output, 0.3% on average
    (measured 1.0% and 0.17%: the squares' 7-bit codes are most of it): the read noise's
    standard deviation, their square root, is off by half that."""
    program = compile_model(save(mlp_model(13, k=300, hidden=64, n=10, seed=5), tmp_path), load_target(None), time_limit=2)
    chip = Chip(program, seed=0)
    block = next(b for b in program.blocks if b["layer"] == program.layers[0]["name"])
    variance = chip.block_variance[block["id"]]
    rng = np.random.default_rng(2)
    x = np.maximum(rng.standard_normal((64, variance.shape[0])), 0).astype(np.float32)  # ReLU-like inputs
    x_n, codes, _ = dac_kernels.dac_layer(x, False, PERIPHERY, squares=True)
    reads = LayerReads("fc", variance.shape[0], [BlockMatrices(0, (0, variance.shape[0]), np.ones_like(variance), variance)])
    exact = (x_n.astype(np.float64) ** 2) @ variance.astype(np.float64)
    error = np.abs(reads(x_n, codes)[0][1] / exact - 1)
    assert error.max() < 0.02 and error.mean() < 0.003, (error.max(), error.mean())


def test_layer_reads_without_variance_take_one_input():
    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    reads = LayerReads("fc", 3, [BlockMatrices(0, (0, 3), weights, None)])
    y, v = reads(np.array([[1.0, 2.0, 3.0]], np.float32), None)[0]
    np.testing.assert_array_equal(y, [[16.0, 22.0]])  # hand: 0+2·2+3·4, 1+2·3+3·5
    assert v is None
