"""A conv layer's output stage in one compiled pass: the accumulator [B·P, C] times the
DAC's per-patch scale, plus the digital bias, through ReLU (or no activation), written
straight into ONNX's [B, C, *spatial] layout.

In numpy these are four passes over the layer's largest array (scale, bias, activation,
and the transposing copy of `im2col.fold`), one core each; here one pass, on every core
when that is faster now (`cores.CHOICE`; examples are independent, so the bits do not
depend on it). The operations are numpy's, in its order and in float32: y·s, then + b,
then ReLU as np.maximum(y, 0) computes it (a NaN stays, −0 becomes +0), so the result is
the same bits as `Chip.store`'s numpy path (tests/runtime/test_conv_store.py). Other
activations, dtypes and replicated layers take that numpy path.
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.physics.cores import CHOICE
from analogc.runtime.physics.counter_rng import HAVE_NUMBA
from analogc.runtime.physics.numba_cache import renamed

if HAVE_NUMBA:
    import numba

ACTIVATIONS = {"identity": False, "relu": True}  # the activations done here: whether it is ReLU
PARALLEL_VALUES = 1 << 18  # outputs from which the pass may run on every core

if HAVE_NUMBA:

    def _store_body(acc, scale, has_scale, bias, has_bias, relu, out):
        """out[b, c, p] = act(acc[b·P + p, c] · scale[b·P + p] + bias[c]); out is [B, C, P]."""
        batch, channels, positions = out.shape
        zero = np.float32(0.0)
        for b in numba.prange(batch):
            for p in range(positions):
                r = b * positions + p
                for c in range(channels):
                    v = acc[r, c]
                    if has_scale:
                        v = v * scale[r]
                    if has_bias:
                        v = v + bias[c]
                    if relu and not (v > zero or v != v):
                        v = zero
                    out[b, c, p] = v

    _store_serial = numba.njit(fastmath=False, error_model="numpy", cache=True)(renamed(_store_body, "_conv_store_serial"))
    _store_parallel = numba.njit(fastmath=False, error_model="numpy", cache=True, parallel=True)(renamed(_store_body, "_conv_store_parallel"))


def fused_store(acc: np.ndarray, scale: np.ndarray | None, bias: np.ndarray | None, activation: dict, batch: int, out_spatial, dtype) -> np.ndarray | None:
    """The layer's output [batch, C, *out_spatial] from its accumulator acc [batch·P, C]
    (float32), the DAC's scale [batch·P, 1] or None (ideal), the digital bias [C] or None;
    None when this pass does not apply (no numba, another activation or dtype, or
    arguments of other types), for the caller's numpy path."""
    positions = int(np.prod(out_spatial))
    if not (HAVE_NUMBA and activation.get("op") in ACTIVATIONS and len(activation) == 1 and np.dtype(dtype) == np.float32):
        return None
    if not (acc.dtype == np.float32 and acc.ndim == 2 and acc.flags.c_contiguous and acc.shape[0] == batch * positions):
        return None
    channels = acc.shape[1]
    out = np.empty((batch, channels, positions), dtype=np.float32)
    empty = np.empty(0, dtype=np.float32)
    scale_flat = empty if scale is None else np.ascontiguousarray(scale, dtype=np.float32).reshape(-1)
    bias_flat = empty if bias is None else np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
    args = (acc, scale_flat, scale is not None, bias_flat, bias is not None, ACTIVATIONS[activation["op"]], out)
    if out.size >= PARALLEL_VALUES and batch > 1:
        CHOICE.run(("conv_store", channels, positions, scale is not None, bias is not None), out.size, _store_serial, _store_parallel, *args)
    else:
        _store_serial(*args)
    return out.reshape(batch, channels, *out_spatial)
