"""One compiled call per layer read during training: DAC, block reads, ADCs, partial sums.

Training reads one example at a time, so a layer read is small (a few hundred outputs)
and numpy's per-call cost, not arithmetic, dominated it. `read_layer` does the whole
read of `analog_layer.TrainableLayer.forward`/`backward` in one numba call:
- DAC: x scaled by dac_range / max|x|, quantised to 2^(bits−1) − 1 levels per side;
- per block: y = x·W (forward, row by row, skipping rows whose input is 0) or W·δ
  (transpose read, a dot product per row) and the read-noise variance Σ x_i²σ_i², in
  vectorised loops over the tile's own memory (no copy of the block);
- ADC per block output: y/w_max + sqrt(var/w_max² + σ_out²)·z, bound, quantisation,
  back to weight units, added into the layer output; finally the DAC scale.
z is a standard normal from the counter-based generator of `counter_rng` (splitmix64 +
Box-Muller; both normals of a pair are used, by consecutive outputs of the read, in
the order blocks and outputs are visited), keyed per read, so a run is fixed
by its seed and restartable from a checkpoint. Without numba the numpy path of
`TrainableLayer` runs instead (same model, different random numbers).
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.physics import counter_rng
from analogc.runtime.physics.numba_cache import drop_stale_builds
from analogc.runtime.physics.periphery import level_step

HAVE_NUMBA = counter_rng.HAVE_NUMBA

if HAVE_NUMBA:
    import numba
    from numba.extending import overload

    drop_stale_builds(__file__, [counter_rng])  # its kernels compile in counter_rng's

    _jit = numba.njit(fastmath=False, error_model="numpy", cache=True)

    @_jit
    def _quantize(v, step, bound):
        q = np.rint(v / step) * step
        return min(max(q, -bound), bound)

    def _variance_at(var_flat, i):
        """Cell i's read-noise variance: var_flat[i] of a float32 array, or decoded from a
        uint16 array of bfloat16 words (`bfloat16.high_words`: the compiled training loop
        streams half the bytes; the value is the same when the variance is on the grid)."""
        return var_flat[i]

    @overload(_variance_at, inline="always")
    def _variance_at_nb(var_flat, i):
        if var_flat.dtype == numba.types.uint16:
            return lambda var_flat, i: counter_rng._bits_f32(np.int32(var_flat[i]) << np.int32(16))
        return lambda var_flat, i: var_flat[i]

    # numba inlines these two into the read (its IR; the same operations, so the same bits):
    # as calls, their array arguments cost ~15% of a forward read (a call per input row).
    _jit_inline = numba.njit(fastmath=False, error_model="numpy", cache=True, inline="always")

    @_jit_inline
    def _axpy(y, a, flat, base):
        """y += a·flat[base : base + len(y)] (its own loop so LLVM vectorises it; an
        unsigned index has no wraparound check, and a flat array needs no view per row)."""
        for j in range(y.size):
            y[j] += a * flat[np.uint64(base) + np.uint64(j)]

    @_jit_inline
    def _axpy2(y, s, a, a2, flat, var_flat, base):
        """y += a·flat[base : …] and s += a2·var_flat[base : …] in one pass (the read and its
        variance share the loop over the row; each element's operations as in `_axpy`)."""
        for j in range(y.size):
            cell = np.uint64(base) + np.uint64(j)
            y[j] += a * flat[cell]
            s[j] += a2 * _variance_at(var_flat, cell)

    ROWS_AT_ONCE = 4

    @_jit_inline
    def _axpy_4(y, a0, a1, a2, a3, flat, bases):
        """`_axpy` of four rows in turn, in one pass: y[j] gets the same four sums in the
        same order (the same bits) but is loaded and stored once, not four times."""
        b0, b1, b2, b3 = np.uint64(bases[0]), np.uint64(bases[1]), np.uint64(bases[2]), np.uint64(bases[3])
        for j in range(y.size):
            k = np.uint64(j)
            y[j] = (((y[j] + a0 * flat[b0 + k]) + a1 * flat[b1 + k]) + a2 * flat[b2 + k]) + a3 * flat[b3 + k]

    @_jit_inline
    def _axpy2_4(y, s, a0, a1, a2, a3, q0, q1, q2, q3, flat, var_flat, bases):
        """`_axpy2` of four rows in turn, in one pass (as `_axpy_4`: the same bits)."""
        b0, b1, b2, b3 = np.uint64(bases[0]), np.uint64(bases[1]), np.uint64(bases[2]), np.uint64(bases[3])
        for j in range(y.size):
            k = np.uint64(j)
            y[j] = (((y[j] + a0 * flat[b0 + k]) + a1 * flat[b1 + k]) + a2 * flat[b2 + k]) + a3 * flat[b3 + k]
            s[j] = (((s[j] + q0 * _variance_at(var_flat, b0 + k)) + q1 * _variance_at(var_flat, b1 + k)) + q2 * _variance_at(var_flat, b2 + k)) + q3 * _variance_at(var_flat, b3 + k)

    @numba.njit(fastmath={"reassoc"}, error_model="numpy", cache=True)
    def _dot_rows(flat, var_flat, has_var, cols, r0, r1, c0, count, b, b2, y, s):
        """A block's transpose read: for each row r0 ≤ r < r1, y[r − r0] = Σ_j flat[r·cols +
        c0 + j]·b[c0 + j] over j < count (and s[r − r0] the same of var_flat and b2 when
        has_var), summed in whatever order vectorises (as BLAS would): fixed for a given
        build, so a run stays bit-identical under its seed. Unsigned indices into the flat
        matrix (no wraparound checks, no views); one call a block, not a row (the same
        sums as the per-row calls it replaced, ~1 µs less an example)."""
        for r in range(r0, r1):
            base = np.uint64(r * cols + c0)
            total = np.float32(0.0)
            if has_var:
                total2 = np.float32(0.0)
                for j in range(count):
                    cell = base + np.uint64(j)
                    k = np.uint64(c0) + np.uint64(j)
                    total += flat[cell] * b[k]
                    total2 += _variance_at(var_flat, cell) * b2[k]
                s[r - r0] = total2
            else:
                for j in range(count):
                    total += flat[base + np.uint64(j)] * b[np.uint64(c0) + np.uint64(j)]
            y[r - r0] = total

    @_jit
    def _read_layer_nb(x, w, var, blocks, transpose, has_var, ideal, dac_quant, dac_step, dac_range,
                       adc_quant, adc_step, adc_bound, sigma2, noisy, w_max, key, out):
        n_in = x.size
        peak = np.float32(0.0)
        for i in range(n_in):
            peak = max(peak, abs(x[i]))
        if not peak > 0:
            peak = np.float32(1.0)
        x_n = np.empty(n_in, dtype=np.float32)
        x_sq = np.empty(n_in if has_var else 0, dtype=np.float32)
        if ideal:
            for i in range(n_in):
                x_n[i] = x[i]
            scale = np.float32(1.0)
        else:
            gain = dac_range / peak
            for i in range(n_in):
                v = x[i] * gain
                x_n[i] = _quantize(v, dac_step, dac_range) if dac_quant else v
            scale = peak / dac_range
        if has_var:
            for i in range(n_in):
                x_sq[i] = x_n[i] * x_n[i]
        inv_w = np.float32(1.0) / w_max
        inv_ww = inv_w * inv_w
        # The read's normals, all at once (the pair loop vectorises): output k of the read
        # (blocks and outputs in visiting order) takes pair k // 2 (its cosine for even k,
        # its sine for odd), pair p being counter p + 1 of splitmix64 under `key`.
        n_noisy = 0
        if noisy and not ideal:
            for b in range(blocks.shape[0]):
                n_noisy += (blocks[b, 1] - blocks[b, 0]) if transpose else (blocks[b, 3] - blocks[b, 2])
        z_cos = np.empty((n_noisy + 1) // 2, dtype=np.float32)
        z_sin = np.empty((n_noisy + 1) // 2, dtype=np.float32)
        counter_rng._normal_pairs_nb(key, 0, z_cos, z_sin)
        k_noisy = 0
        cols = w.shape[1]
        w_flat, var_flat = w.ravel(), var.ravel()  # views (C-contiguous arrays)
        active = np.empty(0 if transpose else n_in, dtype=np.int64)  # a block's rows with input
        for b in range(blocks.shape[0]):
            r0, r1, c0, c1 = blocks[b, 0], blocks[b, 1], blocks[b, 2], blocks[b, 3]
            if transpose:
                n_out, o0 = r1 - r0, r0
            else:
                n_out, o0 = c1 - c0, c0
            y = np.zeros(n_out, dtype=np.float32)
            s = np.zeros(n_out if has_var else 0, dtype=np.float32)
            if transpose:  # each row's output is a dot product over the block's columns
                _dot_rows(w_flat, var_flat, has_var, cols, r0, r1, c0, c1 - c0, x_n, x_sq, y, s)
            else:  # row by row into the block's outputs; a row with no input adds nothing
                n_active = 0
                for r in range(r0, r1):
                    if x_n[r] != 0:
                        active[n_active] = r
                        n_active += 1
                k = 0
                while k + ROWS_AT_ONCE <= n_active:  # four rows a pass: y and s stay in registers
                    r_a, r_b, r_c, r_d = active[k], active[k + 1], active[k + 2], active[k + 3]
                    bases = (r_a * cols + c0, r_b * cols + c0, r_c * cols + c0, r_d * cols + c0)
                    if has_var:
                        _axpy2_4(y, s, x_n[r_a], x_n[r_b], x_n[r_c], x_n[r_d], x_sq[r_a], x_sq[r_b], x_sq[r_c], x_sq[r_d],
                                 w_flat, var_flat, bases)
                    else:
                        _axpy_4(y, x_n[r_a], x_n[r_b], x_n[r_c], x_n[r_d], w_flat, bases)
                    k += ROWS_AT_ONCE
                for k in range(k, n_active):
                    r = active[k]
                    if has_var:
                        _axpy2(y, s, x_n[r], x_sq[r], w_flat, var_flat, r * cols + c0)
                    else:
                        _axpy(y, x_n[r], w_flat, r * cols + c0)
            for k in range(n_out):
                if ideal:
                    out[o0 + k] += y[k]
                    continue
                v = y[k] * inv_w
                if noisy:  # both normals of a pair: outputs 2p and 2p + 1 of the read share pair p
                    z = z_sin[k_noisy >> 1] if k_noisy & 1 else z_cos[k_noisy >> 1]
                    k_noisy += 1
                    sd = np.sqrt(s[k] * inv_ww + sigma2) if has_var else np.sqrt(sigma2)
                    v = v + sd * z
                if adc_quant:
                    v = _quantize(v, adc_step, adc_bound)
                out[o0 + k] += v * w_max
        for k in range(out.size):
            out[k] *= scale


def read_settings(spec, w_max: float) -> tuple:
    """The periphery's constants of one layer's reads, as the kernel takes them: worked
    out once per layer, not at every read (a read is a few microseconds of arithmetic)."""
    p = spec.periphery
    f32 = np.float32
    sigma = p.output_noise if p.output_noise_enabled else 0.0
    return (
        bool(spec.ideal), bool(p.quantization), f32(level_step(p.dac_range, p.dac_bits)), f32(p.dac_range),
        bool(p.quantization), f32(level_step(p.adc_bound, p.adc_bits)), f32(p.adc_bound), f32(sigma**2), sigma > 0,
        f32(w_max),
    )


def read_layer(x: np.ndarray, w: np.ndarray, var, blocks: np.ndarray, transpose: bool, settings: tuple, key: int) -> np.ndarray:
    """The layer read (see the module docstring); x is the input (forward: one value per
    array row; transpose: one per column), w and var are rows x cols float32 (var None
    without read noise), settings from `read_settings`."""
    ideal, dac_quant, dac_step, dac_range, adc_quant, adc_step, adc_bound, sigma2, output_noise, w_max = settings
    out = np.zeros(w.shape[0] if transpose else w.shape[1], dtype=np.float32)
    has_var = var is not None
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)
    _read_layer_nb(x, w, var if has_var else w, blocks, transpose, has_var, ideal, dac_quant, dac_step, dac_range,
                   adc_quant, adc_step, adc_bound, sigma2, has_var or output_noise, w_max, np.uint64(key), out)
    return out
