"""3T1C capacitor cells: voltage state, pulsed updates, leakage and read conductance.

Each cell stores a voltage V_C (V) on a capacitor; a PMOS adds charge ("up" pulse),
an NMOS removes it ("down" pulse), each with the cell's own step size (threshold
mismatch: dv_up, dv_down spread by `step_mismatch`, fixed per cell), clipped at the
rails. V_C leaks toward v_leak_target with time constant leak_tau (in examples). The
read transistor gives g(V_C) = gain·g_per_volt·V_C + offset (µS), gain and offset
fixed per cell (read-transistor mismatch). Numbers: the spec's [capacitor] table
(Ambrogio et al. 2018 give the scheme, not these values: see the spec's comments).
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.physics import bfloat16


def draw_step_sizes(shape, cap, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell (dv_up, dv_down) in V (float32): lognormal around the nominal steps with
    relative spread `step_mismatch` (σ of ln), so steps stay positive and each cell is
    asymmetric in its own way. Each step is rounded to 8 significant bits (`bfloat16`:
    0.4% at worst, against the 30% spread), so training's update streams a cell's two
    steps as one 32-bit word."""
    sigma = cap.step_mismatch
    up = cap.dv_up * np.exp(sigma * rng.standard_normal(shape) - sigma**2 / 2)
    down = cap.dv_down * np.exp(sigma * rng.standard_normal(shape) - sigma**2 / 2)
    return bfloat16.round_to_grid(up), bfloat16.round_to_grid(down)


def draw_read_mismatch(shape, cap, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell read-transistor (gain, offset µS): g(V) = gain·g_per_volt·V + offset."""
    gain = 1.0 + cap.read_gain_sigma * rng.standard_normal(shape)
    offset = cap.read_offset_sigma * rng.standard_normal(shape)
    return gain, offset


def conductance(v: np.ndarray, gain: np.ndarray, offset: np.ndarray, cap) -> np.ndarray:
    """Read conductance g(V_C) in µS of cells at voltage v (linear read transistor)."""
    return gain * cap.g_per_volt * v + offset


def apply_pulses(v: np.ndarray, n_up: np.ndarray, n_down: np.ndarray, dv_up: np.ndarray, dv_down: np.ndarray, cap) -> np.ndarray:
    """V_C after n_up up-pulses and n_down down-pulses, clipped at the rails [v_min, v_max]."""
    return np.clip(v + n_up * dv_up - n_down * dv_down, cap.v_min, cap.v_max)


def leak(v: np.ndarray, examples: float, cap) -> np.ndarray:
    """V_C after `examples` training examples of leakage toward v_leak_target (τ = leak_tau)."""
    if cap.leak_tau <= 0:
        return v
    decay = np.exp(-examples / cap.leak_tau)
    return cap.v_leak_target + (v - cap.v_leak_target) * decay


def pulse_counts(delta_w: np.ndarray, dw_min: float, max_pulses: int, rng: np.random.Generator) -> np.ndarray:
    """Signed pulse counts for a desired change delta_w: stochastic rounding of
    delta_w / dw_min (unbiased: E[count]·dw_min = delta_w), capped at ±max_pulses."""
    scaled = delta_w / dw_min
    base = np.floor(scaled)
    counts = base + (rng.random(scaled.shape) < (scaled - base))
    return np.clip(counts, -max_pulses, max_pulses).astype(np.int32)
