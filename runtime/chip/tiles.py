"""Tile state: the devices of every unit cell, programmed from a tile program's weights.

A unit cell holds W = F·(G⁺ − G⁻) + s·(g − g_shared) in µS. Each layer maps weights to
µS with one scale chosen at compile time (`us_per_weight`: the layer's largest |w| ↔
F·g_prog_max). Programming goes through the PCM closed loop; capacitors start at
v_init, so g − g_shared is only the read transistors' mismatch until training moves it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogc.runtime.physics import capacitor, devices


@dataclass
class TileState:
    """Arrays of one tile, tile_rows x tile_cols, µS (conductances) or 1 (exponents)."""

    g_plus: np.ndarray
    g_minus: np.ndarray
    nu_plus: np.ndarray
    nu_minus: np.ndarray
    cap_diff: np.ndarray  # s·(g − g_shared), µS
    iterations: np.ndarray  # closed-loop iterations spent per cell (both devices)
    dv_up: np.ndarray  # per-cell capacitor step of one up pulse, V (fixed mismatch)
    dv_down: np.ndarray  # per-cell capacitor step of one down pulse, V


BYTES_PER_CELL = 7 * 8 + 4  # the TileState arrays: seven float64 and one int32 per cell


def new_tile(shape) -> TileState:
    zeros = lambda: np.zeros(shape, dtype=np.float64)  # noqa: E731
    return TileState(zeros(), zeros(), zeros(), zeros(), zeros(), np.zeros(shape, dtype=np.int32), zeros(), zeros())


def capacitor_offsets(shape, spec, rng: np.random.Generator) -> np.ndarray:
    """g − g_shared at V_C = v_init for each cell: read-transistor offset and gain mismatch
    of the cell against its column's shared reference cell (µS)."""
    cap = spec.capacitor
    if not cap.enabled or spec.chip.cell == "pcm2":
        return np.zeros(shape)
    gain, offset = capacitor.draw_read_mismatch(shape, cap, rng)
    shared_gain, shared_offset = capacitor.draw_read_mismatch((1, shape[1]), cap, rng)
    v = np.full(shape, cap.v_init)
    return capacitor.conductance(v, gain, offset, cap) - capacitor.conductance(v[:1], shared_gain, shared_offset, cap)


def program_block(state: TileState, rows: slice, cols: slice, target_us: np.ndarray, spec, rng: np.random.Generator) -> None:
    """Closed-loop program a block's PCM pairs to F·(G⁺ − G⁻) = target (µS)."""
    pcm, gain = spec.pcm, spec.cell.gain_f
    g_plus, it_plus = devices.program_closed_loop(np.maximum(target_us, 0) / gain, pcm, rng)
    g_minus, it_minus = devices.program_closed_loop(np.maximum(-target_us, 0) / gain, pcm, rng)
    stuck, dead = devices.fault_masks(g_plus.shape, pcm, rng)
    g_plus = devices.apply_faults(g_plus, stuck, dead, pcm)
    stuck, dead = devices.fault_masks(g_minus.shape, pcm, rng)
    g_minus = devices.apply_faults(g_minus, stuck, dead, pcm)
    state.g_plus[rows, cols] = g_plus
    state.g_minus[rows, cols] = g_minus
    state.iterations[rows, cols] = it_plus + it_minus
    if pcm.drift:
        state.nu_plus[rows, cols] = devices.drift_exponents(g_plus, pcm, rng)
        state.nu_minus[rows, cols] = devices.drift_exponents(g_minus, pcm, rng)
    state.cap_diff[rows, cols] = capacitor_offsets(target_us.shape, spec, rng)
    if spec.capacitor.enabled and spec.chip.cell != "pcm2":
        state.dv_up[rows, cols], state.dv_down[rows, cols] = capacitor.draw_step_sizes(target_us.shape, spec.capacitor, rng)


def drifted(state: TileState, rows: slice, cols: slice, t: float, pcm) -> tuple[np.ndarray, np.ndarray]:
    """(G⁺, G⁻) of a block's cells at time t after programming, µS."""
    g_plus = state.g_plus[rows, cols] * devices.drift_factor(state.nu_plus[rows, cols], t, pcm)
    g_minus = state.g_minus[rows, cols] * devices.drift_factor(state.nu_minus[rows, cols], t, pcm)
    return g_plus, g_minus


def effective_us(state: TileState, rows: slice, cols: slice, t: float, spec) -> np.ndarray:
    """W (µS) of a block's cells at time t after programming (drift, no read noise)."""
    g_plus, g_minus = drifted(state, rows, cols, t, spec.pcm)
    return spec.cell.gain_f * (g_plus - g_minus) + state.cap_diff[rows, cols]


def read_variance_us(state: TileState, rows: slice, cols: slice, t: float, spec) -> np.ndarray:
    """Per-cell variance (µS²) of one read of W: F²·((G⁺Q⁺)² + (G⁻Q⁻)²) at time t, G
    drifted and Q of the programmed conductance (`devices.read_noise_q`)."""
    pcm = spec.pcm
    g_plus, g_minus = drifted(state, rows, cols, t, pcm)
    sd_plus = g_plus * devices.read_noise_q(state.g_plus[rows, cols], t, pcm)
    sd_minus = g_minus * devices.read_noise_q(state.g_minus[rows, cols], t, pcm)
    return spec.cell.gain_f**2 * (sd_plus**2 + sd_minus**2)
