"""The devices of one layer's array: the one device store of inference and training.

A layer's array is K weight rows (plus the bias row when the bias is analog) by N
columns; the plan's blocks (and so its tiles) are windows onto it: block rows [r0, r1)
and cols [c0, c1) of the layer's store. The chip holds one store per layer (per copy of
a replicated layer), training one per trained layer, both programmed by `program_layer`.
One `LayerDevices` holds, per cell: the PCM pair (G⁺, G⁻ in µS, drift exponents,
fault codes), the 3T1C cell (capacitor voltage V_C, its own up/down step, its read
transistor's gain, and `cap_base` = its read offset minus the shared reference cell's
conductance), and per layer the polarity s. The cell's weight in µS is

    W = F·(G⁺ − G⁻) + s·(gain·dg/dV·V_C + cap_base).

At time t after programming the PCM conductances have drifted to G·(t/t0)^(−ν)
(`effective_us`, `read_variance_us` on a window). A trained program stores these arrays
as `device/<layer>/<field>` in arrays.npz and the polarity in the layer's `device`
entry, so `run` measures the chip as trained and `train` continues from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogc.runtime.format.spec import has_capacitor
from analogc.runtime.format.vocabulary import DEVICE_FIELDS as FIELDS
from analogc.runtime.format.vocabulary import FAULT_DEAD, FAULT_NONE, FAULT_STUCK_HIGH
from analogc.runtime.physics import capacitor, devices

# Memory per cell of a store: the stored fields and the closed loop's iteration counts.
BYTES_PER_CELL = sum(np.dtype(dtype).itemsize for dtype in FIELDS.values()) + np.dtype(np.int32).itemsize


@dataclass
class LayerDevices:
    g_plus: np.ndarray
    g_minus: np.ndarray
    nu_plus: np.ndarray
    nu_minus: np.ndarray
    faults_plus: np.ndarray
    faults_minus: np.ndarray
    v: np.ndarray
    dv_up: np.ndarray
    dv_down: np.ndarray
    read_gain: np.ndarray
    cap_base: np.ndarray
    sign: float = 1.0
    examples_since_transfer: int = 0
    pulses_since_transfer: int = 0
    # Closed-loop iterations per cell (both devices) of `program_layer`, for the cost
    # model's one-time programming counts; None for devices read from a program.
    iterations: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.g_plus.shape

    def capacitor_us(self, spec, window: tuple = (slice(None), slice(None))) -> np.ndarray:
        """s·(g(V_C) − g_shared) per cell of `window` (all cells by default), µS (0 for a
        2-PCM cell)."""
        rows, cols = window
        if not has_capacitor(spec):
            return np.zeros(self.v[rows, cols].shape)
        g = self.read_gain[rows, cols].astype(np.float64) * spec.capacitor.g_per_volt * self.v[rows, cols] + self.cap_base[rows, cols]
        return self.sign * g

    def weights_us(self, spec) -> np.ndarray:
        """W per cell in µS right after programming (no drift, no read noise)."""
        return spec.cell.gain_f * (self.g_plus - self.g_minus) + self.capacitor_us(spec)

    def apply_faults(self, spec) -> None:
        """Stuck devices sit at g_max, dead ones at 0, whatever was programmed."""
        for g, faults in ((self.g_plus, self.faults_plus), (self.g_minus, self.faults_minus)):
            g[faults == FAULT_STUCK_HIGH] = spec.pcm.g_max
            g[faults == FAULT_DEAD] = 0.0

    def to_arrays(self, layer: str) -> dict:
        return {f"device/{layer}/{name}": getattr(self, name) for name in FIELDS}

    @classmethod
    def from_arrays(cls, arrays: dict, layer: str, entry: dict) -> "LayerDevices":
        values = {name: np.array(arrays[f"device/{layer}/{name}"], dtype=dtype) for name, dtype in FIELDS.items()}
        device = entry.get("device", {})
        return cls(**values, sign=float(device.get("sign", 1.0)), examples_since_transfer=int(device.get("examples_since_transfer", 0)),
                   pulses_since_transfer=int(device.get("pulses_since_transfer", 0)))


def us_per_weight(spec, w_max: float) -> float:
    """µS per weight unit: the layer's range w_max maps to F·g_prog_max, the largest PCM
    pair difference. The one definition, for inference and training alike. Programs store
    w_max, not this factor: a sweep runs a compiled program on variants of its target
    (another g_prog_max or F), and a stored factor would then be stale."""
    return spec.cell.gain_f * spec.pcm.g_prog_max / w_max


def has_device_state(program, layer: str) -> bool:
    return all(f"device/{layer}/{name}" in program.arrays for name in FIELDS)


def program_layer(weights_us: np.ndarray, regions: list, spec, rng: np.random.Generator) -> LayerDevices:
    """A fresh layer: PCM pairs closed-loop programmed to F·(G⁺ − G⁻) = weights (µS),
    faults and drift exponents drawn, capacitors at v_init with their mismatch; the
    shared reference cell is one per tile column (one per block column in `regions`,
    a list of (row slice, col slice))."""
    pcm, gain, shape = spec.pcm, spec.cell.gain_f, weights_us.shape
    g_plus, it_plus = devices.program_closed_loop(np.maximum(weights_us, 0) / gain, pcm, rng)
    g_minus, it_minus = devices.program_closed_loop(np.maximum(-weights_us, 0) / gain, pcm, rng)
    faults = [draw_faults(shape, pcm, rng) for _ in range(2)]
    zeros32 = lambda: np.zeros(shape, dtype=np.float32)  # noqa: E731
    state = LayerDevices(
        g_plus, g_minus, zeros32(), zeros32(), faults[0], faults[1],
        np.full(shape, spec.capacitor.v_init, dtype=np.float32), zeros32(), zeros32(), np.ones(shape, dtype=np.float32), zeros32(),
    )
    state.iterations = it_plus + it_minus
    state.apply_faults(spec)
    redraw_drift(state, np.ones(shape, dtype=bool), np.ones(shape, dtype=bool), spec, rng)
    if has_capacitor(spec):
        cap = spec.capacitor
        up, down = capacitor.draw_step_sizes(shape, cap, rng)
        state.dv_up[...], state.dv_down[...] = up, down
        read_gain, read_offset = capacitor.draw_read_mismatch(shape, cap, rng)
        state.read_gain[...] = read_gain
        for rows, cols in regions:
            width = cols.stop - cols.start
            shared_gain, shared_offset = capacitor.draw_read_mismatch((1, width), cap, rng)
            shared = capacitor.conductance(np.full((1, width), cap.v_init), shared_gain, shared_offset, cap)
            state.cap_base[rows, cols] = read_offset[rows, cols] - shared
    return state


def draw_faults(shape, pcm, rng: np.random.Generator) -> np.ndarray:
    stuck, dead = devices.fault_masks(shape, pcm, rng)
    return np.where(stuck, FAULT_STUCK_HIGH, np.where(dead, FAULT_DEAD, FAULT_NONE)).astype(np.int8)


def redraw_drift(state: LayerDevices, plus: np.ndarray, minus: np.ndarray, spec, rng: np.random.Generator) -> None:
    """Fresh drift exponents for the devices just programmed (masks `plus`, `minus`)."""
    if not spec.pcm.drift:
        return
    for g, nu, mask in ((state.g_plus, state.nu_plus, plus), (state.g_minus, state.nu_minus, minus)):
        idx = np.nonzero(mask)
        if len(idx[0]):
            nu[idx] = devices.drift_exponents(g[idx], spec.pcm, rng)


def drifted(state: LayerDevices, window: tuple, t: float, pcm) -> tuple[np.ndarray, np.ndarray]:
    """(G⁺, G⁻) of a window's cells at time t after programming, µS (float64, as ν is
    widened before the power)."""
    (rows, cols) = window
    if not pcm.drift or t <= pcm.drift_t0:  # a factor of 1 (`devices.drift_factor`): G as programmed
        return state.g_plus[rows, cols].astype(np.float64), state.g_minus[rows, cols].astype(np.float64)
    g_plus = state.g_plus[rows, cols] * devices.drift_factor(state.nu_plus[rows, cols].astype(np.float64), t, pcm)
    g_minus = state.g_minus[rows, cols] * devices.drift_factor(state.nu_minus[rows, cols].astype(np.float64), t, pcm)
    return g_plus, g_minus


def effective_us(state: LayerDevices, window: tuple, t: float, spec) -> np.ndarray:
    """W (µS) of a window's cells at time t after programming (drift, no read noise):
    F·(G⁺(t) − G⁻(t)) + s·(g(V_C) − g_shared)."""
    g_plus, g_minus = drifted(state, window, t, spec.pcm)
    return spec.cell.gain_f * (g_plus - g_minus) + state.capacitor_us(spec, window)


def read_variance_us(state: LayerDevices, window: tuple, t: float, spec) -> np.ndarray:
    """Per-cell variance (µS²) of one read of W: F²·((G⁺Q⁺)² + (G⁻Q⁻)²) at time t, G
    drifted and Q of the programmed conductance (`devices.read_noise_q`)."""
    pcm = spec.pcm
    g_plus, g_minus = drifted(state, window, t, pcm)
    (rows, cols) = window
    sd_plus = g_plus * devices.read_noise_q(state.g_plus[rows, cols], t, pcm)
    sd_minus = g_minus * devices.read_noise_q(state.g_minus[rows, cols], t, pcm)
    return spec.cell.gain_f**2 * (sd_plus**2 + sd_minus**2)
