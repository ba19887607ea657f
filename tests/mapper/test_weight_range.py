"""The compile-time weight range w_max: the expected-error function against hand-computed
values and a Monte Carlo of the device model, its minimiser against a brute-force scan,
and the ADC's own range (periphery.adc_range) as the chip uses it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from analogc.mapper import compile_model
from analogc.mapper.weight_range import compensation, device_variance, w_max_by_rule, weight_error
from analogc.runtime.chip.chip import Chip
from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import devices
from tests.mapper.test_place import mlp

DAY = 86400.0


def spec_with(**changes):
    spec = load_target(None)
    tables = {}
    for dotted, value in changes.items():
        table, key = dotted.split("__")
        tables.setdefault(table, {})[key] = value
    return dataclasses.replace(spec, **{t: dataclasses.replace(getattr(spec, t), **kv) for t, kv in tables.items()})


def sigma_prog(g):  # the published fit, written out: 0.26348 + 1.9650ĝ − 1.1731ĝ², ĝ = g/25
    h = g / 25.0
    return 0.26348 + 1.9650 * h - 1.1731 * h * h


def read_sd(g, t):  # G·Q, Q = min(0.0088/ĝ^0.65, 0.2)·sqrt(ln((t + 250 ns)/(500 ns)))
    return g * min(0.0088 / (g / 25.0) ** 0.65, 0.2) * math.sqrt(math.log((t + 250e-9) / 500e-9))


def test_weight_error_by_hand_at_t0():
    # w_max = 1, g_prog_max = 20 µS: |w| = 0.5 -> 10 µS; |w| = 2 clips to 1 (error 1²) at
    # 20 µS. At t0 no drift: each weight's variance is its used device's programming error
    # and read noise plus the unused device's programming error at 0, times (1/20)².
    spec = spec_with(cell__w_max_design_time=20.0)
    v = lambda g: sigma_prog(g) ** 2 + read_sd(g, 20.0) ** 2  # noqa: E731
    expected = 1.0 + (1 / 20.0) ** 2 * (v(10.0) + v(20.0) + 2 * sigma_prog(0.0) ** 2)
    assert weight_error(np.array([0.5, 2.0]), 1.0, spec) == pytest.approx(expected, rel=1e-12)


def test_drift_residual_by_hand():
    # Drift alone (no programming or read noise), one weight at 2 µS: the compensation is
    # 1/E[e^{−νL}], so what is left is g²·(e^{σ_ν²L²} − 1), L = ln(1 day / 20 s).
    spec = spec_with(cell__w_max_design_time=DAY, pcm__programming_noise=False, pcm__read_noise=False)
    sigma_nu = -0.0125 * math.log(2.0 / 25.0) - 0.0059  # 0.0257, inside its clip [0.008, 0.045]
    big_l = math.log(DAY / 20.0)
    expected = (2.0 / 20.0) ** 2 * 2.0**2 * (math.exp((sigma_nu * big_l) ** 2) - 1)
    assert weight_error(np.array([0.2]), 2.0, spec) == pytest.approx(expected, rel=1e-9)


def test_device_variance_matches_a_monte_carlo_of_the_simulator():
    # 200k devices programmed to 8 µS by the closed loop, drifted to a day, compensated by
    # the expected factor, read once with 1/f noise: the mean squared error around 8 µS.
    spec = spec_with(cell__w_max_design_time=DAY)
    pcm, rng, g = spec.pcm, np.random.default_rng(0), 8.0
    programmed, _ = devices.program_closed_loop(np.full(200_000, g), pcm, rng)
    nu = devices.drift_exponents(programmed, pcm, rng)
    alpha = compensation(np.array([g]), spec)
    now = programmed * devices.drift_factor(nu, DAY, pcm)
    read = alpha * devices.read_with_noise(now, DAY, pcm, rng, g_programmed=programmed)
    simulated = float(np.mean((read - g) ** 2))
    assert device_variance(np.array([g]), alpha, spec)[0] == pytest.approx(simulated, rel=0.08)


@pytest.mark.parametrize("design_time", [20.0, DAY])
def test_min_error_w_max_beats_a_brute_force_scan(design_time):
    spec = spec_with(cell__w_max_design_time=design_time)
    magnitudes = np.abs(np.random.default_rng(3).standard_t(3, size=5000)) * 0.1
    chosen = w_max_by_rule(magnitudes, spec)
    scan = np.linspace(np.median(magnitudes), magnitudes.max(), 4000)
    errors = np.array([weight_error(magnitudes, w, spec) for w in scan])
    assert weight_error(magnitudes, chosen, spec) <= errors.min() * (1 + 1e-6)
    assert chosen == pytest.approx(scan[np.argmin(errors)], rel=0.01)
    assert chosen < magnitudes.max()  # heavy tails: clipping the largest weights pays


def test_without_device_noise_nothing_is_worth_clipping():
    spec = spec_with(pcm__programming_noise=False, pcm__read_noise=False, pcm__drift=False)
    magnitudes = np.abs(np.random.default_rng(1).standard_normal(1000))
    assert w_max_by_rule(magnitudes, spec) == pytest.approx(magnitudes.max(), rel=1e-6)


def test_a_later_design_time_clips_more():
    magnitudes = np.abs(np.random.default_rng(2).standard_t(4, size=5000))
    early = w_max_by_rule(magnitudes, spec_with(cell__w_max_design_time=20.0))
    late = w_max_by_rule(magnitudes, spec_with(cell__w_max_design_time=365 * DAY))
    assert late < early


def test_rules_and_degenerate_layers():
    w = np.arange(1, 1001, dtype=np.float64)
    assert w_max_by_rule(w, spec_with(), rule="quantile") == pytest.approx(999.001)
    assert w_max_by_rule(np.zeros(10), spec_with()) == 1.0
    assert w_max_by_rule(np.array([np.nan, 0.0, 2.0, np.inf]), spec_with(cell__w_max_rule="quantile", cell__w_max_quantile=1.0)) == 2.0


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return mlp(tmp_path_factory.mktemp("wr") / "m.onnx", [70, 40, 10])


def test_adc_range_is_the_quantile_and_the_chip_reads_through_it(model_path):
    spec = spec_with()
    program = compile_model(model_path, spec, time_limit=1)
    chip = Chip(program, seed=0)
    for layer in program.layers:
        matrix = np.vstack([program.arrays[f"weight/{layer['name']}"], program.arrays[f"bias/{layer['name']}"][None]])
        assert layer["adc_range"] == pytest.approx(float(np.quantile(np.abs(matrix), 0.999)), rel=1e-6)
        assert layer["w_max"] < layer["adc_range"]
        assert chip.adc_range[layer["name"]] == layer["adc_range"]
    tied = compile_model(model_path, spec_with(periphery__adc_range="w_max"), time_limit=1)
    assert all("adc_range" not in layer for layer in tied.layers)
    chip = Chip(tied, seed=0)
    assert chip.adc_range == chip.w_max


def test_ideal_chip_ignores_the_weight_range(model_path):
    program = compile_model(model_path, spec_with(), time_limit=1)
    x = np.random.default_rng(0).standard_normal((5, 70)).astype(np.float32)
    name = program.meta["model"]["inputs"][0]["name"]
    ideal = list(Chip(program, ideal=True).run({name: x}).values())[0]
    ref = list(Chip(compile_model(model_path, spec_with(cell__w_max_rule="quantile"), time_limit=1), ideal=True).run({name: x}).values())[0]
    np.testing.assert_allclose(ideal, ref, rtol=1e-5, atol=1e-6)


def test_the_bounded_minimum_is_scipys_bit_for_bit():
    """mapper/bounded_minimum.py is scipy's fminbound without its 0.8 s import."""
    from scipy.optimize import minimize_scalar

    from analogc.mapper.bounded_minimum import bounded_minimum

    rng = np.random.default_rng(5)
    for _ in range(30):
        centre, lo = rng.uniform(-3, 3), rng.uniform(-5, 0)
        hi = lo + rng.uniform(0.01, 10)
        bumps = rng.uniform(0, 2)

        def f(x):
            return (x - centre) ** 2 + bumps * np.sin(3 * x)

        ours = bounded_minimum(f, lo, hi, xatol=1e-9 * abs(hi))
        theirs = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9 * abs(hi)})
        assert ours == (theirs.x, theirs.fun)
