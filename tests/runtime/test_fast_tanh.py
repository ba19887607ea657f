"""Training's rational tanh (runtime/training/fast_tanh.py): the compiled and numpy twins
agree bit for bit, and both stay within 6 ulp of the exact tanh (float64's, rounded)."""

from __future__ import annotations

import numpy as np
import pytest

from analogc.runtime.training import fast_tanh, loop_kernel

F32 = np.float32


def dense_inputs() -> np.ndarray:
    x = np.linspace(-12, 12, 1_000_001, dtype=np.float64).astype(F32)
    tiny = np.geomspace(1e-38, 1e-2, 20_001).astype(F32)
    edges = F32([0.0, -0.0, 3.9999e-4, 4e-4, 4.0001e-4, 7.905311, 7.9053116, 9.0, 88.0, 1e30, np.inf, -np.inf])
    return np.concatenate([x, tiny, -tiny, edges, -edges])


def ulps(got: np.ndarray, x: np.ndarray) -> np.ndarray:
    exact = np.tanh(x.astype(np.float64))
    return np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(F32)).astype(np.float64)


def test_within_six_ulp_of_the_exact_tanh_and_odd():
    x = dense_inputs()
    got = fast_tanh.tanh(x)
    assert got.dtype == F32
    assert ulps(got, x).max() <= 6.0
    assert np.array_equal(fast_tanh.tanh(-x), -got)  # odd: every operation is sign-symmetric
    assert got[np.isposinf(x)].tolist() == [1.0] * 2 and got[np.isneginf(x)].tolist() == [-1.0] * 2
    assert np.isnan(fast_tanh.tanh(F32([np.nan])))[0]
    assert np.abs(got).max() <= 1.0


@pytest.mark.skipif(not loop_kernel.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_the_compiled_loop_computes_the_numpy_twins_bits(op):
    """`_activate` (the compiled loop's hidden activation) against the numpy twin the
    per-example `step` uses (trainer.apply), bit for bit, over the dense inputs."""
    from analogc.runtime.training.trainer import apply

    x = dense_inputs()
    out = np.empty_like(x)
    loop_kernel._activate(loop_kernel.ACTIVATION_CODES[op], F32(0.0), x, out)
    expected = apply({"op": op}, x)
    assert np.array_equal(out.view(np.int32), expected.view(np.int32))
    if op == "sigmoid":
        assert 0.0 <= np.nanmin(out) and np.nanmax(out) <= 1.0
