"""Device physics against the published formulas and hand-computed values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import devices, periphery
from analogc.runtime.physics.layer_devices import FIELDS, LayerDevices, read_variance_us

PCM = load_target(None).pcm
N = 100_000


def formula_sigma(g):
    g_hat = g / 25.0
    return max(0.26348 + 1.9650 * g_hat - 1.1731 * g_hat**2, 0.0)


def formula_nu(g):
    g_hat = g / 25.0
    mean = min(max(-0.0155 * math.log(g_hat) + 0.0244, 0.049), 0.1)
    std = min(max(-0.0125 * math.log(g_hat) - 0.0059, 0.008), 0.045)
    return mean, std


def test_programming_sigma_hand_values():
    assert devices.programming_sigma(np.array(0.0), PCM) == pytest.approx(0.26348)
    assert devices.programming_sigma(np.array(25.0), PCM) == pytest.approx(0.26348 + 1.9650 - 1.1731)
    assert devices.programming_sigma(np.array(10.0), PCM) == pytest.approx(0.26348 + 1.9650 * 0.4 - 1.1731 * 0.16)


@pytest.mark.parametrize("g_target", [2.0, 5.0, 10.0, 15.0, 20.0])
def test_closed_loop_error_follows_published_fit(g_target):
    rng = np.random.default_rng(1)
    g, iterations = devices.program_closed_loop(np.full(N, g_target), PCM, rng)
    error = g - g_target
    assert error.std() == pytest.approx(formula_sigma(g_target), rel=0.10)
    assert abs(error.mean()) < 0.1 * formula_sigma(g_target)
    assert iterations.min() >= 1 and iterations.max() <= PCM.prog_max_iterations


def test_closed_loop_without_noise_is_exact():
    quiet = dataclasses.replace(PCM, programming_noise=False)
    target = np.array([0.0, 3.0, 19.5])
    g, _ = devices.program_closed_loop(target, quiet, np.random.default_rng(0))
    np.testing.assert_array_equal(g, target)


def test_set_increment_shrinks_as_device_saturates():
    rng = np.random.default_rng(0)
    quiet = dataclasses.replace(PCM, set_step_noise=0.0)
    low = devices.set_increment(np.array([0.0]), np.array([100.0]), quiet, rng)
    high = devices.set_increment(np.array([20.0]), np.array([100.0]), quiet, rng)
    # Nominal step is capped at set_step = 5 µS; response 1 at G=0 and 1 − 20/25 at G=20.
    assert low[0] == pytest.approx(5.0) and high[0] == pytest.approx(5.0 * 0.2)


@pytest.mark.parametrize("g", [1.0, 5.0, 10.0, 20.0])
def test_drift_exponent_statistics(g):
    nu = devices.drift_exponents(np.full(N, g), PCM, np.random.default_rng(2))
    mean, std = formula_nu(g)
    assert nu.mean() == pytest.approx(mean, rel=0.10)
    assert nu.std() == pytest.approx(std, rel=0.10)


def test_drift_factor_hand_value():
    nu = np.array([0.05, 0.1])
    factor = devices.drift_factor(nu, 20.0 * 3600, PCM)
    np.testing.assert_allclose(factor, (3600.0) ** -nu)
    np.testing.assert_array_equal(devices.drift_factor(nu, 10.0, PCM), [1.0, 1.0])


def test_read_noise_scales_with_time_as_formula():
    g = np.full(N, 10.0)
    rng = np.random.default_rng(3)
    stds = {}
    for t in (20.0, 3600.0, 86400.0 * 30):
        reads = devices.read_with_noise(g, t, PCM, rng)
        stds[t] = reads.std()
        q = min(0.0088 / (10.0 / 25.0) ** 0.65, 0.2) * math.sqrt(math.log((t + 250e-9) / (2 * 250e-9)))
        assert stds[t] == pytest.approx(10.0 * q, rel=0.03)
    ratio = math.sqrt(math.log((86400 * 30 + 250e-9) / 5e-7) / math.log((20 + 250e-9) / 5e-7))
    assert stds[86400.0 * 30] / stds[20.0] == pytest.approx(ratio, rel=0.05)


def test_fault_fractions():
    faulty = dataclasses.replace(PCM, stuck_high_fraction=0.02, dead_fraction=0.05)
    stuck, dead = devices.fault_masks((N,), faulty, np.random.default_rng(4))
    assert stuck.mean() == pytest.approx(0.02, abs=0.003) and dead.mean() == pytest.approx(0.05, abs=0.004)
    assert not (stuck & dead).any()
    g = devices.apply_faults(np.full(N, 5.0), stuck, dead, faulty)
    assert (g[stuck] == 25.0).all() and (g[dead] == 0.0).all() and (g[~stuck & ~dead] == 5.0).all()


def test_quantize_hand_values():
    # 3 bits over [-1, 1]: 7 levels k/3, k = -3..3.
    x = np.array([-2.0, -0.4, 0.1, 0.2, 0.9, 5.0], dtype=np.float32)
    np.testing.assert_allclose(periphery.quantize(x, 1.0, 3), [-1.0, -1 / 3, 0.0, 1 / 3, 1.0, 1.0], atol=1e-6)


def test_dac_normalises_per_example():
    p = load_target(None).periphery
    x = np.array([[0.5, -0.25, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    x_n, scale = periphery.dac(x, p)
    np.testing.assert_allclose(scale[:, 0], [0.5, 1.0])
    # 8 bits: levels k/127; -0.5 -> -63.5/127 rounds to the even -64/127.
    np.testing.assert_allclose(x_n[0], [1.0, -64 / 127, 0.0], atol=1e-6)


def masked_closed_loop(g, target, touched, pcm, rng):
    """The loop as first written: mask the whole array at every iteration (the reference
    for the compacted index list that `devices.closed_loop` keeps)."""
    iterations = np.zeros(target.shape, dtype=np.int32)
    active = touched & (np.abs(target - g) > pcm.prog_tolerance)
    for _ in range(pcm.prog_max_iterations):
        if not active.any():
            break
        idx = np.nonzero(active)
        error = target[idx] - g[idx]
        iterations[idx] += 1
        step = devices.set_increment(g[idx], np.clip(error, 0.0, None), pcm, rng)
        g[idx] = np.clip(np.where(error < -pcm.prog_tolerance, pcm.reset_g, g[idx] + step), 0.0, pcm.g_max)
        active[idx] = np.abs(target[idx] - g[idx]) > pcm.prog_tolerance
    idx = np.nonzero(touched)
    g[idx] = np.clip(g[idx] + devices.programming_sigma(target[idx], pcm) * rng.standard_normal(len(idx[0])), 0.0, pcm.g_max)
    return g, iterations


@pytest.mark.parametrize("contiguous", [True, False])
def test_closed_loop_matches_the_whole_array_loop_bit_for_bit(contiguous):
    rng = np.random.default_rng(5)
    start = rng.uniform(0, 25, (60, 40))
    target = np.clip(start + rng.normal(0, 4, start.shape), 0, PCM.g_prog_max)
    touched = rng.random(start.shape) < 0.7
    expected_g, expected_it = masked_closed_loop(start.copy(), target, touched, PCM, np.random.default_rng(9))
    g = start.copy() if contiguous else np.asfortranarray(start)  # in place either way
    result, iterations = devices.closed_loop(g, target, touched, PCM, np.random.default_rng(9))
    assert np.array_equal(result, expected_g) and np.array_equal(g, expected_g)
    assert np.array_equal(iterations, expected_it) and iterations.max() > 1


def test_read_noise_amplitude_follows_the_programmed_conductance():
    # Programmed to 10 µS (ĝ = 0.4), drifted to 6 µS a day later: σ = 6·Q(0.4, day), the
    # published fit's form (Q of the target, amplitude of the drifted G), not 6·Q(0.24).
    day = 86400.0

    def q(g_hat):
        return min(0.0088 / g_hat**0.65, 0.2) * math.sqrt(math.log((day + 250e-9) / (2 * 250e-9)))

    reads = devices.read_with_noise(np.full(N, 6.0), day, PCM, np.random.default_rng(5), g_programmed=np.full(N, 10.0))
    assert reads.std() == pytest.approx(6.0 * q(0.4), rel=0.03)
    # The tile's output-referred variance uses the same rule: F²·((G⁺(t)·Q(G⁺ programmed))² + …).
    spec = load_target(None)
    state = LayerDevices(**{name: np.zeros((2, 3), dtype) for name, dtype in FIELDS.items()})
    state.g_plus[:], state.g_minus[:] = 10.0, 2.0
    state.nu_plus[:] = state.nu_minus[:] = 0.06
    factor = (day / 20.0) ** -np.float64(np.float32(0.06))  # ν is stored as float32
    expected = spec.cell.gain_f**2 * ((10.0 * factor * q(0.4)) ** 2 + (2.0 * factor * q(0.08)) ** 2)
    window = (slice(0, 2), slice(1, 3))
    np.testing.assert_allclose(read_variance_us(state, window, day, spec), np.full((2, 2), expected), rtol=1e-12)
