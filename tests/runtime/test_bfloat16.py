"""The bfloat16 grid of training's streamed constants (runtime/physics/bfloat16.py)
against hand-computed values and exact float32 bit patterns."""

from __future__ import annotations

import numpy as np
import pytest

from analogc.runtime.physics import bfloat16

F32 = np.float32


def test_round_to_grid_hand_values():
    one_ulp = 2.0**-7  # bfloat16's spacing in [1, 2)
    x = np.array([1.0, 1 + one_ulp / 2, 1 + 3 * one_ulp / 2, 1 + one_ulp / 2 + 2**-20, -3.3, 0.0, -0.0], dtype=F32)
    expected = [1.0, 1.0, 1 + 2 * one_ulp, 1 + one_ulp, -3.296875, 0.0, -0.0]  # ties to even; above the tie rounds up
    got = bfloat16.round_to_grid(x)
    assert got.dtype == F32 and got.tolist() == expected
    assert np.signbit(got[-1])
    specials = bfloat16.round_to_grid(np.array([np.inf, -np.inf, np.nan, 3.4e38], dtype=F32))
    assert specials[0] == np.inf and specials[1] == -np.inf and np.isnan(specials[2]) and specials[3] == np.inf
    assert bfloat16.on_grid(got) and bfloat16.on_grid(specials)


def test_rounding_is_to_the_nearest_grid_value():
    x = np.random.default_rng(0).lognormal(0, 3, 100_000).astype(F32)
    got = bfloat16.round_to_grid(x).astype(np.float64)
    spacing = 2.0 ** (np.floor(np.log2(x.astype(np.float64))) - 7)
    assert np.all(np.abs(got - x) <= spacing / 2)
    assert np.abs(got / x - 1).max() <= 2**-8


def test_words_and_pairs_hold_the_values():
    rng = np.random.default_rng(1)
    up = bfloat16.round_to_grid(rng.uniform(0.001, 0.01, (7, 5)))
    down = bfloat16.round_to_grid(rng.uniform(0.001, 0.01, (7, 5)))
    words = bfloat16.high_words(up)
    assert words.dtype == np.uint16 and words.shape == up.shape
    assert np.array_equal((words.astype(np.uint32) << 16).view(F32), up)
    packed = bfloat16.pack_pairs(up, down)
    assert packed.dtype == np.int32 and packed.shape == up.shape
    assert np.array_equal((packed & np.int32(-65536)).view(F32), up) and np.array_equal((packed << 16).view(F32), down)
    assert bfloat16.pack_pairs(up, down + F32(1e-7)) is None  # off the grid: the pair would not hold it
    assert not bfloat16.on_grid(up.astype(np.float64))


@pytest.mark.parametrize("value", [0.004, 1e-30, 123.456])
def test_on_grid_values_are_kept(value):
    x = bfloat16.round_to_grid(np.full(3, value))
    assert np.array_equal(bfloat16.round_to_grid(x), x)
