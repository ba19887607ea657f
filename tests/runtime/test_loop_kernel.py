"""Pieces of the compiled training loop (runtime/training/loop_kernel.py) against the
numpy step's own functions (float_sgd, activations), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from analogc.runtime.chip.activations import apply_activation
from analogc.runtime.training import loop_kernel
from analogc.runtime.training.float_sgd import activation_grad

F32 = np.float32
pytestmark = pytest.mark.skipif(not loop_kernel.HAVE_NUMBA, reason="numba is not installed")


@pytest.mark.parametrize("op", [{"op": "identity"}, {"op": "relu"}, {"op": "sigmoid"}, {"op": "tanh"},
                                {"op": "leaky_relu", "alpha": 0.05}])
def test_backprop_is_the_error_times_float_sgds_activation_grad(op):
    rng = np.random.default_rng(3)
    z = (rng.standard_normal(301) * 3).astype(F32)
    z[:5] = [0.0, -0.0, 1e-30, -1e-30, 40.0]  # the derivative's edges: z = 0 either sign, tiny, saturated
    h = z.copy() if op["op"] == "identity" else apply_activation(z, op).astype(F32)
    back = rng.standard_normal(301).astype(F32)
    back[7] = -0.0
    out = np.full(301, np.nan, F32)
    code = loop_kernel.ACTIVATION_CODES[op["op"]]
    loop_kernel._backprop(code, F32(op.get("alpha", 0.01)), z, h, back, out)
    expected = back if op["op"] == "identity" else back * activation_grad(op, z, h)
    assert out.dtype == F32 and np.array_equal(out.view(np.int32), expected.astype(F32).view(np.int32))
