"""The ADC's compiled (numba) kernel and its numpy reference.

ADC. A block read leaves, per output, the ideal sum y (weight units) and the devices'
read-noise variance (weight units²). `adc_accumulate` adds into the layer accumulator

    acc[:, c0:c1] += α · w_max · Q( g·y/w_max + sqrt(g²·var/w_max² + σ_out²) · z )

that is `periphery.adc` (noise, saturating bound, quantisation) in units of w_max, the
rescale to weight units, the partial sum, and the drift compensation: either as the ADC's
gain g before its noise and quantisation (`[pcm] drift_compensation_at = "adc_gain"`) or
as a digital factor α on its output ("digital"); the other is 1. Its numpy twin
`adc_accumulate_numpy` calls `periphery.adc` itself, so the documented reference is the
code that runs without numba; g/w_max is applied as one multiply by the float32 g·(1/w_max).

The DAC's kernels are in `dac_kernels`.

Noise. z is a standard normal from the counter-based generator of `counter_rng`, keyed
once per read from the chip's generator.

Both twins agree bit for bit (tests/runtime/test_kernels.py). Without numba every entry
point falls back to the numpy twin.
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.physics import counter_rng
from analogc.runtime.physics import periphery as _periphery
from analogc.runtime.physics.cores import CHOICE, parallel_threads
from analogc.runtime.physics.counter_rng import HAVE_NUMBA, ONE, CounterNormal, new_key
from analogc.runtime.physics.numba_cache import drop_stale_builds, renamed

if HAVE_NUMBA:
    import numba

    from analogc.runtime.physics.counter_rng import _normal_pairs_nb

    drop_stale_builds(__file__, [counter_rng])  # the ADC kernel compiles in the normals

CHUNK_PAIRS = 4096  # normal pairs the compiled ADC kernel draws ahead (2 × 16 KiB of float32)
# A read may run on all cores from this many outputs (a conv layer's batch: 0.4-1.6·10⁶).
PARALLEL_ADC_OUTPUTS = 1 << 18


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

    # Small reads stay serial: a dense layer's read is ~10⁵ outputs between two matrix
    # products that already use every core, and on the 2-core bench machine a prange over
    # its chunks ran bench/infer_bench.py at 8k examples/s with numba's OpenMP layer (its
    # spinning workers and the products' starve each other) against 127k serial. A conv
    # layer's read (10⁶ outputs a batch) may run on every core (`cores.CHOICE`).
    def _adc_accumulate_body(acc, col0, y, var, has_var, key, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha, parts):
        """CHUNK_PAIRS normal pairs at a time (one flat loop), then their cosine outputs
        and their sine outputs (the read's first and second half, C order). acc, y and
        var are C-contiguous; α = 1 without drift compensation (an exact no-op). The
        chunks are cut into `parts` runs of chunks (one per thread); a chunk's normals
        depend on its counters alone and its outputs are its own, so the bits depend
        neither on `parts` nor on the thread count."""
        total = y.size
        half = (total + 1) // 2
        chunks = (half + CHUNK_PAIRS - 1) // CHUNK_PAIRS
        runs = min(chunks, parts)
        for r in numba.prange(runs):
            z_cos = np.zeros(min(CHUNK_PAIRS, half), dtype=np.float32)
            z_sin = np.zeros(min(CHUNK_PAIRS, half), dtype=np.float32)
            v = np.empty(min(CHUNK_PAIRS, half), dtype=np.float32)
            for c in range(chunks * r // runs, chunks * (r + 1) // runs):
                first = c * CHUNK_PAIRS
                n = min(CHUNK_PAIRS, half - first)
                if noisy:
                    _normal_pairs_nb(key, first, z_cos[:n], z_sin[:n])
                _adc_span(acc, col0, y, var, first, z_cos[:n], v, has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha)
                m = min(n, total - half - first)
                if m > 0:
                    _adc_span(acc, col0, y, var, half + first, z_sin[:m], v, has_var, noisy, w, inv_w, inv_ww, sigma, s2, quantize, step, bound, alpha)

    _adc_accumulate_nb = numba.njit(fastmath=False, error_model="numpy", cache=True)(renamed(_adc_accumulate_body, "_adc_accumulate_serial"))
    _adc_accumulate_parallel = numba.njit(fastmath=False, error_model="numpy", cache=True, parallel=True)(
        renamed(_adc_accumulate_body, "_adc_accumulate_parallel")
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
    sigma, sigma2, quantize, step, bound = _adc_constants(spec)
    args = (acc, col0, y, variance, has_var, np.uint64(key), has_var or sigma > 0, w, inv_w, inv_w * inv_w, sigma, sigma2, quantize, step, bound)
    alpha = np.float32(1.0 if alpha is None else alpha)
    if y.size >= PARALLEL_ADC_OUTPUTS:
        CHOICE.run(("adc", acc.shape[1], y.shape[1], has_var), y.size, _adc_accumulate_nb, _adc_accumulate_parallel, *args, alpha, parallel_threads())
    else:  # serial: one run of chunks
        _adc_accumulate_nb(*args, alpha, 1)


_CONSTANTS: dict = {}  # id(PeripherySpec) -> (the spec, its `_adc_constants`)


def _adc_constants(spec) -> tuple:
    """(σ_out, σ_out², quantise?, step, bound) of the ADC as the compiled kernel takes them
    (float32), worked out once per spec object (a spec is frozen; the entry keeps it, so
    its id is not reused): a dense layer's read is ~100 µs, and these conversions were a
    tenth of its Python side."""
    kept = _CONSTANTS.get(id(spec))
    if kept is not None and kept[0] is spec:
        return kept[1]
    sigma = float(spec.output_noise) if spec.output_noise_enabled else 0.0
    bits = spec.adc_bits
    constants = (
        np.float32(sigma),
        np.float32(sigma**2),
        bool(spec.quantization),
        np.float32(_periphery.level_step(spec.adc_bound, bits)),
        np.float32(spec.adc_bound),
    )
    if len(_CONSTANTS) > 64:  # specs made anew again and again (tests, sweeps): start over
        _CONSTANTS.clear()
    _CONSTANTS[id(spec)] = (spec, constants)
    return constants


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
