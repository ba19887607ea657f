"""Compiled (numba) twins of the read path's element-wise kernels, and their numpy references.

ADC. A block read leaves, per output, the ideal sum y (weight units) and the devices'
read-noise variance (weight units²). `adc_accumulate` adds into the layer accumulator

    acc[:, c0:c1] += α · w_max · Q( g·y/w_max + sqrt(g²·var/w_max² + σ_out²) · z )

that is `periphery.adc` (noise, saturating bound, quantisation) in units of w_max, the
rescale to weight units, the partial sum, and the drift compensation: either as the ADC's
gain g before its noise and quantisation (`[pcm] drift_compensation_at = "adc_gain"`) or
as a digital factor α on its output ("digital"); the other is 1. Its numpy twin
`adc_accumulate_numpy` calls `periphery.adc` itself, so the documented reference is the
code that runs without numba; g/w_max is applied as one multiply by the float32 g·(1/w_max).

DAC. `dac_compiled` is the twin of `periphery.dac` (per-example abs-max scaling and
quantisation); `dac` dispatches to it. `dac_layer` is a layer's whole input stage in one
pass: the constant-1 bias input appended, the DAC, and the squared DAC outputs that the
read-noise variance needs; its reference is `dac_layer_numpy` (the same three steps in numpy).
For a convolution it takes a `RowGather` instead of rows: each patch is read from the
padded input straight into the DAC's output (`dac_gathered`), so no patch matrix is
formed; with a scratch dict the outputs of the previous batch are refilled.

Noise. z is a standard normal from the counter-based generator of `counter_rng`, keyed
once per read from the chip's generator.

Both twins agree bit for bit (tests/runtime/test_kernels.py). Without numba every entry
point falls back to the numpy twin.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from analogc.runtime.physics import counter_rng
from analogc.runtime.physics import periphery as _periphery
from analogc.runtime.physics.counter_rng import HAVE_NUMBA, ONE, ZERO, CounterNormal, new_key
from analogc.runtime.physics.numba_cache import drop_stale_builds, renamed

if HAVE_NUMBA:
    import numba

    from analogc.runtime.physics.counter_rng import _bits_f32, _f32_bits, _jit_inline, _normal_pairs_nb

    drop_stale_builds(__file__, [counter_rng])  # the ADC kernel compiles in the normals

CHUNK_PAIRS = 4096  # normal pairs the compiled ADC kernel draws ahead (2 × 16 KiB of float32)
# A conv layer's DAC runs on all cores from this many outputs (a batch of Fashion-MNIST
# patches is 5·10⁶, about 6 ms on one core); starting the threads costs ~10 µs.
PARALLEL_DAC_VALUES = 1 << 18


def adc_input_scale(w_max: float, gain: float | None) -> np.float32:
    """g/w_max as both twins compute it: the float32 reciprocal of w_max, times g if given."""
    inv_w = ONE / np.float32(w_max)
    return inv_w if gain is None else np.float32(gain) * inv_w


def adc_accumulate_numpy(acc, col0, y, variance, w_max, alpha, spec, key, gain=None) -> None:
    """acc[:, col0:col0+C] += α · w_max · adc(g·y/w_max, g²·variance/w_max²) with the normals
    counter_normal(key, y.shape): the reference for `adc_accumulate_compiled`.

    acc: [batch, layer outputs] float32; y, variance: [batch, C] in weight units (variance
    in weight units², or None for no read noise); w_max: the layer's range (weight units);
    alpha: digital drift compensation factor or None; spec: the PeripherySpec (adc_bound,
    adc_bits, output_noise in units of w_max·dac_range); key: the generator key; gain: the
    ADC's gain g (drift compensation before the ADC) or None. The chip's code before the
    compiled twin, except that g/w_max is one float32 factor (`adc_input_scale`), multiplied.
    """
    w_max = np.float32(w_max)
    inv_w = adc_input_scale(w_max, gain)
    if variance is not None:
        variance = variance * (inv_w * inv_w)
    partial = _periphery.adc(y * inv_w, spec, CounterNormal(key), variance) * w_max
    if alpha is not None:
        partial *= np.float32(alpha)
    acc[:, col0 : col0 + y.shape[1]] += partial


# --- numba twin. --------------------------------------------------------------------------

if HAVE_NUMBA:

    # The element loops: small functions of their own, over unit-stride 1-D views (LLVM
    # vectorises these, not the same loops written inline in a 2-D loop). float32.
    _jit_loop = numba.njit(fastmath=False, error_model="numpy", cache=True)

    @_jit_loop
    def _adc_full_run(out, y, var, z, w, inv_w, inv_ww, s2, step, bound, alpha):
        """out += α·w·Q(y/w + sqrt(var/w² + σ²)·z): read noise and quantisation on."""
        for j in range(y.size):
            v = y[j] * inv_w + np.sqrt(var[j] * inv_ww + s2) * z[j]
            out[j] += min(max(np.rint(v / step) * step, -bound), bound) * w * alpha

    @_jit_loop
    def _scaled_run(v, y, inv_w):
        for j in range(y.size):
            v[j] = y[j] * inv_w

    @_jit_loop
    def _read_noise_run(v, y, var, z, inv_w, inv_ww, s2):
        for j in range(y.size):
            v[j] = y[j] * inv_w + np.sqrt(var[j] * inv_ww + s2) * z[j]

    @_jit_loop
    def _output_noise_run(v, y, z, inv_w, sigma):
        for j in range(y.size):
            v[j] = y[j] * inv_w + sigma * z[j]

    @_jit_loop
    def _quantize_run(v, step, bound):
        for j in range(v.size):
            v[j] = min(max(np.rint(v[j] / step) * step, -bound), bound)

    @_jit_loop
    def _accumulate_run(out, v, w, alpha):
        for j in range(v.size):
            out[j] += v[j] * w * alpha

    @_jit_loop
    def _adc_run(out, y, var, z, v, has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha):
        """One contiguous run of outputs; v is scratch of the same length."""
        if noisy and has_var and quantize:
            _adc_full_run(out, y, var, z, w, inv_w, inv_ww, s2, step, bound, alpha)
            return
        if not noisy:
            _scaled_run(v, y, inv_w)
        elif has_var:
            _read_noise_run(v, y, var, z, inv_w, inv_ww, s2)
        else:
            _output_noise_run(v, y, z, inv_w, sigma)
        if quantize:
            _quantize_run(v, step, bound)
        _accumulate_run(out, v, w, alpha)

    @_jit_loop
    def _adc_span(acc, col0, y, var, first, z, v, has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha):
        """Outputs first … first + len(z) − 1 of the read (C order), z their normals: one
        run when the read covers whole accumulator rows, else one run per row piece."""
        cols = y.shape[1]
        count = z.size
        if col0 == 0 and cols == acc.shape[1]:
            stop = first + count
            _adc_run(acc.ravel()[first:stop], y.ravel()[first:stop], var.ravel()[first:stop], z, v[:count],
                     has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha)
            return
        done = 0
        while done < count:
            i, j = divmod(first + done, cols)
            n = min(cols - j, count - done)
            _adc_run(acc[i, col0 + j : col0 + j + n], y[i, j : j + n], var[i, j : j + n], z[done : done + n], v[:n],
                     has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha)
            done += n

    # Serial on purpose. A block read is only ~10⁵ outputs between two OpenBLAS matmuls
    # that already use every core. On the 2-core bench machine a prange over the chunks
    # ran bench/infer_bench.py at 8k examples/s with numba's OpenMP layer (its spinning
    # workers and OpenBLAS's starve each other), 115k with OMP_WAIT_POLICY=passive, 113k
    # with the workqueue layer, against 127k serial.
    @numba.njit(fastmath=False, error_model="numpy", cache=True)
    def _adc_accumulate_nb(acc, col0, y, var, has_var, key, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha):
        """CHUNK_PAIRS normal pairs at a time (one flat loop), then their cosine outputs
        and their sine outputs (the read's first and second half, C order). acc, y and
        var are C-contiguous; α = 1 without drift compensation (an exact no-op)."""
        total = y.size
        half = (total + 1) // 2
        z_cos = np.zeros(min(CHUNK_PAIRS, half), dtype=np.float32)
        z_sin = np.zeros(min(CHUNK_PAIRS, half), dtype=np.float32)
        v = np.empty(min(CHUNK_PAIRS, half), dtype=np.float32)
        for first in range(0, half, CHUNK_PAIRS):
            n = min(CHUNK_PAIRS, half - first)
            if noisy:
                _normal_pairs_nb(key, first, z_cos[:n], z_sin[:n])
            _adc_span(acc, col0, y, var, first, z_cos[:n], v, has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha)
            m = min(n, total - half - first)
            if m > 0:
                _adc_span(acc, col0, y, var, half + first, z_sin[:m], v, has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha)

    ABS_BITS = np.int32(0x7FFFFFFF)

    # The DAC kernels index flat arrays with unsigned integers (numba adds no negative-index
    # wraparound to those) and give each row one gathering loop and one element loop: a
    # short row (a 5x5 patch and its bias input is 26) costs its loop overheads, not its
    # arithmetic, so every extra pass or 1-D view per row shows.

    @_jit_inline
    def _dac_row(x_n, x_sq, o, cols, top, bias, dac_range, quantize, step, squares):
        """Row o … o + cols − 1 of flat x_n holds the inputs (and a last slot for the bias
        input); top is max |x| as int32 bits. The operations of periphery.dac, in its order
        (a NaN or zero maximum gives scale 1, as np.where(scale > 0) does): returns s."""
        if bias:
            top = max(top, _f32_bits(ONE))
            x_n[o + np.uint64(cols - 1)] = ONE
        s = _bits_f32(top)
        if not s > ZERO:
            s = ONE
        for j in range(cols):
            c = o + np.uint64(j)
            v = x_n[c] / s * dac_range
            if quantize:
                v = min(max(np.rint(v / step) * step, -dac_range), dac_range)
            x_n[c] = v
            if squares:
                x_sq[c] = v * v
        return s

    @numba.njit(fastmath=False, error_model="numpy", cache=True)
    def _dac_nb(x, bias, dac_range, quantize, step, squares, x_n, x_sq, scale):
        """Row by row: copy while taking max |x| (an integer max over the bits of |x|,
        ordered as the floats are, a NaN's above +inf's, as np.max(np.abs(x)) sees it, and
        it vectorises where a float max with NaN checks would not), then `_dac_row`. With
        `bias` the row gets one more input, the constant 1, before the DAC (it takes part
        in the abs-max); with `squares` the squared outputs too. Outputs into the flat
        x_n, x_sq and scale of `_dac_outputs`."""
        rows, k = x.shape
        cols = k + 1 if bias else k
        src = x.ravel()
        for i in range(rows):
            base, o = np.uint64(i * k), np.uint64(i * cols)
            top = np.int32(0)
            for j in range(k):
                v = src[base + np.uint64(j)]
                x_n[o + np.uint64(j)] = v
                top = max(top, _f32_bits(v) & ABS_BITS)
            scale[i] = _dac_row(x_n, x_sq, o, cols, top, bias, dac_range, quantize, step, squares) / dac_range

    def _dac_gather_body(source, examples, example_stride, position_base, offsets, bias, dac_range, quantize, step, squares, x_n, x_sq, scale):
        """`_dac_nb` of the rows of a `RowGather` (its fields are the first five
        arguments), gathered straight into the DAC's output: no patch matrix in between.
        Examples are independent (no random draw, no sum across rows): the same bits on
        one thread or two."""
        positions = position_base.size
        k = offsets.size
        cols = k + 1 if bias else k
        for b in numba.prange(examples):
            for p in range(positions):
                i = b * positions + p
                base, o = np.uint64(b * example_stride + position_base[p]), np.uint64(i * cols)
                top = np.int32(0)
                for j in range(k):
                    v = source[base + np.uint64(offsets[j])]
                    x_n[o + np.uint64(j)] = v
                    top = max(top, _f32_bits(v) & ABS_BITS)
                scale[i] = _dac_row(x_n, x_sq, o, cols, top, bias, dac_range, quantize, step, squares) / dac_range

    _dac_gather_nb = numba.njit(fastmath=False, error_model="numpy", cache=True)(renamed(_dac_gather_body, "_dac_gather_serial"))
    _dac_gather_parallel = numba.njit(fastmath=False, error_model="numpy", cache=True, parallel=True)(
        renamed(_dac_gather_body, "_dac_gather_parallel")
    )


def adc_accumulate_compiled(acc, col0, y, variance, w_max, alpha, spec, key, gain=None) -> None:
    """The numba twin of `adc_accumulate_numpy` (same arguments, same result); acc must be
    a C-contiguous float32 array, y and variance float32."""
    rows, cols = y.shape
    if not (acc.flags.c_contiguous and acc.dtype == np.float32 and acc.ndim == 2):
        raise ValueError("adc_accumulate_compiled: acc must be a C-contiguous 2-D float32 array")
    if acc.shape[0] != rows or not 0 <= col0 <= acc.shape[1] - cols:
        raise ValueError(f"adc_accumulate_compiled: a {y.shape} read does not fit acc {acc.shape} at column {col0}")
    if variance is not None and variance.shape != y.shape:
        raise ValueError(f"adc_accumulate_compiled: variance {variance.shape} and y {y.shape} differ")
    y = np.ascontiguousarray(y, dtype=np.float32)
    has_var = variance is not None
    variance = np.ascontiguousarray(variance, dtype=np.float32) if has_var else y
    w = np.float32(w_max)
    inv_w = adc_input_scale(w, gain)
    sigma = float(spec.output_noise) if spec.output_noise_enabled else 0.0
    bits = spec.adc_bits
    _adc_accumulate_nb(
        acc,
        col0,
        y,
        variance,
        has_var,
        np.uint64(key),
        has_var or sigma > 0,
        w,
        inv_w,
        inv_w * inv_w,
        np.float32(sigma),
        np.float32(sigma**2),
        bool(spec.quantization),
        np.float32(spec.adc_bound / max(2 ** (bits - 1) - 1, 1)),
        np.float32(spec.adc_bound),
        np.float32(1.0 if alpha is None else alpha),
    )


def adc_accumulate(acc, col0, y, variance, w_max, alpha, spec, rng: np.random.Generator, compiled: bool | None = None, gain=None) -> None:
    """acc[:, col0:col0+C] += α · w_max · adc(g·y/w_max, g²·variance/w_max²), in place (see
    the module docstring; arguments as `adc_accumulate_numpy`).

    Draws one key from `rng` when there is noise to draw. Runs the numba twin when numba
    is importable and the arrays are float32 (acc C-contiguous); `compiled` forces the choice.
    """
    noisy = variance is not None or (spec.output_noise_enabled and spec.output_noise > 0)
    key = new_key(rng) if noisy else 0
    if compiled is None:
        arrays = (acc, y) if variance is None else (acc, y, variance)
        compiled = HAVE_NUMBA and acc.flags.c_contiguous and all(a.dtype == np.float32 and a.ndim == 2 for a in arrays)
    if compiled:
        adc_accumulate_compiled(acc, col0, y, variance, w_max, alpha, spec, key, gain)
    else:
        adc_accumulate_numpy(acc, col0, y, variance, w_max, alpha, spec, key, gain)


def dac_compiled(x: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray]:
    """The numba twin of `periphery.dac` for a 2-D float32 x with at least one column
    (same result, bit for bit): (normalised, quantised input, per-example scale)."""
    x_n, _, scale = _dac_outputs(x.shape[0], x.shape[1], False)
    _dac_nb(np.ascontiguousarray(x), False, *_dac_args(spec), False, x_n.reshape(-1), _flat_or_empty(None), scale.reshape(-1))
    return x_n, scale


def _dac_outputs(rows: int, cols: int, squares: bool, scratch: dict | None = None) -> tuple:
    """(x_n [rows, cols], x_sq [rows, cols] or None, scale [rows, 1]) for a compiled DAC to
    fill. A conv layer's x_n and x_sq are tens of MB per batch, and the first write to
    fresh memory faults its pages in, which cost about as much as the DAC's arithmetic:
    with `scratch` (a dict the caller keeps) the previous call's x_n and x_sq of the same
    shape are filled again, so the caller must be done with them."""
    key = (rows, cols, squares)
    if scratch is None or scratch.get("key") != key:
        x_n = np.empty((rows, cols), dtype=np.float32)
        x_sq = np.empty((rows, cols), dtype=np.float32) if squares else None
        if scratch is not None:
            scratch.update(key=key, x_n=x_n, x_sq=x_sq)
    else:
        x_n, x_sq = scratch["x_n"], scratch["x_sq"]
    return x_n, x_sq, np.empty((rows, 1), dtype=np.float32)


def _dac_args(spec) -> tuple:
    """(dac_range, quantise?, step) as the compiled DAC takes them (float32)."""
    step = np.float32(spec.dac_range / max(2 ** (spec.dac_bits - 1) - 1, 1))
    return np.float32(spec.dac_range), bool(spec.quantization), step


def dac_layer_numpy(flat: np.ndarray, bias: bool, spec, squares: bool) -> tuple:
    """A layer's input stage, the reference for `dac_layer`: the rows of flat (float32)
    with the constant-1 bias input appended when `bias`, through `periphery.dac`; returns
    (x_n, x_n² or None, per-example scale)."""
    k = flat.shape[1]
    x = np.empty((flat.shape[0], k + 1), dtype=np.float32) if bias else flat.astype(np.float32, copy=False)
    if bias:
        x[:, :k] = flat
        x[:, k] = 1.0
    x_n, scale = _periphery.dac(x, spec)
    return x_n, (np.square(x_n) if squares else None), scale


def dac_layer(flat, bias: bool, spec, squares: bool, compiled: bool | None = None, scratch: dict | None = None) -> tuple:
    """`dac_layer_numpy` in one compiled pass (same bits) when numba is importable, flat
    (taken as float32, as the reference does) is 2-D and has a column or a bias;
    `compiled` forces the choice. flat may be a `RowGather` (`dac_gathered`). With
    `scratch`, the compiled pass refills the x_n and x_sq of its last call (`_dac_outputs`)."""
    if isinstance(flat, RowGather):
        return dac_gathered(flat, bias, spec, squares, compiled, scratch)
    flat = np.asarray(flat).astype(np.float32, copy=False)
    if compiled is None:
        compiled = HAVE_NUMBA and flat.ndim == 2 and (flat.shape[1] > 0 or bias)
    if not compiled:
        return dac_layer_numpy(flat, bias, spec, squares)
    x_n, x_sq, scale = _dac_outputs(flat.shape[0], flat.shape[1] + bool(bias), squares, scratch)
    _dac_nb(np.ascontiguousarray(flat), bool(bias), *_dac_args(spec), bool(squares), x_n.reshape(-1), _flat_or_empty(x_sq), scale.reshape(-1))
    return x_n, x_sq, scale


class RowGather(NamedTuple):
    """Rows read out of a flat float32 source: row b·P + p (b < examples, p < P =
    len(position_base)) is source[b·example_stride + position_base[p] + offsets], so a
    convolution's patches (`im2col.layer_gather`) need no patch matrix."""

    source: np.ndarray
    examples: int
    example_stride: int
    position_base: np.ndarray
    offsets: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of the gathered rows."""
        return self.examples * len(self.position_base), len(self.offsets)

    def rows(self) -> np.ndarray:
        """The gathered rows [examples·P, len(offsets)] (float32), in numpy."""
        starts = np.arange(self.examples, dtype=np.int64)[:, None] * self.example_stride + self.position_base[None, :]
        return self.source[starts.reshape(-1, 1) + self.offsets[None, :]]


def dac_gathered(gather: RowGather, bias: bool, spec, squares: bool, compiled: bool | None = None, scratch: dict | None = None) -> tuple:
    """`dac_layer(gather.rows(), …)` (same bits) without forming the rows when numba is
    importable (`compiled` forces the choice; `scratch` as `dac_layer`)."""
    if compiled is None:
        compiled = HAVE_NUMBA
    if not compiled:
        return dac_layer_numpy(gather.rows(), bias, spec, squares)
    x_n, x_sq, scale = _dac_outputs(gather.shape[0], gather.shape[1] + bool(bias), squares, scratch)
    kernel = _dac_gather_parallel if x_n.size >= PARALLEL_DAC_VALUES and gather.examples > 1 else _dac_gather_nb
    kernel(
        gather.source, gather.examples, gather.example_stride, gather.position_base, gather.offsets,
        bool(bias), *_dac_args(spec), bool(squares), x_n.reshape(-1), _flat_or_empty(x_sq), scale.reshape(-1),
    )
    return x_n, x_sq, scale


def _flat_or_empty(x: np.ndarray | None) -> np.ndarray:
    """A compiled DAC's squares output: x flat, or an empty array when squares are off."""
    return np.empty(0, dtype=np.float32) if x is None else x.reshape(-1)


def dac(x: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray]:
    """`periphery.dac`, through its compiled twin when that takes x (same bits)."""
    return dac_compiled(x, spec) if dac_compiles(x) else _periphery.dac(x, spec)


def dac_compiles(x: np.ndarray) -> bool:
    """Whether `dac_compiled` takes x (numba importable, 2-D float32, at least one column)."""
    return HAVE_NUMBA and isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2 and x.shape[1] > 0
