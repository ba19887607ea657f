"""The chip's noise source: a counter-based, stateless normal generator, numpy and numba.

z is a standard normal. For a read of n outputs in C order and H = ⌈n/2⌉, pair counter p
(0 ≤ p < H) is hashed with the read's key by splitmix64 (Steele, Lea & Flood, OOPSLA
2014) into two uniforms, and Box-Muller gives output p = r·cos φ and output H + p =
r·sin φ. The logarithm, sine and cosine are short float32 polynomials (no libm, no fused
multiply-add), so numpy and numba evaluate the same IEEE operations and get the same
bits. The key is one draw from the chip's `np.random.Generator` per read, so a run is
fixed by its seed; training keys its reads and updates with `mix64` instead.

`mix64` is splitmix64's mixing function, written once: numpy arrays run it as written,
numba compiles it (`_splitmix64_nb`), `mix64_int` applies it to a Python int. The
float32 bit casts `_f32_bits` / `_bits_f32` live here too (the DAC kernels use them).
Both twins agree bit for bit (tests/runtime/test_kernels.py).
"""

from __future__ import annotations

import math

import numpy as np

try:
    import numba
    from llvmlite import ir as _ir
    from numba import types as _types
    from numba.extending import intrinsic as _intrinsic
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

HAVE_NUMBA = numba is not None

# splitmix64: Weyl increment and the two mixing multipliers.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
ONE_U, TWO_U = np.uint64(1), np.uint64(2)
SHIFT_30, SHIFT_27, SHIFT_31, SHIFT_32, SHIFT_8 = (np.uint64(s) for s in (30, 27, 31, 32, 8))
LOW_24 = np.uint64(2**24 - 1)
# float32 bit fields, and every float constant as float32 (numba would widen a Python float).
MANTISSA = np.int32(0x007FFFFF)
EXPONENT_ONE = np.int32(0x3F800000)
F32 = np.float32
ZERO, HALF, ONE, TWO, THIRTY_TWO = F32(0.0), F32(0.5), F32(1.0), F32(2.0), F32(32.0)
SQRT2 = F32(math.sqrt(2.0))
LN2 = F32(math.log(2.0))
HALF_PI = F32(math.pi / 2)
TWO_M24 = F32(2.0**-24)
L3, L5, L7, L9 = (F32(1 / k) for k in (3, 5, 7, 9))  # ln: 2·atanh series
S3, S5, S7, S9 = (F32((-1) ** (k // 2) / math.factorial(k)) for k in (3, 5, 7, 9))  # sine
C2, C4, C6, C8, C10 = (F32((-1) ** (k // 2) / math.factorial(k)) for k in (2, 4, 6, 8, 10))  # cosine


# Bit generators whose raw output is their next 64-bit word (MT19937's is 32 bits).
RAW_64 = (np.random.SFC64, np.random.PCG64, np.random.PCG64DXSM, np.random.Philox)


def new_key(rng: np.random.Generator) -> int:
    """One 63-bit generator key, drawn from the chip's generator: rng.integers(2**63).
    For the range 2⁶³ numpy's Lemire draw is the next 64-bit word shifted right once,
    never rejected, so a 64-bit generator's raw word gives the same key and state in
    0.2 µs instead of 1.2-5 µs (five reads a batch; tests/runtime/test_kernels.py)."""
    bit_generator = rng.bit_generator
    if type(bit_generator) in RAW_64:
        return int(bit_generator.random_raw()) >> 1
    return int(rng.integers(2**63))


# --- float32 arithmetic shared by both twins: only +, −, ×, ÷, √ in a fixed order. -------


def _log_mantissa(m):
    """ln m for m in [√½, √2]: 2·atanh(s), s = (m−1)/(m+1), series to s⁹
    (|error| < 7e-8 in float32, about one ulp of ln √2)."""
    f = m - ONE
    s = f / (f + TWO)
    s2 = s * s
    return (TWO * s) * (ONE + s2 * (L3 + s2 * (L5 + s2 * (L7 + s2 * L9))))


def _sin_cos(theta):
    """(sin θ, cos θ) for |θ| ≤ π/4, Taylor to θ⁹ and θ¹⁰
    (|error| < 7e-8 in float32, about one ulp)."""
    t2 = theta * theta
    sin = theta + (theta * t2) * (S3 + t2 * (S5 + t2 * (S7 + t2 * S9)))
    cos = ONE + t2 * (C2 + t2 * (C4 + t2 * (C6 + t2 * (C8 + t2 * C10))))
    return sin, cos


def _radius(e, ln_m):
    """Box-Muller's r = sqrt(−2 ln u1) for u1 = m·2^(e−32)."""
    return np.sqrt(TWO * ((THIRTY_TWO - e) * LN2 - ln_m))


# --- numpy twin. --------------------------------------------------------------------------


def mix64(z):
    """splitmix64's output function on Weyl state z (uint64 arithmetic, wrapping): the one
    definition of the mix. Written for uint64 numpy arrays, compiled by numba for uint64
    scalars (`_splitmix64_nb`), and for a Python int through `mix64_int`."""
    z = (z ^ (z >> SHIFT_30)) * MIX1
    z = (z ^ (z >> SHIFT_27)) * MIX2
    return z ^ (z >> SHIFT_31)


def splitmix64(key: int, counter: np.ndarray) -> np.ndarray:
    """The counter-th output of splitmix64 seeded with key (uint64 arithmetic, wrapping)."""
    return mix64(np.uint64(key) + (counter.astype(np.uint64) + ONE_U) * GOLDEN)


def mix64_int(z: int) -> int:
    """`mix64` of one Python int in [0, 2⁶⁴): the compiled scalar when numba is there (a
    numpy scalar would warn on the wrapping multiply), else a one-element array."""
    if HAVE_NUMBA:
        return int(_splitmix64_nb(np.uint64(z)))
    return int(mix64(np.array([z], dtype=np.uint64))[0])


def normal_pairs(key: int, counter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard normals (float32) per pair counter.

    The hash's high 32 bits k1 give u1 = (k1 + ½)·2⁻³² ∈ (0, 1] in float32 (|z| ≤ 6.7),
    bits 8…31 the angle θ = (π/2)·((k2 + ½)·2⁻²⁴ − ½) within a quadrant, bit 0 the odd
    quadrants (φ = θ ± π/2: sine and cosine swap) and bit 1 the half turn (both negate):
    (z0, z1) = r·(cos φ, sin φ).
    """
    h = splitmix64(key, counter)
    x = (h >> SHIFT_32).astype(np.int64).astype(F32) + HALF
    bits = x.view(np.int32)
    m = ((bits & MANTISSA) | EXPONENT_ONE).view(F32)
    big = m > SQRT2
    m = np.where(big, m * HALF, m)
    e = ((bits >> 23) - 127 + big).astype(F32)
    theta = (((h >> SHIFT_8) & LOW_24).astype(np.int64).astype(F32) + HALF) * TWO_M24
    theta = (theta - HALF) * HALF_PI
    s, c = _sin_cos(theta)
    r = _radius(e, _log_mantissa(m))
    odd = (h & ONE_U).astype(bool)
    r = np.where((h & TWO_U).astype(bool), -r, r)
    return r * np.where(odd, -s, c), r * np.where(odd, c, s)


def counter_normal(key: int, shape) -> np.ndarray:
    """Standard normals (float32) of `shape`. With n outputs in C order and H = ⌈n/2⌉,
    pair counter p gives output p (cosine) and output H + p (sine)."""
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
    n = int(np.prod(shape, dtype=np.int64))
    z_cos, z_sin = normal_pairs(key, np.arange((n + 1) // 2, dtype=np.uint64))
    return np.concatenate([z_cos, z_sin])[:n].reshape(shape)


class CounterNormal:
    """The part of `np.random.Generator` that `periphery.adc` uses, answered from the
    counter-based generator with a fixed key (each call restarts at counter 0)."""

    def __init__(self, key: int):
        self.key = key

    def standard_normal(self, size, dtype=np.float64) -> np.ndarray:
        return counter_normal(self.key, size).astype(dtype, copy=False)


# --- numba twin. --------------------------------------------------------------------------

if HAVE_NUMBA:

    @_intrinsic
    def _f32_bits(typingctx, x):
        """The IEEE-754 bits of a float32, as int32 (numpy: x.view(np.int32))."""
        if x != _types.float32:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], _ir.IntType(32))

        return _types.int32(_types.float32), codegen

    @_intrinsic
    def _bits_f32(typingctx, b):
        """The float32 whose IEEE-754 bits are the low 32 bits of the integer b
        (numpy: b.view(np.float32))."""
        if not isinstance(b, _types.Integer):
            return None

        def codegen(context, builder, signature, args):
            low = builder.trunc(args[0], _ir.IntType(32)) if b.bitwidth > 32 else args[0]
            return builder.bitcast(low, _ir.FloatType())

        return _types.float32(b), codegen

    _jit_inline = numba.njit(inline="always", fastmath=False, error_model="numpy", cache=True)
    _log_mantissa_nb = _jit_inline(_log_mantissa)
    _sin_cos_nb = _jit_inline(_sin_cos)
    _radius_nb = _jit_inline(_radius)

    _splitmix64_nb = _jit_inline(mix64)  # of Weyl state z = key + (counter + 1)·GOLDEN

    @_jit_inline
    def _normal_pair_nb(h):
        """Scalar `normal_pairs` from the hash h, the same operations in the same order."""
        x = F32(np.int64(h >> SHIFT_32)) + HALF
        bits = _f32_bits(x)
        m = _bits_f32((bits & MANTISSA) | EXPONENT_ONE)
        e = (bits >> 23) - 127
        if m > SQRT2:
            m = m * HALF
            e = e + 1
        theta = (F32(np.int64((h >> SHIFT_8) & LOW_24)) + HALF) * TWO_M24
        theta = (theta - HALF) * HALF_PI
        s, c = _sin_cos_nb(theta)
        r = _radius_nb(F32(e), _log_mantissa_nb(m))
        if h & TWO_U:
            r = -r
        if h & ONE_U:
            return r * -s, r * c
        return r * c, r * s

    @numba.njit(fastmath=False, error_model="numpy", cache=True)
    def _normal_pairs_nb(key, first, z_cos, z_sin):
        """z_cos[c], z_sin[c] = normal_pairs(key, first + c) for every c, in one flat loop
        (the Weyl state is an induction variable, so the loop vectorises)."""
        state = key + np.uint64(first) * GOLDEN
        for c in range(z_cos.size):
            state = state + GOLDEN
            z_cos[c], z_sin[c] = _normal_pair_nb(_splitmix64_nb(state))
