"""3T1C cell functions against hand-computed values and their intended statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import bfloat16, capacitor

CAP = load_target(None).capacitor


def test_pulse_sequence_by_hand():
    # One cell: dv_up = 0.01 V, dv_down = 0.005 V, from 0.5 V.
    v = np.array([0.5])
    up, down = np.array([0.01]), np.array([0.005])
    v = capacitor.apply_pulses(v, np.array([3]), np.array([0]), up, down, CAP)  # +0.03
    v = capacitor.apply_pulses(v, np.array([0]), np.array([4]), up, down, CAP)  # -0.02
    assert v[0] == pytest.approx(0.51)
    v = capacitor.apply_pulses(v, np.array([100]), np.array([0]), up, down, CAP)  # clipped at the rail
    assert v[0] == CAP.v_max


def test_conductance_is_linear_with_mismatch():
    g = capacitor.conductance(np.array([0.5, 1.0]), np.array([1.0, 1.1]), np.array([0.0, -0.2]), CAP)
    np.testing.assert_allclose(g, [CAP.g_per_volt * 0.5, 1.1 * CAP.g_per_volt * 1.0 - 0.2])


def test_step_mismatch_statistics():
    up, down = capacitor.draw_step_sizes((200_000,), CAP, np.random.default_rng(0))
    assert up.mean() == pytest.approx(CAP.dv_up, rel=0.01) and down.mean() == pytest.approx(CAP.dv_down, rel=0.01)
    assert np.log(up).std() == pytest.approx(CAP.step_mismatch, rel=0.02)
    assert abs(np.corrcoef(up, down)[0, 1]) < 0.01  # up and down mismatch independently
    none = dataclasses.replace(CAP, step_mismatch=0.0)
    up0, down0 = capacitor.draw_step_sizes((10,), none, np.random.default_rng(0))
    # The nominal steps on the bfloat16 grid (8 significant bits: 2⁻⁹ relative at most).
    assert (up0 == up0[0]).all() and (down0 == down0[0]).all()
    assert up0[0] == pytest.approx(CAP.dv_up, rel=2**-9) and down0[0] == pytest.approx(CAP.dv_down, rel=2**-9)
    for steps in (up, down, up0, down0):
        assert steps.dtype == np.float32 and bfloat16.on_grid(steps)


def test_leak_toward_target():
    leaky = dataclasses.replace(CAP, leak_tau=1000.0)
    v = capacitor.leak(np.array([0.5]), 1000.0, leaky)
    assert v[0] == pytest.approx(0.8 + (0.5 - 0.8) * np.exp(-1))
    assert capacitor.leak(np.array([0.5]), 1e6, CAP)[0] == 0.5  # leak_tau = 0: off


def test_pulse_counts_unbiased_and_capped():
    rng = np.random.default_rng(1)
    delta = np.full(200_000, 0.37)
    counts = capacitor.pulse_counts(delta, 0.1, 16, rng)
    assert set(np.unique(counts)) == {3, 4}
    assert counts.mean() * 0.1 == pytest.approx(0.37, rel=0.01)
    assert capacitor.pulse_counts(np.array([5.0, -5.0]), 0.1, 16, rng).tolist() == [16, -16]
