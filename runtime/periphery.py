"""DACs on the rows and ADCs on the columns, in normalised units.

Inputs are scaled per example by their largest magnitude (aihwkit's "noise
management"), so the DAC's full range ±dac_range is always used; outputs are in units
of w_max·dac_range, bounded by ±adc_bound, with additive Gaussian output noise.
"""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, bound: float, bits: int) -> np.ndarray:
    """Round to the 2^bits − 1 levels k·bound/(2^(bits−1) − 1), |k| ≤ 2^(bits−1) − 1
    (symmetric, with 0 and ±bound), clipping outside [−bound, bound]."""
    step = bound / max(2 ** (bits - 1) - 1, 1)
    return np.clip(np.round(x / step) * step, -bound, bound).astype(x.dtype, copy=False)


def dac(x: np.ndarray, periphery) -> tuple[np.ndarray, np.ndarray]:
    """(normalised, quantised input, per-example scale): x ≈ x_n · scale."""
    scale = np.max(np.abs(x), axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0).astype(x.dtype)
    x_n = x / scale * periphery.dac_range
    if periphery.quantization:
        x_n = quantize(x_n, periphery.dac_range, periphery.dac_bits)
    return x_n, scale / periphery.dac_range


def adc(y: np.ndarray, periphery, rng: np.random.Generator | None) -> np.ndarray:
    """Output noise, the saturating bound, then quantisation (if switched on)."""
    if periphery.output_noise_enabled and periphery.output_noise > 0 and rng is not None:
        y = y + (rng.standard_normal(y.shape) * periphery.output_noise).astype(y.dtype)
    if periphery.quantization:
        return quantize(y, periphery.adc_bound, periphery.adc_bits)
    return y
