"""One layer's training physics: polarity inversion against a fixed step asymmetry,
transfer fidelity, and reads against plain matrix products."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogc.runtime.format.spec import load_target
from analogc.runtime.format.vocabulary import DEVICE_FIELDS
from analogc.runtime.physics import devices
from analogc.runtime.physics.layer_devices import program_layer
from analogc.runtime.training.analog_layer import TrainableLayer

F32 = np.float32


def quiet_spec(**training):
    """The default chip with every noise source off and the plain transfer (no offset,
    threshold or deadband; the residual dropped), so one effect can be isolated."""
    spec = load_target("pcm3t1c-2018")
    spec = dataclasses.replace(
        spec,
        pcm=dataclasses.replace(spec.pcm, programming_noise=False, read_noise=False, drift=False),
        periphery=dataclasses.replace(spec.periphery, quantization=False, output_noise_enabled=False),
        capacitor=dataclasses.replace(spec.capacitor, step_mismatch=0.0),
        training=dataclasses.replace(
            spec.training,
            **{"transfer_offset": 0.0, "transfer_threshold": 0.0, "transfer_deadband": 0.0, "transfer_residual": "drop", **training},
        ),
    )
    return spec


def toy_layer(spec, weights: np.ndarray, w_max: float = 1.0, seed: int = 0, blocks=None) -> TrainableLayer:
    k, n = weights.shape
    entry = {"name": "toy", "shape": [k, n], "bias": "none", "activation": {"op": "identity"}}
    blocks = blocks or [{"rows": [0, k], "cols": [0, n]}]
    us = spec.cell.gain_f * spec.pcm.g_prog_max / w_max
    regions = [(slice(*b["rows"]), slice(*b["cols"])) for b in blocks]
    state = program_layer(weights.astype(np.float64) * us, regions, spec, np.random.default_rng(seed))
    return TrainableLayer(entry, blocks, state, spec, w_max, None)


def transfer(layer: TrainableLayer, seed: int, compiled: bool) -> None:
    """A transfer in numpy (the generator's draws) or compiled (`transfer_kernel`, keyed draws)."""
    layer.transfer(np.random.default_rng(seed), key=seed if compiled else None)


def regression_error(polarity_inversion: bool, asymmetry: float = 0.3, seed: int = 0) -> float:
    """Per-example SGD on noisy targets y = x·W* + N(0, 0.5²) from W = 0, every cell's
    up step (1 + a) and down step (1 − a) times nominal, inputs active 10% of the time
    (so SGD's pull back is slow next to the transfer interval); returns the mean
    |W − W*| over the last 2,000 of 8,000 examples."""
    spec = quiet_spec(polarity_inversion=polarity_inversion)
    rng = np.random.default_rng(seed)
    k, n = 12, 6
    target = rng.uniform(-0.5, 0.5, (k, n)).astype(F32)
    layer = toy_layer(spec, np.zeros((k, n), F32))
    nominal = spec.capacitor.dv_up
    layer.state.dv_up[...] = nominal * (1 + asymmetry)
    layer.state.dv_down[...] = nominal * (1 - asymmetry)
    errors = []
    for step in range(1, 8001):
        x = (rng.uniform(0, 1, k) * (rng.random(k) < 0.1)).astype(F32)
        y = x @ target + F32(0.5) * rng.standard_normal(n).astype(F32)
        layer.update(x, layer.forward(x, 2 * step) - y, 0.02, 2 * step + 1)
        if step % 50 == 0:
            layer.transfer(rng)
        if step > 6000:
            errors.append(np.mean(np.abs(layer.weights() - target)))
    return float(np.mean(errors))


def test_polarity_inversion_cancels_a_fixed_step_asymmetry():
    with_inversion = regression_error(True)
    without = regression_error(False)
    # Up steps 1.86x the down steps push every weight the same way between transfers;
    # flipping s at each transfer turns that push around, so it averages out.
    assert with_inversion < 0.5 * without, (with_inversion, without)


def test_symmetric_cells_learn_the_regression_either_way():
    symmetric = regression_error(True, asymmetry=0.0)
    assert abs(regression_error(False, asymmetry=0.0) - symmetric) < 0.3 * symmetric
    assert regression_error(True) < 1.5 * symmetric


def moved_layer(spec, seed=0):
    """A layer whose capacitors hold part of the weight (random pulses applied)."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-0.8, 0.8, (40, 30)).astype(F32)
    layer = toy_layer(spec, weights, seed=seed)
    for k in range(20):
        layer.update(rng.uniform(0, 1, 40).astype(F32), rng.standard_normal(30).astype(F32), 0.02, k)
    return layer


@pytest.mark.parametrize("compiled", [False, True])
def test_transfer_is_exact_without_noise_and_flips_polarity(compiled):
    spec = quiet_spec()
    layer = moved_layer(spec)
    before, sign = layer.weights(), layer.state.sign
    assert np.abs(layer.state.v - spec.capacitor.v_init).max() > 0.01  # the capacitors moved
    transfer(layer, 1, compiled)
    assert layer.state.sign == -sign
    assert np.all(layer.state.v == np.float32(spec.capacitor.v_init))
    # Devices already within the closed loop's tolerance of their target are left alone.
    tolerance = spec.cell.gain_f * spec.pcm.prog_tolerance / layer.us
    np.testing.assert_allclose(layer.weights(), before, atol=tolerance * 1.001)
    np.testing.assert_array_equal(layer.w, layer.weights())


@pytest.mark.parametrize("compiled", [False, True])
def test_transfer_keeps_weights_within_programming_error(compiled):
    spec = load_target("pcm3t1c-2018")
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, transfer_offset=0.0, transfer_threshold=0.0))
    layer = moved_layer(spec)
    before_us = layer.state.weights_us(spec)
    plus_before, minus_before = layer.state.g_plus.copy(), layer.state.g_minus.copy()
    transfer(layer, 2, compiled)
    error = layer.state.weights_us(spec) - before_us
    # Each reprogrammed device lands within N(0, σ(g)) of its target; reading W first
    # adds the read noise. Bound: F·sqrt(2)·σ at the largest conductance, 5 sd per cell,
    # and the mean well inside one sd.
    sigma_max = float(devices.programming_sigma(np.array([spec.pcm.g_prog_max]), spec.pcm)[0])
    bound = spec.cell.gain_f * np.sqrt(2) * (sigma_max + 0.5)
    assert np.abs(error).max() < 5 * bound
    assert np.abs(error).mean() < bound
    # Incremental: devices only went up by partial SETs, or were RESET and reprogrammed.
    grew = (layer.state.g_plus >= plus_before - 3 * sigma_max) | (layer.state.g_plus < plus_before)
    assert grew.all() and (layer.state.g_minus >= 0).all()


@pytest.mark.parametrize("compiled", [False, True])
def test_ideal_reads_are_matrix_products_over_split_blocks(compiled):
    spec = dataclasses.replace(load_target("pcm3t1c-2018").without_nonidealities())
    rng = np.random.default_rng(3)
    weights = rng.uniform(-1, 1, (37, 23)).astype(F32)
    blocks = [{"rows": [0, 20], "cols": [0, 10]}, {"rows": [20, 37], "cols": [0, 10]},
              {"rows": [0, 20], "cols": [10, 23]}, {"rows": [20, 37], "cols": [10, 23]}]
    layer = toy_layer(spec, weights, blocks=blocks)
    layer.compiled = compiled and layer.compiled
    x, d = rng.standard_normal(37).astype(F32), rng.standard_normal(23).astype(F32)
    x[::3] = 0  # rows with no input are skipped by the compiled read
    np.testing.assert_allclose(layer.forward(x, 1), x @ weights, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.backward(d, 2), weights @ d, rtol=1e-5, atol=1e-5)


def test_noisy_reads_are_unbiased_and_bounded():
    spec = load_target("pcm3t1c-2018")
    rng = np.random.default_rng(4)
    weights = rng.uniform(-0.5, 0.5, (50, 20)).astype(F32)
    layer = toy_layer(spec, weights)
    x = rng.uniform(0, 1, 50).astype(F32)
    reads = np.array([layer.forward(x, k) for k in range(400)])
    exact = x @ layer.w
    # Quantisation and noise are zero-mean at this scale: the average read is the product.
    np.testing.assert_allclose(reads.mean(axis=0), exact, atol=4 * reads.std(axis=0).max() / np.sqrt(400) + 0.02)
    bound = spec.periphery.adc_bound * layer.w_max * np.abs(x).max() / spec.periphery.dac_range
    assert np.abs(reads).max() <= bound + 1e-4


@pytest.mark.parametrize("compiled", [False, True])
def test_stochastic_transfer_is_unbiased_and_leaves_most_pairs_alone(compiled):
    spec = quiet_spec(transfer_threshold=3.0)  # µS
    layer = toy_layer(spec, np.full((60, 50), 0.3, F32))
    # Give every capacitor the same small share: +0.6 µS of weight, 1/5 of the threshold.
    share = 0.6
    cap = spec.capacitor
    layer.state.v[...] = cap.v_init + share / (cap.g_per_volt * layer.state.sign)
    layer.sync()
    before = layer.state.weights_us(spec)
    plus, minus = layer.state.g_plus.copy(), layer.state.g_minus.copy()
    transfer(layer, 7, compiled)
    after = layer.state.weights_us(spec)
    moved = (layer.state.g_plus != plus) | (layer.state.g_minus != minus)
    # About |c|/θ = 20% of the pairs are programmed (by θ), the rest keep their devices.
    assert 0.15 < moved.mean() < 0.25
    np.testing.assert_allclose(after[~moved], before[~moved] - share, atol=1e-4)
    # Unbiased: the mean weight is kept (3,000 pairs, sd of the mean ≈ 0.05 µS).
    assert abs(after.mean() - before.mean()) < 0.2


@pytest.mark.parametrize("compiled", [False, True])
def test_capacitor_read_transfer_keeps_pcm_read_noise_out_of_the_weights(compiled):
    """Programming exact, PCM reads noisy: a transfer that reads the whole weight writes
    that read's 1/f noise into the PCM pair; one that reads only the capacitor pair's
    share moves the pair by exactly that share (to the closed loop's tolerance)."""
    errors = {}
    for mode in ("weight", "capacitor"):
        spec = quiet_spec(transfer_read=mode)
        spec = dataclasses.replace(spec, pcm=dataclasses.replace(spec.pcm, read_noise=True))
        layer = moved_layer(spec)
        before = layer.weights()
        transfer(layer, 3, compiled)
        errors[mode] = np.abs(layer.weights() - before)
        tolerance = spec.cell.gain_f * spec.pcm.prog_tolerance / layer.us
    assert errors["capacitor"].max() <= tolerance * 1.001
    assert errors["weight"].max() > 5 * tolerance


@pytest.mark.parametrize("compiled", [False, True])
def test_residual_write_back_keeps_what_the_pcm_did_not_take(compiled):
    """Noise-free chip: a pair whose change is within the closed loop's tolerance keeps
    its devices; with "drop" its share is lost at the capacitor reset, with "keep" it is
    pulsed back (to within one pulse of stochastic rounding)."""
    errors = {}
    for mode in ("drop", "keep"):
        spec = quiet_spec(transfer_residual=mode)
        layer = moved_layer(spec)
        before = layer.weights().astype(np.float64)
        plus, minus = layer.state.g_plus.copy(), layer.state.g_minus.copy()
        transfer(layer, 4, compiled)
        unmoved = (layer.state.g_plus == plus) & (layer.state.g_minus == minus)
        assert unmoved.any() and not unmoved.all()
        errors[mode] = np.abs(layer.weights() - before)[unmoved]
        pulse = spec.capacitor.g_per_volt * spec.capacitor.dv_up / layer.us  # weight units of one pulse
        tolerance = spec.cell.gain_f * spec.pcm.prog_tolerance / layer.us
    assert errors["keep"].max() <= pulse * 1.001
    assert errors["drop"].max() > 2 * pulse and errors["drop"].max() <= tolerance * 1.001
    assert errors["keep"].mean() < 0.5 * errors["drop"].mean()


@pytest.mark.parametrize("offset", [0.0, 2.0])
@pytest.mark.parametrize("compiled", [False, True])
def test_deadband_holds_small_changes_and_keep_defers_them(offset, compiled):
    """Noise-free chip: pairs whose change is below the deadband keep their devices (the
    offset rule included) and, with "keep", their share is back in the capacitor to
    within one pulse; larger changes are programmed as without a deadband."""
    exact = moved_layer(quiet_spec())  # noise-free and no offset: ΔG is the share exactly
    plus, minus = exact.state.g_plus.copy(), exact.state.g_minus.copy()
    transfer(exact, 4, compiled)
    change = np.abs(exact.spec.cell.gain_f * ((exact.state.g_plus - plus) - (exact.state.g_minus - minus)))
    deadband = float(np.median(change[change > 0]))
    free = moved_layer(quiet_spec(transfer_offset=offset))  # no deadband, same offset
    transfer(free, 4, compiled)
    spec = quiet_spec(transfer_offset=offset, transfer_deadband=deadband, transfer_residual="keep")
    layer = moved_layer(spec)
    before = layer.weights().astype(np.float64)
    transfer(layer, 4, compiled)
    untouched = (layer.state.g_plus == plus) & (layer.state.g_minus == minus)
    small = change < deadband - 1e-9
    assert small.sum() > 100 and (~small).sum() > 100
    assert untouched[small].all()
    assert not untouched[change > deadband + 1e-9].any()
    np.testing.assert_array_equal(layer.state.g_plus[~small], free.state.g_plus[~small])
    pulse = spec.capacitor.g_per_volt * spec.capacitor.dv_up / layer.us
    assert np.abs(layer.weights() - before)[small].max() <= pulse * 1.001


@pytest.mark.parametrize("compiled", [False, True])
def test_verify_puts_what_programming_missed_into_the_capacitor(compiled):
    """Programming noise on, everything else quiet: with "keep" a programmed pair keeps
    its programming error; with "verify" one read after programming (noise-free here)
    sends what it missed into the capacitor, to within one pulse where the capacitor's
    range holds it."""
    errors = {}
    for mode in ("keep", "verify"):
        spec = quiet_spec(transfer_residual=mode)
        spec = dataclasses.replace(spec, pcm=dataclasses.replace(spec.pcm, programming_noise=True))
        layer = moved_layer(spec)
        before = layer.weights().astype(np.float64)
        plus, minus = layer.state.g_plus.copy(), layer.state.g_minus.copy()
        transfer(layer, 4, compiled)
        moved = (layer.state.g_plus != plus) | (layer.state.g_minus != minus)
        assert moved.sum() > 500
        errors[mode] = np.abs(layer.weights() - before)[moved]
        pulse = spec.capacitor.g_per_volt * spec.capacitor.dv_up / layer.us
    assert np.mean(errors["verify"] <= pulse * 1.001) > 0.95
    assert errors["keep"].mean() > 5 * errors["verify"].mean()


@pytest.mark.parametrize("offset", [0.0, 2.0])
def test_compiled_transfer_is_the_numpy_transfer_where_nothing_is_random(offset):
    """Programming exact, reads exact, the residual dropped (no stochastic rounding):
    the compiled transfer and the numpy one must leave the same devices, bit for bit,
    through the deadband, the offset rule and the refreshes."""
    spec = quiet_spec(transfer_offset=offset, transfer_deadband=0.5, refresh_threshold=0.5)
    layers = [moved_layer(spec, seed=3) for _ in range(2)]
    transfer(layers[0], 5, False)
    transfer(layers[1], 5, True)
    numpy_state, compiled_state = layers[0].state, layers[1].state
    assert layers[0].refreshed > 0 and layers[0].refreshed == layers[1].refreshed
    for name in ("g_plus", "g_minus", "v", "nu_plus", "nu_minus"):
        np.testing.assert_array_equal(getattr(compiled_state, name), getattr(numpy_state, name), err_msg=name)
    assert compiled_state.sign == numpy_state.sign
    np.testing.assert_array_equal(layers[1].w, layers[0].w)


def test_compiled_transfer_matches_the_numpy_transfer_in_distribution():
    """Every noise source on (the default chip): the two transfers draw different random
    numbers from the same model, so over 40 x 30 cells and 8 transfers each their
    weight errors, programmed pairs and closed-loop iterations agree statistically."""
    spec = load_target("pcm3t1c-2018")
    stats = {}
    for compiled in (False, True):
        errors, moved, iterations = [], [], []
        for seed in range(8):
            layer = moved_layer(spec, seed=seed)
            before = layer.state.weights_us(spec)
            plus, minus = layer.state.g_plus.copy(), layer.state.g_minus.copy()
            transfer(layer, 100 + seed, compiled)
            errors.append(layer.state.weights_us(spec) - before)
            moved.append(np.mean((layer.state.g_plus != plus) | (layer.state.g_minus != minus)))
            iterations.append(layer.pcm_iterations)
        stats[compiled] = (np.mean(errors), np.std(errors), np.mean(moved), np.mean(iterations))
    (mean0, sd0, moved0, it0), (mean1, sd1, moved1, it1) = stats[False], stats[True]
    assert abs(mean1 - mean0) < 0.1 * sd0  # 9,600 errors each: sd of a mean ≈ 0.01·sd
    assert abs(sd1 / sd0 - 1) < 0.1
    assert abs(moved1 / moved0 - 1) < 0.1
    assert abs(it1 / it0 - 1) < 0.1


def stuck_some(layer, seed: int) -> None:
    """Mark 3% of each device polarity stuck high and 3% dead (the transfer re-applies them)."""
    rng = np.random.default_rng(seed)
    from analogc.runtime.format.vocabulary import FAULT_DEAD, FAULT_STUCK_HIGH

    for faults in (layer.state.faults_plus, layer.state.faults_minus):
        draw = rng.random(faults.shape)
        faults[draw < 0.03] = FAULT_STUCK_HIGH
        faults[(draw >= 0.03) & (draw < 0.06)] = FAULT_DEAD


@pytest.mark.parametrize(
    "training",
    [
        {},  # the default transfer: deadband, verify
        {"transfer_threshold": 1.0, "transfer_offset": 2.0, "refresh_threshold": 0.5},
        {"transfer_residual": "keep", "transfer_deadband": 0.0},
        {"transfer_residual": "drop", "transfer_read": "weight"},
    ],
)
def test_fast_transfer_pass_is_the_cell_by_cell_transfer(training):
    """The compiled transfer finishes cells whose devices stay in a branch-free first
    pass; with that pass off (fast=False) every cell goes through the cell-by-cell
    code. Both must leave the same devices, capacitors, counts and weights, bit for
    bit, with every noise source on, faults, the threshold, the offset and refreshes."""
    from analogc.runtime.training import transfer_kernel

    spec = load_target("pcm3t1c-2018")
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, **training))
    results = []
    for fast in (True, False):
        layer = moved_layer(spec, seed=7)
        stuck_some(layer, 7)
        w = np.zeros_like(layer.w)
        tally = np.zeros_like(layer.pulse_tally)
        counts = transfer_kernel.transfer(layer.state, spec, 11, layer.col_cuts, tally, layer.us, w, fast=fast)
        results.append((layer.state, counts, tally, w))
    (fast_state, fast_counts, fast_tally, fast_w), (cell_state, cell_counts, cell_tally, cell_w) = results
    for name in DEVICE_FIELDS:
        np.testing.assert_array_equal(getattr(fast_state, name), getattr(cell_state, name), err_msg=name)
    assert fast_counts[:2] == cell_counts[:2]
    np.testing.assert_array_equal(fast_counts[2], cell_counts[2])
    np.testing.assert_array_equal(fast_counts[3], cell_counts[3])
    np.testing.assert_array_equal(fast_tally, cell_tally)
    np.testing.assert_array_equal(fast_w.view(np.int32), cell_w.view(np.int32))
    moved = fast_counts[3].mean()
    assert 0.02 < moved < 0.98, moved  # both passes had cells to do


@pytest.mark.parametrize("residual", ["verify", "keep"])
def test_compiled_transfer_leaves_what_a_full_sync_computes(residual):
    """The compiled transfer writes the weights in its kernel and recomputes the read
    variance only where it programmed a pair: the layer must hold what recomputing
    everything from the devices (`sync`, as a restored checkpoint does) gives, bit for bit."""
    spec = load_target("pcm3t1c-2018")
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, transfer_residual=residual))
    layer = moved_layer(spec, seed=2)
    stuck_some(layer, 2)
    for k in range(3):
        transfer(layer, 20 + k, True)
        w, var, wgain = layer.w.copy(), layer.var.copy(), layer.wgain.copy()
        layer.sync()
        np.testing.assert_array_equal(w.view(np.int32), layer.w.view(np.int32))
        np.testing.assert_array_equal(var.view(np.int32), layer.var.view(np.int32))
        np.testing.assert_array_equal(wgain.view(np.int32), layer.wgain.view(np.int32))
        for _ in range(5):  # move the capacitors again before the next transfer
            layer.update(np.ones(40, F32), np.full(30, 0.5, F32), 0.02, 100 + k)


class ForcedWay:
    """A stand-in for cores.CHOICE that always takes one way."""

    def __init__(self, parallel: bool):
        self.parallel, self.calls = parallel, 0

    def run(self, key, values, serial, parallel, *args):
        self.calls += 1
        return (parallel if self.parallel else serial)(*args)


def test_transfer_on_both_cores_is_the_serial_transfer(monkeypatch):
    """Rows are independent, so the parallel build of the transfer must leave the same
    devices, counts and weights as the serial one, bit for bit."""
    from analogc.runtime.training import transfer_kernel

    spec = load_target("pcm3t1c-2018")
    results = []
    monkeypatch.setattr(transfer_kernel, "PARALLEL_CELLS", 0)  # the toy layer is small
    for parallel in (False, True):
        monkeypatch.setattr(transfer_kernel, "CHOICE", ForcedWay(parallel))
        layer = moved_layer(spec, seed=5)
        stuck_some(layer, 5)
        tally = np.zeros_like(layer.pulse_tally)
        counts = transfer_kernel.transfer(layer.state, spec, 13, layer.col_cuts, tally, layer.us, layer.w)
        assert transfer_kernel.CHOICE.calls == 1
        results.append((layer, counts, tally))
    (serial, serial_counts, serial_tally), (parallel, parallel_counts, parallel_tally) = results
    for name in DEVICE_FIELDS:
        np.testing.assert_array_equal(getattr(parallel.state, name), getattr(serial.state, name), err_msg=name)
    assert parallel_counts[:2] == serial_counts[:2] and serial_counts[1] > 0
    np.testing.assert_array_equal(parallel_counts[2], serial_counts[2])
    np.testing.assert_array_equal(parallel_tally, serial_tally)
    np.testing.assert_array_equal(parallel.w.view(np.int32), serial.w.view(np.int32))
