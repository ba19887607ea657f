"""Digital activations: each trainable one's derivative (`float_sgd.activation_grad`,
which backpropagation on the chip uses) against a central finite difference of the
activation itself, in float64, away from the kinks."""

from __future__ import annotations

import numpy as np
import pytest

from analogc.runtime.chip.activations import ACTIVATIONS, OVERWRITES, apply_activation
from analogc.runtime.cost.periphery_ops import ACTIVATION_OPS, DERIVATIVE_OPS
from analogc.runtime.format.vocabulary import ACTIVATION_NAMES
from analogc.runtime.training.chain import HIDDEN_ACTIVATIONS
from analogc.runtime.training.float_sgd import activation_grad

PARAMS = {"leaky_relu": {"alpha": 0.1}, "elu": {"alpha": 0.7}, "hard_sigmoid": {"alpha": 0.3, "beta": 0.4}}


@pytest.mark.parametrize("name", HIDDEN_ACTIVATIONS)
def test_derivative_matches_a_finite_difference(name):
    op = {"op": name, **PARAMS.get(name, {})}
    z = np.linspace(-4, 4, 161)
    z = z[np.abs(z) > 0.02]  # relu-like kinks at 0
    if name == "hard_sigmoid":  # and where 0.3·z + 0.4 crosses 0 and 1
        z = z[(np.abs(0.3 * z + 0.4) > 0.01) & (np.abs(0.3 * z - 0.6) > 0.01)]
    eps = 1e-6
    numeric = (apply_activation(z + eps, op) - apply_activation(z - eps, op)) / (2 * eps)
    h = apply_activation(z.astype(np.float32), op)
    got = activation_grad(op, z.astype(np.float32), h)
    np.testing.assert_allclose(got, numeric, rtol=2e-4, atol=2e-5)
    assert numeric.std() > 0 or name == "identity"  # the check sees the function's shape


def test_selu_defaults_are_onnxs():
    """Selu with no attributes: ONNX's α and γ (float32), y = γ·(α(eᶻ − 1)) below 0."""
    y = apply_activation(np.array([-1.0, 2.0]), {"op": "selu"})
    np.testing.assert_allclose(y, [1.0507009873554805 * 1.6732632423543772 * (np.exp(-1) - 1), 1.0507009873554805 * 2], rtol=1e-7)


def test_the_runtime_implements_exactly_the_formats_activation_names():
    """The program checker accepts the names in the format's vocabulary; the chip must run
    each of them, and run nothing the checker would refuse."""
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    assert set(ACTIVATION_OPS) == set(DERIVATIVE_OPS) == set(ACTIVATION_NAMES)  # the cost model prices each


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_overwrite_gives_the_same_bits_as_a_new_buffer(name):
    """apply_activation(..., overwrite=True), as the chip's store calls it, writes over its
    input where the activation allows (OVERWRITES) and gives the bits of the plain call:
    float32 with large, tiny, subnormal, zero, infinite and NaN entries; other inputs
    (float64 rows, an int array, a read-only array) are left alone or computed anew."""
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((7, 33)) * 4).astype(np.float32)
    z[0, :6] = [90.0, -90.0, 1e-40, -0.0, np.inf, -np.inf]
    z[1, 3] = np.nan
    op = {"op": name, **PARAMS.get(name, {})}
    for x in (z, z.astype(np.float64)[:, ::2], z[3]):
        with np.errstate(all="ignore"):
            expected = apply_activation(x.copy(), op)
            mine = x.copy()
            got = apply_activation(mine, op, overwrite=True)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        assert (got is mine) == (name in OVERWRITES)
    frozen = z.copy()
    frozen.flags.writeable = False
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(apply_activation(frozen, op, overwrite=True), apply_activation(z, op))
    ints = np.arange(-3, 4).reshape(1, 7)
    if name in ("identity", "relu"):
        np.testing.assert_array_equal(apply_activation(ints.copy(), op, overwrite=True), apply_activation(ints, op))
