"""Training's compiled layer read (runtime/training/read_kernel.py) against a numpy
reference written from its docstring: on weights and inputs whose products and sums are
exact in float32 (so the order of the sums cannot matter), every output bit must agree,
read noise and output noise included: this pins which normal each output takes (pair
k // 2 of the read's counter-keyed stream, cosine then sine, blocks and outputs in
visiting order) and the ADC's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from analogc.runtime.physics import bfloat16, counter_rng
from analogc.runtime.training import read_kernel

F32 = np.float32
pytestmark = pytest.mark.skipif(not read_kernel.HAVE_NUMBA, reason="numba is not installed")


def exact_layer(rows: int, cols: int, seed: int):
    """w in quarters of ±8 and var in sixteenths (exact products with quarter inputs); x
    in quarters with a few zero rows and its largest magnitude exactly 1."""
    rng = np.random.default_rng(seed)
    w = (rng.integers(-32, 33, (rows, cols)) / 4).astype(F32)
    var = (rng.integers(0, 17, (rows, cols)) / 16).astype(F32)
    return w, var, rng


def reference(x, w, var, blocks, transpose, w_max, key, adc_step, adc_bound, sigma2):
    """The read as the docstring states it, in numpy float32 (DAC off: x's peak is the
    DAC range, so x passes unchanged)."""
    inv_w = F32(1) / F32(w_max)
    inv_ww = inv_w * inv_w
    n_out_total = sum((r1 - r0) if transpose else (c1 - c0) for r0, r1, c0, c1 in blocks)
    z_cos, z_sin = counter_rng.normal_pairs(key, np.arange((n_out_total + 1) // 2, dtype=np.uint64))
    z = np.empty(2 * len(z_cos), F32)
    z[0::2], z[1::2] = z_cos, z_sin  # output k of the read takes pair k // 2: cosine, then sine
    out = np.zeros(w.shape[0] if transpose else w.shape[1], F32)
    k = 0
    for r0, r1, c0, c1 in blocks:
        block, block_var = w[r0:r1, c0:c1].astype(np.float64), var[r0:r1, c0:c1].astype(np.float64)
        if transpose:  # exact in float32 whatever the order: sums of quarters below 2^20
            y, s, o0 = block @ x[c0:c1], block_var @ np.square(x[c0:c1]), r0
        else:
            y, s, o0 = x[r0:r1] @ block, np.square(x[r0:r1]) @ block_var, c0
        y, s = y.astype(F32), s.astype(F32)
        n = len(y)
        v = y * inv_w + np.sqrt(s * inv_ww + F32(sigma2)) * z[k : k + n]
        k += n
        v = np.clip(np.rint(v / F32(adc_step)) * F32(adc_step), -F32(adc_bound), F32(adc_bound)).astype(F32)
        out[o0 : o0 + n] += v * F32(w_max)
    return out  # the DAC scale, peak / range, is 1


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("seed, rows, cols, row_cuts, col_cuts", [
    (0, 37, 23, [0, 37], [0, 23]),  # one block, odd output count: the last pair's sine unused
    (1, 70, 41, [0, 33, 70], [0, 41]),  # two row blocks: forward outputs repeat per block
    (2, 64, 50, [0, 20, 64], [0, 17, 50]),  # four blocks: the pairs run on across blocks
])
def test_noisy_read_matches_the_numpy_reference_bit_for_bit(transpose, seed, rows, cols, row_cuts, col_cuts):
    w, var, rng = exact_layer(rows, cols, seed)
    n_in = cols if transpose else rows
    x = (rng.integers(-4, 5, n_in) / 4).astype(F32)
    x[rng.random(n_in) < 0.3] = 0  # rows without input are skipped forward
    x[rng.integers(n_in)] = F32(-1.0)  # peak |x| = 1 = the DAC range
    blocks = np.array([[r0, r1, c0, c1] for r0, r1 in zip(row_cuts, row_cuts[1:]) for c0, c1 in zip(col_cuts, col_cuts[1:])],
                      dtype=np.int64)
    w_max, adc_step, adc_bound, sigma2, key = F32(4.0), F32(1 / 64), F32(12.0), F32(0.05**2), 0x5EED + seed
    out = np.zeros(rows if transpose else cols, F32)
    read_kernel._read_layer_nb(x, w, var, blocks, transpose, True, False, False, F32(1 / 127), F32(1.0), True, adc_step,
                               adc_bound, sigma2, True, w_max, np.uint64(key), out)
    expected = reference(x, w, var, blocks, transpose, w_max, key, adc_step, adc_bound, sigma2)
    assert np.array_equal(out, expected)
    # The noise is there (the read is not the exact product) and a different key changes it.
    exact = (w.T @ x if not transpose else w @ x).astype(F32)
    assert not np.array_equal(out, exact)
    other = np.zeros_like(out)
    read_kernel._read_layer_nb(x, w, var, blocks, transpose, True, False, False, F32(1 / 127), F32(1.0), True, adc_step,
                               adc_bound, sigma2, True, w_max, np.uint64(key + 1), other)
    assert not np.array_equal(out, other)


@pytest.mark.parametrize("active", [0, 1, 3, 4, 5, 8, 11])
def test_forward_read_adds_the_rows_in_order(active):
    """The forward read adds row after row of x_r·W[r] (four rows a pass, y kept in
    registers, then the rest one by one); with inexact float32 values the sum's order
    shows in its bits, so every output must equal a row-by-row float32 sum in row
    order, with the zero rows skipped, and the same for the variance."""
    rng = np.random.default_rng(active)
    rows, cols = 29, 45
    w = rng.normal(0, 1, (rows, cols)).astype(F32)
    var = rng.uniform(0, 1, (rows, cols)).astype(F32)
    x = np.zeros(rows, F32)
    x[np.sort(rng.choice(rows, active, replace=False))] = rng.uniform(-1, 1, active).astype(F32)
    if active:
        x[np.argmax(np.abs(x))] = F32(1.0)  # peak |x| = 1 = the DAC range: the noisy read's DAC passes x unchanged
    blocks = np.array([[0, rows, 0, cols]], dtype=np.int64)
    # Ideal: out = the block's y exactly (no DAC, noise or ADC).
    out = np.zeros(cols, F32)
    read_kernel._read_layer_nb(x, w, var, blocks, False, True, True, False, F32(1 / 127), F32(1.0), False, F32(1 / 64),
                               F32(12.0), F32(0.0), False, F32(1.0), np.uint64(1), out)
    expected = np.zeros(cols, F32)
    for r in range(rows):
        if x[r] != 0:
            expected = expected + x[r] * w[r]  # float32 throughout, rows in order
    assert np.array_equal(out.view(np.int32), (expected + F32(0)).view(np.int32))
    # Noisy, without the ADC's quantisation: the variance sum's order shows in the noise.
    key, sigma2 = np.uint64(9), F32(0.0)
    noisy = np.zeros(cols, F32)
    read_kernel._read_layer_nb(x, w, var, blocks, False, True, False, False, F32(1 / 127), F32(1.0), False, F32(1 / 64),
                               F32(12.0), sigma2, True, F32(1.0), key, noisy)
    s = np.zeros(cols, F32)
    for r in range(rows):
        if x[r] != 0:
            s = s + (x[r] * x[r]) * var[r]
    z_cos, z_sin = counter_rng.normal_pairs(int(key), np.arange((cols + 1) // 2, dtype=np.uint64))
    z = np.empty(2 * len(z_cos), F32)
    z[0::2], z[1::2] = z_cos, z_sin
    expected_noisy = (expected + np.sqrt(s + sigma2) * z[:cols]) * F32(1.0)
    assert np.array_equal(noisy, expected_noisy)


@pytest.mark.parametrize("transpose", [False, True])
def test_variance_words_read_as_the_float_variance(transpose):
    """The compiled loop streams a layer's read-noise variance as bfloat16 words (uint16):
    with the variance on the grid, a read from the words equals the read from the float
    array bit for bit, forward (four rows a pass and the rest) and transposed."""
    rng = np.random.default_rng(5)
    rows, cols = 47, 38
    w = rng.normal(0, 1, (rows, cols)).astype(F32)
    var = bfloat16.round_to_grid(rng.uniform(0, 0.3, (rows, cols)))
    words = bfloat16.high_words(var)
    x = rng.uniform(-1, 1, cols if transpose else rows).astype(F32)
    x[rng.random(x.size) < 0.2] = 0
    blocks = np.array([[0, 30, 0, 38], [30, 47, 0, 38]], dtype=np.int64)
    reads = []
    for v in (var, words):
        out = np.zeros(rows if transpose else cols, F32)
        read_kernel._read_layer_nb(x, w, v, blocks, transpose, True, False, True, F32(1 / 127), F32(1.0), True, F32(1 / 64),
                                   F32(12.0), F32(0.01), True, F32(2.0), np.uint64(11), out)
        reads.append(out)
    assert np.array_equal(reads[0].view(np.int32), reads[1].view(np.int32))
    noiseless = np.zeros_like(reads[0])  # and the variance is used: without it the read differs
    read_kernel._read_layer_nb(x, w, var, blocks, transpose, False, False, True, F32(1 / 127), F32(1.0), True, F32(1 / 64),
                               F32(12.0), F32(0.01), True, F32(2.0), np.uint64(11), noiseless)
    assert not np.array_equal(noiseless, reads[0])
