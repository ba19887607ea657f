"""DACs on the rows and ADCs on the columns, in normalised units.

Inputs are scaled per example by their largest magnitude (aihwkit's "noise
management"), so the DAC's full range ±dac_range is always used; outputs are in units
of w_max·dac_range, bounded by ±adc_bound, with additive Gaussian output noise.
"""

from __future__ import annotations

import numpy as np

# The smallest per-example scale: dac_range / scale must be finite (dac_range ≤ 1e9 <
# 2³⁰), so an example whose inputs are all below 2⁻⁹⁶ is scaled as if its largest were 2⁻⁹⁶.
MIN_SCALE = np.float32(2.0**-96)


def level_step(bound: float, bits: int) -> float:
    """The spacing bound/(2^(bits−1) − 1) of a converter's 2^bits − 1 symmetric levels."""
    return bound / max(2 ** (bits - 1) - 1, 1)


def quantize(x: np.ndarray, bound: float, bits: int) -> np.ndarray:
    """Round to the 2^bits − 1 levels k·bound/(2^(bits−1) − 1), |k| ≤ 2^(bits−1) − 1
    (symmetric, with 0 and ±bound), clipping outside [−bound, bound]."""
    step = np.asarray(level_step(bound, bits), dtype=x.dtype)
    out = np.divide(x, step)
    np.round(out, out=out)
    out *= step
    return np.clip(out, -bound, bound, out=out)


def dac(x: np.ndarray, periphery) -> tuple[np.ndarray, np.ndarray]:
    """(normalised, quantised input, per-example scale): x ≈ x_n · scale. x_n = x ·
    (dac_range / scale), quantised as rint(x_n · (1 / step)) · step: products, not
    divisions (the compiled twin's inner loop was bound by its two divisions).

    The numpy reference; `dac_kernels.dac` runs its numba twin `dac_kernels.dac_compiled` (same
    bits, tests/runtime/test_kernels.py) where that takes x.
    """
    scale = np.max(np.abs(x), axis=1, keepdims=True)
    scale = np.where(scale > 0, np.maximum(scale, MIN_SCALE), 1.0).astype(x.dtype)
    x_n = x * (x.dtype.type(periphery.dac_range) / scale)  # the row's gain, then one product per input
    if periphery.quantization:
        step = np.asarray(level_step(periphery.dac_range, periphery.dac_bits), dtype=x.dtype)
        x_n = np.clip(np.rint(x_n * (x.dtype.type(1) / step)) * step, -periphery.dac_range, periphery.dac_range)
    return x_n, scale / periphery.dac_range


def adc(y: np.ndarray, periphery, rng: np.random.Generator | None, read_variance: np.ndarray | None = None) -> np.ndarray:
    """Noise, the saturating bound, then quantisation (if switched on).

    `read_variance` is the devices' read-noise variance of each output (same units as
    y); it and the ADC's own output noise are independent Gaussians, so one draw with
    the summed variance stands for both.
    """
    sigma_out = periphery.output_noise if periphery.output_noise_enabled else 0.0
    if rng is not None and (read_variance is not None or sigma_out > 0):
        if read_variance is None:
            sd = np.float32(sigma_out)
        else:
            sd = np.sqrt(read_variance + np.float32(sigma_out**2))
        y = y + sd * rng.standard_normal(y.shape, dtype=np.float32)
    if periphery.quantization:
        return quantize(y, periphery.adc_bound, periphery.adc_bits)
    return y
