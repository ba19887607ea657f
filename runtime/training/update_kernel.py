"""The capacitor update of in-situ training: pulses from x and δ, applied per cell.

For a layer with inputs x (array rows, bias input included) and output errors δ, the
periphery fires, at every cell (i, j), n_ij = clip(⌊c·x_i·δ_j + u_ij⌋, ±max_pulses)
pulses: stochastic rounding of the wanted change in units of one nominal pulse (c folds
−η, the polarity s and the µS per weight unit), with u_ij uniform in [0, 1), so
E[n_ij] = c·x_i·δ_j. Positive counts are "up" pulses of the cell's own step dv_up,
negative counts "down" pulses of its own dv_down; V_C is clipped at the rails. A cell
that gets no pulse is not touched (the kernel skips it). The weight
the tiles present (float32, weight units) moves by wgain_ij·ΔV_C, wgain = s·gain·dg/dV
over µS per weight: nothing is ever read out to update (the paper's point).

Random numbers: u_ij = frac(r_i + c_j) with one uniform r_i per row and one c_j per
column, from the counter-based splitmix64 of `counter_rng` keyed per update (r_i from
counter i + 1, c_j from counter rows + j + 1; the top 24 bits of each hash). Each u_ij is uniform on
[0, 1) (so every cell's rounding is unbiased) and, for a given row or a given column,
independent across the other index; the randomness lives in the periphery, one number
per row and per column, as in the row/column stochastic pulse trains of resistive
processing units (Gokmen & Vlasov 2016). The cell loop then needs one add and one
compare for its random number, no generator state, and the row loop vectorises. The numpy twin gives
the same bits (tests/runtime/test_update_kernel.py). Rows with x_i = 0 get no pulses
(⌊0 + u⌋ = 0) and are skipped.
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.physics import counter_rng
from analogc.runtime.physics.numba_cache import drop_stale_builds, renamed

HAVE_NUMBA = counter_rng.HAVE_NUMBA
SHIFT_40 = np.uint64(40)
TWO_M24 = np.float32(2.0**-24)
UPPER_HALF = np.int32(-65536)  # 0xFFFF0000: a packed word's first step (`bfloat16.pack_pairs`)
# Layers of at least this many cells update on all cores (the float loop's BLAS uses them
# too); starting the threads costs ~10 µs, more than a small layer's whole update.
PARALLEL_CELLS = 32768
# Columns per call of the row kernel, whose int32 pulse count holds 4096 x the largest
# max_pulses (1e5) < 2^31.
COUNT_CHUNK = 4096


MASK64 = (1 << 64) - 1
GOLDEN_INT = int(counter_rng.GOLDEN)  # splitmix64's Weyl increment, as a Python int


_finalise = counter_rng.mix64_int  # splitmix64's output function on one 64-bit Python int


def mix_key(*parts: int) -> int:
    """A 64-bit key from integers (splitmix64's finaliser over each part in turn): the
    key of one read or update is mix_key(run key, example number, slot), so training's
    noise and pulses need no generator state."""
    z = 0
    for part in parts:
        z = _finalise((z + (int(part) & MASK64) + GOLDEN_INT) & MASK64)
    return z


def slot_keys(base: int, count: int) -> list[int]:
    """[mix_key(base, 1), …, mix_key(base, count)]: one example's read and update keys,
    base's round done once. Plain ints: for the few keys of one example they are twice
    as fast as a numpy pass (5.8 against 11.6 µs for 8 keys)."""
    first = mix_key(base) + GOLDEN_INT
    return [_finalise((first + slot) & MASK64) for slot in range(1, count + 1)]


def offsets(key: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(r, c): the row and column offsets of one update, float32 multiples of 2⁻²⁴ in [0, 1)."""
    h = counter_rng.splitmix64(key, np.arange(rows + cols, dtype=np.uint64))
    u = (h >> SHIFT_40).astype(np.float32) * TWO_M24
    return u[:rows], u[rows:]


def uniforms(row_u: np.ndarray, col_u: np.ndarray) -> np.ndarray:
    """u_ij = frac(r_i + c_j) (float32) for row offsets r and column offsets c in [0, 1)."""
    u = row_u.astype(np.float32)[:, None] + col_u.astype(np.float32)[None, :]
    return np.where(u >= np.float32(1), u - np.float32(1), u)


def update_numpy(w, v, wgain, dv_up, dv_down, x, delta, coef, max_pulses, v_min, v_max, key, col_cuts=None, tally=None) -> int:
    """Reference twin: updates w and v in place; returns the number of pulses fired.

    With `col_cuts` (column boundaries 0 = c_0 < … < c_S = cols) and `tally` (int64,
    rows x S), the pulses of row i in columns [c_s, c_s+1) are added to tally[i, s]: the
    cost model's exact count per block and tile."""
    row_u, col_u = offsets(key, *w.shape)
    a = (np.float32(coef) * x.astype(np.float32)).astype(np.float32)
    scaled = a[:, None] * delta.astype(np.float32)[None, :]
    counts = np.floor(scaled + uniforms(row_u, col_u))
    cap = np.float32(max_pulses)
    counts = np.clip(counts, -cap, cap)
    step = counts * np.where(counts > 0, dv_up, dv_down)
    v_new = np.where(counts != 0, np.clip(v + step, np.float32(v_min), np.float32(v_max)), v)  # no pulse, no change
    w += wgain * (v_new - v)
    v[...] = v_new
    fired = np.abs(counts).astype(np.int64)
    if tally is not None:
        tally += np.add.reduceat(fired, np.asarray(col_cuts[:-1], dtype=np.intp), axis=1)
    return int(fired.sum())


if HAVE_NUMBA:
    import numba

    drop_stale_builds(__file__, [counter_rng])  # its kernels compile in counter_rng's

    @numba.njit(fastmath=False, error_model="numpy", cache=True)
    def _offset_nb(key, counter):
        h = counter_rng._splitmix64_nb(key + np.uint64(counter + 1) * counter_rng.GOLDEN)
        return np.float32(h >> np.uint64(40)) * np.float32(2.0**-24)

    @numba.njit(fastmath=False, error_model="numpy", cache=True, inline="always")
    def _cells(w, v, wgain, dv_up, dv_down, steps, delta, col_u, base, c0, c1, a, r, cap, v_min, v_max, gain):
        """One row's cells in columns c0 … c1 − 1 of the flat (raveled) arrays from `base`
        (the row's first cell, uint64); returns the pulses fired (int32: c1 − c0 ≤
        COUNT_CHUNK). Branch-free, so LLVM vectorises it (a cell without a pulse is
        selected back to its old value, which is the same bits as skipping it). Unsigned
        indices: numba adds no negative-index wraparound to them, which would turn the
        loads into gathers; flat arrays, not a row's 1-D views: five views per row cost
        more than a short row's arithmetic. Inlined into the row loop (numba IR inlining):
        a call per row passed ~40 exploded array fields and cost ~10 ns a row. The loop is
        op-bound, so three arguments may be None, each compiled away (numba prunes `is None`
        branches on a literal None): cap, when the row cannot reach ±max_pulses (no
        clamp); gain, else every cell's wgain (a scalar when the layer's read
        transistors all match: one array fewer to stream); steps, else the cell's up and
        down steps come from one int32 word of the flat `steps` (`bfloat16.pack_pairs`:
        the same values, half the bytes of dv_up and dv_down)."""
        one = np.float32(1.0)
        fired = np.int32(0)  # an integer sum vectorises (a float one would need reassociation)
        for k in range(c0, c1):
            j = np.uint64(k)
            cell = base + j
            u = r + col_u[j]
            u = u - one if u >= one else u
            n = np.floor(a * delta[j] + u)
            if cap is not None:
                n = min(max(n, -cap), cap)
            if steps is None:  # both loads unconditional: a load chosen by n does not vectorise
                up = dv_up[cell]
                down = dv_down[cell]
            else:
                word = steps[cell]
                up = counter_rng._bits_f32(word & UPPER_HALF)
                down = counter_rng._bits_f32(word << np.int32(16))
            step = n * (up if n > 0 else down)
            old = v[cell]
            new = min(max(old + step, v_min), v_max)
            new = old if n == 0 else new  # no pulse, no change (even beyond the rails)
            if gain is None:
                w[cell] += wgain[cell] * (new - old)
            else:
                w[cell] += gain * (new - old)
            v[cell] = new
            fired = np.int32(fired + np.int32(abs(n)))  # kept int32 (numba widens a sum to int64, which halves the vector width)
        return fired

    def _update_body(w, v, wgain, dv_up, dv_down, steps, x, delta, coef, cap, v_min, v_max, key, col_cuts, tally, gain):
        """`update`'s kernel; gain: None, or every cell's wgain when they are all equal;
        steps: None, or the cells' packed steps (flat int32, `bfloat16.pack_pairs`)."""
        rows, cols = w.shape
        col_u = np.empty(cols, dtype=np.float32)
        for j in range(cols):
            col_u[j] = _offset_nb(key, rows + j)
        row_u = np.empty(rows, dtype=np.float32)  # skipped rows' too: one vectorised pass costs less than a hash per row
        for i in range(rows):
            row_u[i] = _offset_nb(key, i)
        delta_max = np.float32(0.0)
        for j in range(cols):
            delta_max = max(delta_max, abs(delta[j]))
        no_clamp = cap - np.float32(2.0)  # |n| ≤ |a·δ| + 1 (+ rounding) < cap: no clamp below this |a|·max|δ|
        segments = col_cuts.size - 1
        one_call = segments == 1 and cols <= COUNT_CHUNK  # each row in one piece, the common case (no loops around it)
        pulses = 0
        # Views of the C-contiguous arrays, made once (numba's ravel of a C array is a view).
        w_flat, v_flat, g_flat, up_flat, down_flat = w.ravel(), v.ravel(), wgain.ravel(), dv_up.ravel(), dv_down.ravel()
        for i in numba.prange(rows):  # rows are independent: the same bits on 1 or 2 threads
            a = coef * x[i]
            if a == 0:
                continue
            r = row_u[i]
            base = np.uint64(i * cols)
            free = abs(a) * delta_max < no_clamp
            if one_call:
                if free:
                    fired = _cells(w_flat, v_flat, g_flat, up_flat, down_flat, steps, delta, col_u, base, 0, cols, a, r, None,
                                   v_min, v_max, gain)
                else:
                    fired = _cells(w_flat, v_flat, g_flat, up_flat, down_flat, steps, delta, col_u, base, 0, cols, a, r, cap,
                                   v_min, v_max, gain)
                tally[i, 0] += fired
                pulses += fired
                continue
            for seg in range(segments):
                fired = 0
                c0 = col_cuts[seg]
                while c0 < col_cuts[seg + 1]:
                    c1 = min(c0 + COUNT_CHUNK, col_cuts[seg + 1])
                    if free:
                        fired += _cells(w_flat, v_flat, g_flat, up_flat, down_flat, steps, delta, col_u, base, c0, c1, a, r, None,
                                        v_min, v_max, gain)
                    else:
                        fired += _cells(w_flat, v_flat, g_flat, up_flat, down_flat, steps, delta, col_u, base, c0, c1, a, r, cap,
                                        v_min, v_max, gain)
                    c0 = c1
                tally[i, seg] += fired
                pulses += fired
        return pulses

    _update_nb = numba.njit(fastmath=False, error_model="numpy", cache=True)(renamed(_update_body, "_update_serial"))
    _update_nb_parallel = numba.njit(fastmath=False, error_model="numpy", cache=True, parallel=True)(renamed(_update_body, "_update_parallel"))


def uniform_gain(wgain: np.ndarray) -> np.float32 | None:
    """wgain's one value if every cell has it (matched read transistors), else None."""
    if wgain.size and (wgain == wgain.flat[0]).all():
        return np.float32(wgain.flat[0])
    return None


def update(w, v, wgain, dv_up, dv_down, x, delta, coef, max_pulses, v_min, v_max, key: int, col_cuts=None, tally=None,
           compiled: bool | None = None, steps=None) -> int:
    """One update of a layer's capacitors (arguments as `update_numpy`; arrays float32,
    C-contiguous, rows x cols; x of length rows, delta of length cols; key a 64-bit int).
    `steps`: the compiled kernel reads the steps from these packed words (flat int32,
    `bfloat16.pack_pairs(dv_up, dv_down)`) instead of dv_up and dv_down: the same values."""
    if compiled is None:
        compiled = HAVE_NUMBA
    if col_cuts is None:
        col_cuts = np.array([0, w.shape[1]], dtype=np.int64)
    if tally is None:
        tally = np.zeros((w.shape[0], len(col_cuts) - 1), dtype=np.int64)
    if not compiled:
        return update_numpy(w, v, wgain, dv_up, dv_down, x, delta, coef, max_pulses, v_min, v_max, key, col_cuts, tally)
    if not all(a.flags.c_contiguous for a in (w, v, wgain, dv_up, dv_down)):
        raise ValueError("update: the cell arrays must be C-contiguous (the kernel updates views of them in place)")
    f32 = np.float32
    c = np.ascontiguousarray
    kernel = _update_nb_parallel if w.size >= PARALLEL_CELLS else _update_nb
    return int(
        kernel(
            w, v, wgain, dv_up, dv_down, None if steps is None else c(steps, dtype=np.int32).reshape(-1), c(x, dtype=f32), c(delta, dtype=f32),
            f32(coef), f32(max_pulses), f32(v_min), f32(v_max), np.uint64(key), np.asarray(col_cuts, dtype=np.int64), tally,
            uniform_gain(wgain),
        )
    )
