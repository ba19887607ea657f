"""The DAC's compiled (numba) kernels and their numpy reference.

`dac_compiled` is the twin of `periphery.dac` (per-example abs-max scaling and
quantisation); `dac` dispatches to it. `dac_layer` is a layer's whole input stage in one
pass: the constant-1 bias input appended, the DAC, and the squared DAC outputs that the
read-noise variance needs, as 7-bit codes (`square_codes`: the variance products run in
8-bit integers, `tile_reads`); its reference is `dac_layer_numpy` (the same steps in numpy).
With column `bounds` it writes its outputs as the column segments a row-split layer's
tile reads take, each a C-contiguous matrix in place (no copy per block).
For a convolution it takes a `RowGather` instead of rows: each patch is read from the
padded input straight into the DAC's output (`dac_gathered`), so no patch matrix is
formed; with a scratch dict the outputs of the previous batch are refilled. A large
gather runs on every usable core when that is faster now (`cores.CHOICE`): examples are
independent, so the bits are the same on one thread or several.

Both twins agree bit for bit (tests/runtime/test_kernels.py). Without numba every entry
point falls back to the numpy twin.
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.physics import counter_rng
from analogc.runtime.physics import periphery as _periphery
from analogc.runtime.physics.cores import CHOICE
from analogc.runtime.physics.counter_rng import HAVE_NUMBA, ONE, ZERO
from analogc.runtime.physics.numba_cache import drop_stale_builds, renamed
from analogc.runtime.physics.row_gather import RowGather  # noqa: F401 (the DAC's input type; im2col makes it)

BIAS_INPUT = np.ones(1, dtype=np.float32)  # the bias row's input, the constant 1
# The squared DAC outputs x² ∈ [0, dac_range²] go to the read-noise variance products as
# codes 0 … SQUARE_LEVELS (uint8), x² ≈ code · dac_range² / SQUARE_LEVELS. 7 bits, not 8:
# with 7-bit variance codes too, no two products summed in 16 bits (x86 without VNNI)
# can saturate (2 · 127 · 127 < 2¹⁵).
SQUARE_LEVELS = 127


def square_gain(dac_range) -> np.float32:
    """Square codes per unit of x²: SQUARE_LEVELS / dac_range² (float32); a code stands
    for x² = code / square_gain."""
    r = np.float32(dac_range)
    return np.float32(np.float32(SQUARE_LEVELS) / (r * r))


def square_codes(x_n: np.ndarray, dac_range) -> np.ndarray:
    """The DAC outputs' squares as codes: min(rint(x²·square_gain), SQUARE_LEVELS), uint8
    (a NaN gives the top code); the compiled DAC writes the same bits."""
    q = np.rint(np.square(x_n) * square_gain(dac_range))
    return np.where(q < SQUARE_LEVELS, q, SQUARE_LEVELS).astype(np.uint8)


if HAVE_NUMBA:
    import numba

    from analogc.runtime.physics.counter_rng import _bits_f32, _f32_bits, _jit_inline

    drop_stale_builds(__file__, [counter_rng])  # the kernels compile in its bit casts

# A conv layer's DAC may run on all cores from this many outputs (a batch of Fashion-MNIST
# patches is 5·10⁶, about 6 ms on one core); starting the threads costs ~10 µs.
PARALLEL_DAC_VALUES = 1 << 18

if HAVE_NUMBA:

    ABS_BITS = np.int32(0x7FFFFFFF)
    _MIN_SCALE = _periphery.MIN_SCALE

    # The DAC kernels index flat arrays with unsigned integers (numba adds no negative-index
    # wraparound to those) and give each row one gathering loop and one element loop: a
    # short row (a 5x5 patch and its bias input is 26) costs its loop overheads, not its
    # arithmetic, so every extra pass or 1-D view per row shows.

    @_jit_inline
    def _dac_scale(top, bias):
        """A row's max |x| (top, as int32 bits; with the bias input 1 when bias), a NaN or
        zero maximum giving 1, one below MIN_SCALE giving MIN_SCALE, as periphery.dac does."""
        if bias:
            top = max(top, _f32_bits(ONE))
        s = _bits_f32(top)
        return max(s, _MIN_SCALE) if s > ZERO else ONE

    _square_gain_nb = _jit_inline(square_gain)

    @_jit_inline
    def _square_code(v, dac_range):
        """`square_codes` of one DAC output (the gain is loop-invariant: worked out once)."""
        q = np.rint(v * v * _square_gain_nb(dac_range))
        return np.uint8(q) if q < SQUARE_LEVELS else np.uint8(SQUARE_LEVELS)

    @_jit_inline
    def _dac_row(x_n, x_sq, o, cols, top, bias, dac_range, quantize, step, squares):
        """Row o … o + cols − 1 of flat x_n holds the inputs (and a last slot for the bias
        input); top is max |x| as int32 bits. The operations of periphery.dac, in its order
        (a NaN or zero maximum gives scale 1, as np.where(scale > 0) does): returns s.
        Products by the row's dac_range / s and by 1 / step, not divisions: two divisions
        an element were half of the DAC's time (a batch of Fashion-MNIST inputs: 113 →
        89 µs with the square codes, 58 µs without)."""
        s = _dac_scale(top, bias)
        if bias:
            x_n[o + np.uint64(cols - 1)] = ONE
        gain, per_step = dac_range / s, ONE / step
        for j in range(cols):
            c = o + np.uint64(j)
            v = x_n[c] * gain
            if quantize:
                v = min(max(np.rint(v * per_step) * step, -dac_range), dac_range)
            x_n[c] = v
            if squares:
                x_sq[c] = _square_code(v, dac_range)
        return s

    @_jit_inline
    def _dac_values(src, base, x_n, x_sq, o, n, s, dac_range, quantize, step, squares):
        """x_n[o + j] = the DAC of src[base + j] for j < n with scale s (x_sq its square):
        `_dac_row`'s element loop, from a source that is not overwritten."""
        gain, per_step = dac_range / s, ONE / step
        for j in range(n):
            v = src[base + np.uint64(j)] * gain
            if quantize:
                v = min(max(np.rint(v * per_step) * step, -dac_range), dac_range)
            c = o + np.uint64(j)
            x_n[c] = v
            if squares:
                x_sq[c] = _square_code(v, dac_range)

    @numba.njit(fastmath=False, error_model="numpy", cache=True)
    def _dac_nb(x, bias, dac_range, quantize, step, squares, x_n, x_sq, scale, bounds):
        """Row by row: max |x| (an integer max over the bits of |x|, ordered as the floats
        are, a NaN's above +inf's, as np.max(np.abs(x)) sees it, and it vectorises where a
        float max with NaN checks would not), then `_dac_row`'s operations. With `bias`
        the row gets one more input, the constant 1, after the last (it takes part in the
        abs-max); with `squares` the squared outputs too. Outputs into the flat x_n, x_sq
        and scale of `_dac_outputs`, x_n and x_sq column segment by segment: the columns
        bounds[p] … bounds[p+1] − 1 of every row form a C-ordered [rows, width] matrix
        starting at rows·bounds[p] (bounds = [0, cols]: x_n is [rows, cols] in C order)."""
        rows, k = x.shape
        cols = k + 1 if bias else k
        src = x.ravel()
        for i in range(rows):
            base = np.uint64(i * k)
            top = np.int32(0)
            for j in range(k):
                top = max(top, _f32_bits(src[base + np.uint64(j)]) & ABS_BITS)
            s = _dac_scale(top, bias)
            for p in range(bounds.size - 1):
                c0, c1 = bounds[p], bounds[p + 1]
                o = np.uint64(rows * c0 + i * (c1 - c0))
                n = min(c1, k) - c0
                if n > 0:
                    _dac_values(src, base + np.uint64(c0), x_n, x_sq, o, n, s, dac_range, quantize, step, squares)
                if bias and c1 == cols:  # the bias input, last of the last segment
                    _dac_values(BIAS_INPUT, np.uint64(0), x_n, x_sq, o + np.uint64(c1 - 1 - c0), 1, s, dac_range, quantize, step,
                                squares)
            scale[i] = s / dac_range

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


def dac_compiled(x: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray]:
    """The numba twin of `periphery.dac` for a 2-D float32 x with at least one column
    (same result, bit for bit): (normalised, quantised input, per-example scale)."""
    x_n, _, scale = _dac_outputs(x.shape[0], x.shape[1], False)
    _dac_nb(np.ascontiguousarray(x), False, *_dac_args(spec), False, x_n.reshape(-1), _flat_or_empty(None), scale.reshape(-1), _whole(x.shape[1]))
    return x_n, scale


def _whole(cols: int) -> np.ndarray:
    """The column bounds of one segment: all the columns."""
    return np.array([0, cols], dtype=np.int64)


def _dac_outputs(rows: int, cols: int, squares: bool, scratch: dict | None = None) -> tuple:
    """(x_n [rows, cols], x_sq [rows, cols] or None, scale [rows, 1]) for a compiled DAC to
    fill. A conv layer's x_n and x_sq are tens of MB per batch, and the first write to
    fresh memory faults its pages in, which cost about as much as the DAC's arithmetic:
    with `scratch` (a dict the caller keeps) the previous call's x_n and x_sq of the same
    shape are filled again, so the caller must be done with them."""
    key = (rows, cols, squares)
    if scratch is None or scratch.get("key") != key:
        x_n = np.empty((rows, cols), dtype=np.float32)
        x_sq = np.empty((rows, cols), dtype=np.uint8) if squares else None
        if scratch is not None:
            scratch.update(key=key, x_n=x_n, x_sq=x_sq)
    else:
        x_n, x_sq = scratch["x_n"], scratch["x_sq"]
    return x_n, x_sq, np.empty((rows, 1), dtype=np.float32)


def _segment_views(buffer: np.ndarray, rows: int, bounds: tuple) -> tuple:
    """The column segments of a flat buffer that `_dac_nb` filled segment by segment:
    segment p is the C-ordered [rows, bounds[p+1] − bounds[p]] matrix at rows·bounds[p]."""
    flat = buffer.reshape(-1)
    return tuple(flat[rows * c0 : rows * c1].reshape(rows, c1 - c0) for c0, c1 in zip(bounds[:-1], bounds[1:]))


def _segments(x: np.ndarray | None, bounds: tuple) -> tuple | None:
    """x's column segments bounds[p] … bounds[p+1] − 1, each C-contiguous (copies)."""
    if x is None:
        return None
    return tuple(np.ascontiguousarray(x[:, c0:c1]) for c0, c1 in zip(bounds[:-1], bounds[1:]))


def _dac_args(spec) -> tuple:
    """(dac_range, quantise?, step) as the compiled DAC takes them (float32)."""
    step = np.float32(_periphery.level_step(spec.dac_range, spec.dac_bits))
    return np.float32(spec.dac_range), bool(spec.quantization), step


def dac_layer_numpy(flat: np.ndarray, bias: bool, spec, squares: bool, bounds: tuple | None = None) -> tuple:
    """A layer's input stage, the reference for `dac_layer`: the rows of flat (float32)
    with the constant-1 bias input appended when `bias`, through `periphery.dac`; returns
    (x_n, x_n²'s `square_codes` or None, per-example scale). With column `bounds` (0 =
    bounds[0] < … < bounds[-1] = the columns with the bias input), x_n and the codes are tuples of their
    column segments, each a C-contiguous array."""
    k = flat.shape[1]
    x = np.empty((flat.shape[0], k + 1), dtype=np.float32) if bias else flat.astype(np.float32, copy=False)
    if bias:
        x[:, :k] = flat
        x[:, k] = 1.0
    x_n, scale = _periphery.dac(x, spec)
    x_sq = square_codes(x_n, spec.dac_range) if squares else None
    if bounds is not None:
        return _segments(x_n, bounds), _segments(x_sq, bounds), scale
    return x_n, x_sq, scale


def check_bounds(bounds, cols: int) -> tuple:
    """Column bounds as a tuple of ints, refused unless they rise from 0 to cols."""
    bounds = tuple(int(b) for b in bounds)
    if len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != cols or any(a >= b for a, b in zip(bounds[:-1], bounds[1:])):
        raise ValueError(f"DAC column bounds {bounds} must rise from 0 to the {cols} columns")
    return bounds


def dac_layer(flat, bias: bool, spec, squares: bool, compiled: bool | None = None, scratch: dict | None = None, bounds=None) -> tuple:
    """`dac_layer_numpy` in one compiled pass (same bits) when numba is importable, flat
    (taken as float32, as the reference does) is 2-D and has a column or a bias;
    `compiled` forces the choice. flat may be a `RowGather` (`dac_gathered`). With
    `scratch`, the compiled pass refills the x_n and x_sq of its last call (`_dac_outputs`).
    With column `bounds`, x_n and x_sq are tuples of their column segments (as
    `dac_layer_numpy`); the compiled pass writes each segment in place (no copy): the
    tile reads of a row-split layer take them as they are."""
    if isinstance(flat, RowGather):
        x_n, x_sq, scale = dac_gathered(flat, bias, spec, squares, compiled, scratch)
        if bounds is None:
            return x_n, x_sq, scale
        bounds = check_bounds(bounds, x_n.shape[1])
        return _segments(x_n, bounds), _segments(x_sq, bounds), scale
    flat = np.asarray(flat).astype(np.float32, copy=False)
    if compiled is None:
        compiled = HAVE_NUMBA and flat.ndim == 2 and (flat.shape[1] > 0 or bias)
    if not compiled:
        if bounds is not None:
            bounds = check_bounds(bounds, flat.shape[1] + bool(bias))
        return dac_layer_numpy(flat, bias, spec, squares, bounds)
    out = _dac_segments(flat.shape[0], flat.shape[1] + bool(bias), squares, None if bounds is None else tuple(bounds), scratch)
    _dac_nb(np.ascontiguousarray(flat), bool(bias), *_dac_args(spec), bool(squares), out["x_n_flat"], out["x_sq_flat"], out["scale"].reshape(-1), out["edges"])
    return out["x_n"], out["x_sq"], out["scale"]


def _dac_segments(rows: int, cols: int, squares: bool, bounds: tuple | None, scratch: dict | None) -> dict:
    """`_dac_outputs` for `_dac_nb`, with everything it takes worked out: the flat x_n
    and x_sq, the column bounds (an array) and what dac_layer returns (the outputs, or
    their segments' views with `bounds`). With `scratch` the previous call's are reused
    when the shape and bounds are the same (a dense layer's DAC is 30-120 µs a batch, and
    making these views again was a tenth of it); scale is new each call."""
    key = (rows, cols, squares, bounds)
    if scratch is not None and scratch.get("segments_key") == key:
        out = scratch["segments"]
        out["scale"] = np.empty((rows, 1), dtype=np.float32)
        return out
    if bounds is not None:
        bounds = check_bounds(bounds, cols)
    x_n, x_sq, scale = _dac_outputs(rows, cols, squares, scratch)
    out = {"x_n_flat": x_n.reshape(-1), "x_sq_flat": _flat_or_empty(x_sq), "scale": scale, "x_n": x_n, "x_sq": x_sq}
    out["edges"] = _whole(cols) if bounds is None else np.array(bounds, dtype=np.int64)
    if bounds is not None:
        out["x_n"] = _segment_views(x_n, rows, bounds)
        out["x_sq"] = None if x_sq is None else _segment_views(x_sq, rows, bounds)
    if scratch is not None:
        scratch.update(segments_key=key, segments=out)
    return out


def dac_gathered(gather: RowGather, bias: bool, spec, squares: bool, compiled: bool | None = None, scratch: dict | None = None) -> tuple:
    """`dac_layer(gather.rows(), …)` (same bits) without forming the rows when numba is
    importable (`compiled` forces the choice; `scratch` as `dac_layer`)."""
    if compiled is None:
        compiled = HAVE_NUMBA
    if not compiled:
        return dac_layer_numpy(gather.rows(), bias, spec, squares)
    x_n, x_sq, scale = _dac_outputs(gather.shape[0], gather.shape[1] + bool(bias), squares, scratch)
    args = (
        gather.source, gather.examples, gather.example_stride, gather.position_base, gather.offsets,
        bool(bias), *_dac_args(spec), bool(squares), x_n.reshape(-1), _flat_or_empty(x_sq), scale.reshape(-1),
    )
    if x_n.size >= PARALLEL_DAC_VALUES and gather.examples > 1:
        CHOICE.run(("dac_gather", x_n.shape[1], squares), x_n.size, _dac_gather_nb, _dac_gather_parallel, *args)
    else:
        _dac_gather_nb(*args)
    return x_n, x_sq, scale


def _flat_or_empty(x: np.ndarray | None) -> np.ndarray:
    """A compiled DAC's squares output: x flat, or an empty array when squares are off."""
    return np.empty(0, dtype=np.uint8) if x is None else x.reshape(-1)


def dac(x: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray]:
    """`periphery.dac`, through its compiled twin when that takes x (same bits)."""
    return dac_compiled(x, spec) if dac_compiles(x) else _periphery.dac(x, spec)


def dac_compiles(x: np.ndarray) -> bool:
    """Whether `dac_compiled` takes x (numba importable, 2-D float32, at least one column)."""
    return HAVE_NUMBA and isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2 and x.shape[1] > 0
