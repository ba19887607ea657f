"""The capacitor update of in-situ training: pulses from x and δ, applied per cell.

For a layer with inputs x (array rows, bias input included) and output errors δ, the
periphery fires, at every cell (i, j), n_ij = clip(⌊c·x_i·δ_j + u_ij⌋, ±max_pulses)
pulses: stochastic rounding of the wanted change in units of one nominal pulse (c folds
−η, the polarity s and the µS per weight unit), with u_ij uniform in [0, 1), so
E[n_ij] = c·x_i·δ_j. Positive counts are "up" pulses of the cell's own step dv_up,
negative counts "down" pulses of its own dv_down; V_C is clipped at the rails. The weight
the tiles present (float32, weight units) moves by wgain_ij·ΔV_C, wgain = s·gain·dg/dV
over µS per weight: nothing is ever read out to update (the paper's point).

Random numbers: u_ij comes from a counter-based hash (Wellons' "lowbias32" integer
mixer) of the cell index i·cols + j xor a 32-bit key drawn once per update, so the loop
has no generator state and vectorises, and the numpy twin below gives the same bits
(tests/runtime/test_update_kernel.py). Rows with x_i = 0 get no pulses (⌊u⌋ = 0) and are
skipped; both twins agree on that because ⌊0 + u⌋ = 0 exactly.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

HAVE_NUMBA = numba is not None
M1 = np.uint32(0x7FEB352D)
M2 = np.uint32(0x846CA68B)
S16, S15, S8 = np.uint32(16), np.uint32(15), np.uint32(8)
TWO_M24 = np.float32(2.0**-24)


def uniforms(key: int, rows: int, cols: int) -> np.ndarray:
    """u_ij in [0, 1) (float32, multiples of 2⁻²⁴) for a rows x cols array and a 32-bit key."""
    h = np.arange(rows * cols, dtype=np.uint32) ^ np.uint32(key)
    h ^= h >> S16
    h *= M1
    h ^= h >> S15
    h *= M2
    h ^= h >> S16
    return ((h >> S8).astype(np.float32) * TWO_M24).reshape(rows, cols)


def update_numpy(w, v, wgain, dv_up, dv_down, x, delta, coef, max_pulses, v_min, v_max, key) -> int:
    """Reference twin: updates w and v in place; returns the number of pulses fired."""
    rows, cols = w.shape
    a = (np.float32(coef) * x.astype(np.float32)).astype(np.float32)
    scaled = a[:, None] * delta.astype(np.float32)[None, :]
    counts = np.floor(scaled + uniforms(key, rows, cols))
    cap = np.float32(max_pulses)
    counts = np.clip(counts, -cap, cap)
    step = counts * np.where(counts > 0, dv_up, dv_down)
    v_new = np.clip(v + step, np.float32(v_min), np.float32(v_max))
    w += wgain * (v_new - v)
    v[...] = v_new
    return int(np.abs(counts).sum())


if HAVE_NUMBA:

    @numba.njit(fastmath=False, error_model="numpy", cache=True)
    def _update_nb(w, v, wgain, dv_up, dv_down, x, delta, coef, cap, v_min, v_max, key):
        rows, cols = w.shape
        mask = np.uint64(0xFFFFFFFF)
        pulses = 0
        for i in range(rows):
            a = coef * x[i]
            if a == 0:
                continue
            base = np.uint64(i * cols)
            for j in range(cols):
                # numba widens uint32 arithmetic to 64 bits: wrap to 32 by hand.
                h = ((base + np.uint64(j)) & mask) ^ key
                h ^= h >> np.uint64(16)
                h = (h * np.uint64(0x7FEB352D)) & mask
                h ^= h >> np.uint64(15)
                h = (h * np.uint64(0x846CA68B)) & mask
                h ^= h >> np.uint64(16)
                u = np.float32(h >> np.uint64(8)) * np.float32(2.0**-24)
                n = np.floor(a * delta[j] + u)
                n = min(max(n, -cap), cap)
                step = n * (dv_up[i, j] if n > 0 else dv_down[i, j])
                old = v[i, j]
                new = min(max(old + step, v_min), v_max)
                w[i, j] += wgain[i, j] * (new - old)
                v[i, j] = new
                pulses += abs(np.int64(n))
        return pulses


def update(w, v, wgain, dv_up, dv_down, x, delta, coef, max_pulses, v_min, v_max, key, compiled: bool | None = None) -> int:
    """One update of a layer's capacitors (arguments as `update_numpy`; arrays float32,
    C-contiguous, rows x cols; x of length rows, delta of length cols)."""
    if compiled is None:
        compiled = HAVE_NUMBA
    if not compiled:
        return update_numpy(w, v, wgain, dv_up, dv_down, x, delta, coef, max_pulses, v_min, v_max, key)
    f32 = np.float32
    return int(
        _update_nb(
            w, v, wgain, dv_up, dv_down,
            np.ascontiguousarray(x, dtype=f32), np.ascontiguousarray(delta, dtype=f32),
            f32(coef), f32(max_pulses), f32(v_min), f32(v_max), np.uint64(key & 0xFFFFFFFF),
        )
    )
