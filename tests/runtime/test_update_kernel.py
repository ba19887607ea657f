"""The capacitor update kernel: hand-computed pulse sequences, unbiased stochastic
rounding, and the numba twin against the numpy reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from analogc.runtime.physics import bfloat16
from analogc.runtime.training import update_kernel as uk

F32 = np.float32


def one_cell(up=0.01, down=0.02, gain=0.5):
    """w, v, wgain, dv_up, dv_down of a single cell at V_C = 0.5."""
    arr = lambda value: np.full((1, 1), value, dtype=F32)  # noqa: E731
    return arr(0.0), arr(0.5), arr(gain), arr(up), arr(down)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.skipif(not uk.HAVE_NUMBA, reason="numba missing"))])
def test_one_cell_follows_a_hand_computed_pulse_sequence(compiled):
    # Wanted changes that are whole numbers of pulses round to themselves whatever u is:
    # ⌊n + u⌋ = n for u in [0, 1). coef·x·δ = 2, −3, 40 (capped at 16), then +16 ×4.
    w, v, g, up, down = cell = one_cell()
    expected_v = [0.5 + 2 * 0.01, 0.52 - 3 * 0.02, 0.46 + 16 * 0.01]
    for k, (scaled, v_after) in enumerate(zip([2.0, -3.0, 40.0], expected_v)):
        v_before = float(v[0, 0])
        # Any key: whole pulse counts round to themselves.
        pulses = uk.update(*cell, np.array([1.0], F32), np.array([scaled], F32), 1.0, 16, 0.0, 1.0, k, compiled=compiled)
        assert pulses == min(abs(scaled), 16)
        assert v[0, 0] == pytest.approx(v_after, abs=1e-6)
        # The presented weight moves by wgain·ΔV_C, nothing else.
        assert w[0, 0] == pytest.approx(-0.5 * 0.5 + 0.5 * v_after if k == 0 else w_prev + 0.5 * (v_after - v_before), abs=1e-6)
        w_prev = float(w[0, 0])
    for k in range(4):  # 0.62 + 4·0.16 would be 1.26: clipped at the upper rail
        uk.update(*cell, np.array([1.0], F32), np.array([16.0], F32), 1.0, 16, 0.0, 1.0, 10 + k, compiled=compiled)
    assert v[0, 0] == pytest.approx(1.0)
    assert w[0, 0] == pytest.approx(0.5 * (1.0 - 0.5), abs=1e-6)


def test_stochastic_rounding_is_unbiased():
    # 20,000 cells each wanting 0.3 pulse down: E[pulses] = 6,000, sd = sqrt(n p (1-p)) = 65.
    rows, cols = 100, 200
    w = np.zeros((rows, cols), F32)
    v = np.full((rows, cols), 0.5, F32)
    ones = np.ones((rows, cols), F32)
    pulses = uk.update(w, v, ones, ones * F32(0.001), ones * F32(0.001), np.ones(rows, F32), np.full(cols, 0.3, F32), -1.0, 16, 0.0, 1.0, 99)
    assert abs(pulses - 6000) < 4 * 65
    assert set(np.unique(np.round((v - 0.5) / 0.001))) <= {-1.0, 0.0}


def test_row_column_offsets_give_uniform_independent_rows():
    u = uk.uniforms(*uk.offsets(5, 300, 300))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02
    # Within one row the cells are independent uniforms (the column offsets are).
    for row in u[:5]:
        hist, _ = np.histogram(row, bins=5, range=(0, 1))
        assert np.all(np.abs(hist - 60) < 5 * np.sqrt(60))


@pytest.mark.skipif(not uk.HAVE_NUMBA, reason="numba missing")
@pytest.mark.parametrize("seed, big", [(0, False), (1, False), (2, False), (3, False), (4, True), (5, True)])
def test_compiled_twin_matches_numpy_bit_for_bit(seed, big):
    """Small layers run the serial kernel, big ones (≥ PARALLEL_CELLS) the threaded one."""
    rng = np.random.default_rng(seed)
    rows, cols = (rng.integers(200, 300), rng.integers(170, 250)) if big else (rng.integers(1, 90), rng.integers(1, 70))
    assert (rows * cols >= uk.PARALLEL_CELLS) == big

    def arrays():
        r = np.random.default_rng(seed + 100)
        return [
            r.standard_normal((rows, cols)).astype(F32),
            r.uniform(-0.1, 1.1, (rows, cols)).astype(F32),  # a few beyond the rails: only a pulse clips
            r.standard_normal((rows, cols)).astype(F32),
            r.uniform(0.001, 0.05, (rows, cols)).astype(F32),
            r.uniform(0.001, 0.05, (rows, cols)).astype(F32),
        ]

    x = rng.standard_normal(rows).astype(F32)
    x[rng.random(rows) < 0.3] = 0  # skipped rows must agree too
    delta = (rng.standard_normal(cols) * 5).astype(F32)
    a, b = arrays(), arrays()
    key = uk.mix_key(seed, 42)
    cuts = np.unique(np.r_[0, rng.integers(0, cols, 3), cols])
    tallies = [np.zeros((rows, len(cuts) - 1), np.int64) for _ in range(2)]
    p_numpy = uk.update(*a, x, delta, -7.5, 16, 0.0, 1.0, key, cuts, tallies[0], compiled=False)
    p_numba = uk.update(*b, x, delta, -7.5, 16, 0.0, 1.0, key, cuts, tallies[1], compiled=True)
    assert p_numpy == p_numba == tallies[0].sum() > 0
    np.testing.assert_array_equal(*tallies)
    for left, right in zip(a, b):
        assert np.array_equal(left, right)


def test_keys_mix_every_part():
    keys = {uk.mix_key(a, b) for a in range(30) for b in range(30)}
    assert len(keys) == 900 and all(0 <= k < 2**64 for k in keys)
    assert uk.mix_key(1, 2) != uk.mix_key(2, 1)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.skipif(not uk.HAVE_NUMBA, reason="numba missing"))])
def test_pulses_are_tallied_per_row_and_column_segment(compiled):
    # Whole-number wanted changes fire exactly that many pulses: a hand count per segment.
    rows, cols = 3, 7
    w, v = np.zeros((rows, cols), F32), np.full((rows, cols), 0.5, F32)
    ones = np.ones((rows, cols), F32)
    x = np.array([1.0, 0.0, 2.0], F32)
    delta = np.array([1, -2, 3, 0, 1, -1, 20], F32)  # 20 is capped at 16 (row 0), 40 (row 2)
    cuts = np.array([0, 2, 5, 7])
    tally = np.zeros((rows, 3), np.int64)
    total = uk.update(w, v, ones, ones * F32(0.001), ones * F32(0.001), x, delta, 1.0, 16, 0.0, 1.0, 7, cuts, tally, compiled=compiled)
    expected = np.array([[1 + 2, 3 + 0 + 1, 1 + 16], [0, 0, 0], [2 + 4, 6 + 0 + 2, 2 + 16]])
    np.testing.assert_array_equal(tally, expected)
    assert total == expected.sum()


@pytest.mark.skipif(not uk.HAVE_NUMBA, reason="numba missing")
def test_a_segment_wider_than_one_kernel_call_counts_every_pulse():
    # The compiled kernel takes a row segment COUNT_CHUNK columns at a time (its int32
    # count); a wide segment, split unevenly by the cuts, must still match the twin, and a
    # cap of 100,000 pulses (the knob's largest) on every cell must not overflow.
    cols = 2 * uk.COUNT_CHUNK + 123
    rng = np.random.default_rng(3)
    x = np.array([1.0, 0.0], F32)
    delta = rng.standard_normal(cols).astype(F32) * F32(40)
    cuts = np.array([0, 5, cols])
    results = []
    for compiled in (False, True):
        w, v = np.zeros((2, cols), F32), np.full((2, cols), 0.5, F32)
        tally = np.zeros((2, 2), np.int64)
        step = np.full((2, cols), 1e-7, F32)
        total = uk.update(w, v, np.ones((2, cols), F32), step, step, x, delta, 1.0, 16, 0.0, 1.0, 11, cuts, tally, compiled=compiled)
        results.append((total, tally, w, v))
    (t0, tally0, w0, v0), (t1, tally1, w1, v1) = results
    assert t0 == t1 == tally0.sum() > 0
    np.testing.assert_array_equal(tally0, tally1)
    assert np.array_equal(w0, w1) and np.array_equal(v0, v1)
    cols = 6 * uk.COUNT_CHUNK  # one int32 would overflow on this row: 100,000 x cols > 2^31
    big = np.full((1, cols), 1e5, F32)  # every cell fires the cap
    flat = np.zeros((1, cols), F32)
    fired = uk.update(flat.copy(), np.full((1, cols), 0.5, F32), flat.copy(), flat + F32(1e-9), flat + F32(1e-9),
                      np.ones(1, F32), big[0], 1.0, 100000, 0.0, 1.0, 5, compiled=True)
    assert fired == 100000 * cols


def test_slot_keys_are_the_mixed_keys_of_each_slot():
    for base in (0, 1, 2**63 + 12345, 2**64 - 1, uk.mix_key(7, 99)):
        assert uk.slot_keys(base, 12) == [uk.mix_key(base, slot) for slot in range(1, 13)]


@pytest.mark.skipif(not uk.HAVE_NUMBA, reason="numba missing")
@pytest.mark.parametrize("cols", [1, 7, 10, 33, 125, 250])
@pytest.mark.parametrize("segments", [1, 3])
@pytest.mark.parametrize("matched", [True, False])
@pytest.mark.parametrize("packed", [False, True], ids=["step-arrays", "packed-steps"])
def test_every_kernel_path_matches_numpy_bit_for_bit(cols, segments, matched, packed):
    """The serial kernel's row paths against the twin: a row in one piece (one segment) or
    segment by segment, clamped rows (|a|·max|δ| near the cap) and free ones, one wgain
    for all cells (a scalar in the kernel) or one per cell, skipped rows (x = 0), widths
    that leave a remainder after the vector loop, and steps on the bfloat16 grid read
    from their packed words (the twin reads the float arrays)."""
    rng = np.random.default_rng(cols * 10 + segments + 2 * matched)
    rows = 37
    x = rng.standard_normal(rows).astype(F32)
    x[rng.random(rows) < 0.3] = 0
    x[:3] = [0.0, 1e-3, 50.0]  # a skipped row, a free one, a clamped one
    delta = rng.standard_normal(cols).astype(F32)
    coef, cap = F32(-3.0), 16
    a = coef * x
    free = np.abs(a) * np.abs(delta).max() < F32(cap - 2)
    assert free[a != 0].any() and (~free).any()  # both the clamped and the free loop run
    cuts = np.unique(np.r_[0, np.linspace(0, cols, segments + 1).astype(int)[1:-1], cols])
    assert len(cuts) - 1 == min(segments, cols)

    def arrays():
        r = np.random.default_rng(7)
        g = np.full((rows, cols), 0.7, F32) if matched else r.uniform(0.2, 1.2, (rows, cols)).astype(F32)
        return [
            r.standard_normal((rows, cols)).astype(F32),
            r.uniform(-0.1, 1.1, (rows, cols)).astype(F32),
            g,
            bfloat16.round_to_grid(r.uniform(0.001, 0.05, (rows, cols))),
            bfloat16.round_to_grid(r.uniform(0.001, 0.05, (rows, cols))),
        ]

    assert (uk.uniform_gain(arrays()[2]) is not None) == matched
    a_ref, a_nb = arrays(), arrays()
    steps = bfloat16.pack_pairs(a_nb[3], a_nb[4]) if packed else None
    if packed:  # the words decode to the arrays' values
        assert np.array_equal((steps & np.int32(-65536)).view(F32), a_nb[3]) and np.array_equal((steps << 16).view(F32), a_nb[4])
        a_nb[3], a_nb[4] = np.full_like(a_nb[3], np.nan), np.full_like(a_nb[4], np.nan)  # the kernel must not read these
    tallies = [np.zeros((rows, len(cuts) - 1), np.int64) for _ in range(2)]
    for k in range(3):  # a few updates in a row: the second and third start from updated cells
        key = uk.mix_key(cols, k)
        p_numpy = uk.update(*a_ref, x, delta, coef, cap, 0.0, 1.0, key, cuts, tallies[0], compiled=False)
        p_numba = uk.update(*a_nb, x, delta, coef, cap, 0.0, 1.0, key, cuts, tallies[1], compiled=True, steps=steps)
        assert p_numpy == p_numba
    assert tallies[0].sum() > 0 and tallies[0][~(a != 0)].sum() == 0
    np.testing.assert_array_equal(*tallies)
    for left, right in zip(a_ref[:3], a_nb[:3]):
        assert np.array_equal(left, right)
