"""One layer during in-situ training: tile reads both ways, pulsed updates, transfer.

The layer keeps the weight its tiles present (`w`, float32, weight units, no read noise)
in step with its devices, so a read is one matrix-vector product per block:
- forward: x (array rows: inputs, then the constant 1 of an analog bias) through the
  DAC (scaled per example by its largest magnitude, quantised), every block read, each
  block's outputs through its own ADC (read noise, output noise, bound, quantisation;
  `periphery.adc`), partial sums added digitally;
- backward: δ on the columns through the DAC, the same blocks read in the transpose
  direction, ADCs on the rows;
- update: pulses on the capacitor pair (`update_kernel`), or, in a 2-PCM cell, partial
  SET pulses on G⁺ (positive changes) or G⁻ (negative);
- transfer (every transfer_interval examples): read W, program the PCM pair toward it
  by closed loop starting from its present state (the paper's offset and RESET
  rules, docs/training.md), reset the capacitors to v_init, flip the polarity; a pair whose
  device would pass refresh_threshold·g_max is RESET and reprogrammed (refresh).
Read noise is output-referred (variance Σ x_i²σ_i², one extra product per read); the
devices do not drift during training (an example takes microseconds of chip time,
t0 is 20 s).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from analogc.runtime.format.spec import has_capacitor
from analogc.runtime.format.vocabulary import DEVICE_FIELDS, FAULT_NONE
from analogc.runtime.physics import bfloat16, devices, periphery
from analogc.runtime.physics.layer_devices import LayerDevices, read_variance_us, redraw_drift, us_per_weight
from analogc.runtime.training import read_kernel, transfer_kernel, update_kernel


class TrainableLayer:
    def __init__(self, entry: dict, blocks: list, state: LayerDevices, spec, w_max: float, digital_bias: np.ndarray | None, compiled: bool | None = None):
        self.name, self.entry, self.spec, self.state = entry["name"], entry, spec, state
        self.w_max = float(w_max)
        self.us = us_per_weight(spec, self.w_max)  # µS per weight unit
        self.blocks = sorted((b["rows"][0], b["rows"][1], b["cols"][0], b["cols"][1]) for b in blocks)
        self.block_array = np.array(self.blocks, dtype=np.int64).reshape(-1, 4)
        # Column segments of the plan's blocks: pulses are tallied per row and segment,
        # so the cost model gets each block's (and tile's) exact pulse count.
        self.col_cuts = np.array(sorted({c for b in self.blocks for c in (b[2], b[3])}), dtype=np.int64)
        self.pulse_tally = np.zeros((state.shape[0], len(self.col_cuts) - 1), dtype=np.int64)
        self.compiled = read_kernel.HAVE_NUMBA if compiled is None else compiled
        self.read_settings = read_kernel.read_settings(spec, self.w_max)
        self.digital_bias = digital_bias
        self.analog_bias = entry["bias"] == "analog"
        self.capacitor = has_capacitor(spec)
        cap = spec.capacitor
        self.dv_nominal = 0.5 * (cap.dv_up + cap.dv_down)
        self.pulses = 0
        self.pcm_iterations = 0
        self.on_program = None  # called with the per-cell iteration counts of each programming (cost model)
        self.refreshed = 0
        self.transfers = 0
        self.sync()

    # ----------------------------------------------------------------- device -> weights
    def sync(self) -> None:
        """Recompute the presented weights, the read-noise variance and the update gain
        from the devices (after programming: construction, transfer, refresh)."""
        spec, state = self.spec, self.state
        self.w = np.ascontiguousarray(state.weights_us(spec) / self.us, dtype=np.float32)
        self.var = self.var_words = None
        if spec.pcm.read_noise:  # the chip's rule, at t0: no drift during training
            self.var = self.read_variance((slice(None), slice(None)))
            self.var_words = bfloat16.high_words(self.var)
        # The compiled loop's update reads both steps of a cell as one word when they
        # are on the bfloat16 grid (steps drawn by this version are; a program's may not be).
        self.steps = None
        if self.capacitor:
            packed = bfloat16.pack_pairs(state.dv_up, state.dv_down)
            self.steps = None if packed is None else packed.reshape(-1)
        self.sync_gain()

    def read_variance(self, window: tuple, state: LayerDevices | None = None) -> np.ndarray:
        """The read-noise variance (weight units², float32) of a window's cells, at t0, on
        the bfloat16 grid: the compiled loop streams it as 16-bit words (`var_words`)."""
        state = self.state if state is None else state
        return bfloat16.round_to_grid(read_variance_us(state, window, self.spec.pcm.drift_t0, self.spec) / self.us**2)

    def sync_gain(self) -> None:
        """wgain: what one unit of V_C adds to the presented weight (it follows s)."""
        if self.capacitor:
            state = self.state
            self.wgain = np.ascontiguousarray(state.sign * state.read_gain * np.float32(self.spec.capacitor.g_per_volt / self.us), dtype=np.float32)

    def weights(self) -> np.ndarray:
        """The weights (array rows x N, weight units) the chip holds, exactly."""
        return (self.state.weights_us(self.spec) / self.us).astype(np.float32)

    # ------------------------------------------------------------------------- reads
    def forward(self, x: np.ndarray, key: int) -> np.ndarray:
        """x·W through DAC, blocks and ADCs; x has the array's rows (bias input included).
        `key` fixes this read's noise."""
        if self.compiled:
            return read_kernel.read_layer(x, self.w, self.var, self.block_array, False, self.read_settings, key)
        rng = np.random.default_rng(key)
        x_n, scale = self.dac(x)
        out = np.zeros(self.w.shape[1], dtype=np.float32)
        x2 = np.square(x_n) if self.var is not None else None
        for r0, r1, c0, c1 in self.blocks:
            y = x_n[r0:r1] @ self.w[r0:r1, c0:c1]
            var = x2[r0:r1] @ self.var[r0:r1, c0:c1] if x2 is not None else None
            out[c0:c1] += self.adc(y, var, rng)
        return out * scale

    def backward(self, delta: np.ndarray, key: int) -> np.ndarray:
        """δ·Wᵀ: δ drives the columns, the rows are read (the transpose direction)."""
        if self.compiled:
            return read_kernel.read_layer(delta, self.w, self.var, self.block_array, True, self.read_settings, key)
        rng = np.random.default_rng(key)
        d_n, scale = self.dac(delta)
        out = np.zeros(self.w.shape[0], dtype=np.float32)
        d2 = np.square(d_n) if self.var is not None else None
        for r0, r1, c0, c1 in self.blocks:
            y = self.w[r0:r1, c0:c1] @ d_n[c0:c1]
            var = self.var[r0:r1, c0:c1] @ d2[c0:c1] if d2 is not None else None
            out[r0:r1] += self.adc(y, var, rng)
        return out * scale

    def dac(self, x: np.ndarray) -> tuple[np.ndarray, np.float32]:
        p = self.spec.periphery
        if self.spec.ideal:
            return x.astype(np.float32, copy=False), np.float32(1.0)
        peak = np.float32(np.max(np.abs(x))) if x.size else np.float32(0)
        peak = peak if peak > 0 else np.float32(1.0)
        x_n = x * np.float32(p.dac_range / peak)
        if p.quantization:
            x_n = periphery.quantize(x_n.astype(np.float32), p.dac_range, p.dac_bits)
        return x_n.astype(np.float32, copy=False), np.float32(peak / p.dac_range)

    def adc(self, y: np.ndarray, var, rng: np.random.Generator) -> np.ndarray:
        """One block's outputs through its ADC, in units of w_max, back to weight units."""
        if self.spec.ideal:
            return y
        inv = np.float32(1.0 / self.w_max)
        var_n = var * (inv * inv) if var is not None else None
        return periphery.adc(y * inv, self.spec.periphery, rng, var_n) * np.float32(self.w_max)

    # ------------------------------------------------------------------------ update
    def update(self, x: np.ndarray, delta: np.ndarray, lr: float, key: int) -> None:
        """ΔW = −η·xᵀδ as pulses (`key` fixes the stochastic rounding); the digital bias
        (if any) is updated in float."""
        if self.digital_bias is not None:
            self.digital_bias -= np.float32(lr) * delta
        if self.capacitor:
            cap = self.spec.capacitor
            coef = -lr * self.us * self.state.sign / (cap.g_per_volt * self.dv_nominal)
            fired = update_kernel.update(
                self.w, self.state.v, self.wgain, self.state.dv_up, self.state.dv_down,
                x, delta, coef, cap.max_pulses, cap.v_min, cap.v_max, key, self.col_cuts, self.pulse_tally, compiled=self.compiled,
            )
            self.pulses += fired
            self.state.pulses_since_transfer += fired
        else:
            self.update_pcm(x, delta, lr, np.random.default_rng(key))
        self.state.examples_since_transfer += 1

    def update_pcm(self, x: np.ndarray, delta: np.ndarray, lr: float, rng: np.random.Generator) -> None:
        """2-PCM cell (Burr et al. 2015): partial SETs only, G⁺ for increases, G⁻ for
        decreases; each pulse adds pcm_update_step·(1 − G/g_max) with cycle noise."""
        spec, state = self.spec, self.state
        step = spec.training.pcm_update_step
        if step <= 0:
            return
        rows = np.nonzero(x)[0]
        wanted = (-lr * self.us / (spec.cell.gain_f * step)) * np.outer(x[rows], delta)
        counts = np.floor(wanted + rng.random(wanted.shape)).astype(np.int64)
        counts = np.clip(counts, -spec.capacitor.max_pulses, spec.capacitor.max_pulses)
        r_idx, c_idx = np.nonzero(counts)
        if not len(r_idx):
            return
        n = counts[r_idx, c_idx]
        i, j = rows[r_idx], c_idx
        self.pulses += int(np.abs(n).sum())
        segment = np.searchsorted(self.col_cuts, j, side="right") - 1
        np.add.at(self.pulse_tally, (i, segment), np.abs(n))
        for g, faults, sel in ((state.g_plus, state.faults_plus, n > 0), (state.g_minus, state.faults_minus, n < 0)):
            ii, jj, k = i[sel], j[sel], np.abs(n[sel])
            ok = faults[ii, jj] == FAULT_NONE
            ii, jj, k = ii[ok], jj[ok], k[ok]
            g0 = g[ii, jj]
            response = np.clip(1.0 - g0 / spec.pcm.g_max, 0.0, 1.0)
            noise = 1.0 + spec.pcm.set_step_noise * rng.standard_normal(len(ii)) if spec.pcm.programming_noise else 1.0
            g[ii, jj] = np.clip(g0 + k * step * response * np.clip(noise, 0.0, None), 0.0, spec.pcm.g_max)
        self.w[i, j] = (spec.cell.gain_f * (state.g_plus[i, j] - state.g_minus[i, j]) / self.us).astype(np.float32)

    def block_pulses(self, block: dict) -> int:
        """Pulses fired so far in one block of the plan (rows and columns of the array)."""
        (r0, r1), (c0, c1) = block["rows"], block["cols"]
        s0, s1 = np.searchsorted(self.col_cuts, [c0, c1])
        return int(self.pulse_tally[r0:r1, s0:s1].sum())

    def leak(self, examples: int) -> None:
        """Capacitors relax toward v_leak_target over `examples` examples."""
        cap = self.spec.capacitor
        if not self.capacitor or cap.leak_tau <= 0 or examples <= 0:
            return
        decay = np.float32(np.exp(-examples / cap.leak_tau))
        v_new = np.float32(cap.v_leak_target) + (self.state.v - np.float32(cap.v_leak_target)) * decay
        self.w += self.wgain * (v_new - self.state.v)
        self.state.v[...] = v_new

    # ---------------------------------------------------------------------- transfer
    def transfer_due(self) -> bool:
        """Adaptive transfer (training.transfer_pulses > 0): due once the layer's cells
        have taken that many pulses each on average since its last transfer. Pulses,
        not examples, are what fill a capacitor and, through each cell's up/down
        mismatch, bias it; layers and data sets differ several-fold in pulses per example."""
        per_cell = self.spec.training.transfer_pulses
        return self.capacitor and per_cell > 0 and self.state.pulses_since_transfer >= per_cell * self.w.size

    def transfer(self, rng: np.random.Generator, key: int | None = None) -> None:
        """Move the capacitor's share into the PCM pair; reset capacitors; flip s. With a
        `key` (and numba) in one compiled pass with counter-keyed draws (`transfer_kernel`,
        the same model), else here in numpy with `rng`'s."""
        if key is not None and self.compiled and transfer_kernel.HAVE_NUMBA:
            self.transfer_compiled(key)
            return
        spec, state, pcm, gain = self.spec, self.state, self.spec.pcm, self.spec.cell.gain_f
        if spec.training.transfer_read == "weight":
            g_plus = devices.read_with_noise(state.g_plus, pcm.drift_t0, pcm, rng)
            g_minus = devices.read_with_noise(state.g_minus, pcm.drift_t0, pcm, rng)
        else:  # the PCM pair's own verify reads are part of its closed loop (programming error)
            g_plus, g_minus = state.g_plus, state.g_minus
        w_read = gain * (g_plus - g_minus) + state.capacitor_us(spec)
        new_sign = -state.sign if spec.training.polarity_inversion else state.sign
        cap = spec.capacitor
        after_reset = new_sign * (state.read_gain.astype(np.float64) * cap.g_per_volt * cap.v_init + state.cap_base)
        wanted = w_read - after_reset  # what the PCM pair must hold
        full, held = wanted, None
        deadband = spec.training.transfer_deadband
        if deadband > 0:
            # A change smaller than the deadband is not worth a programming error of σ(g):
            # the pair keeps its devices (and, with "keep", its whole share goes back below).
            held = np.abs(wanted - gain * (g_plus - g_minus)) < deadband
            wanted = np.where(held, gain * (state.g_plus - state.g_minus), wanted)
        theta = spec.training.transfer_threshold
        if theta > 0:
            # Stochastic transfer: a pair whose change c is under θ is left alone, or, with
            # probability |c|/θ, moved by θ·sign(c): unbiased, and most pairs keep their
            # devices (no fresh programming error) at each transfer.
            change = wanted - gain * (g_plus - g_minus)
            small = np.abs(change) < theta
            fire = rng.random(change.shape) < np.abs(change) / theta
            keep = gain * (state.g_plus - state.g_minus)
            stepped = gain * (g_plus - g_minus) + np.sign(change) * theta
            wanted = np.where(small, np.where(fire, stepped, keep), wanted)
        offset = spec.training.transfer_offset
        target = wanted - offset
        reset_both = (wanted > 0) & (wanted < offset)
        if held is not None:  # held pairs are not programmed at all, offset rule included
            target[held], reset_both[held] = wanted[held], False
        target[reset_both] = 0.0
        before = state.g_plus.copy(), state.g_minus.copy()
        self.program_pair(target / gain, reset_both, rng)
        state.v[...] = cap.v_init
        state.sign = new_sign
        residual = spec.training.transfer_residual
        if residual != "drop":
            unmoved = (state.g_plus == before[0]) & (state.g_minus == before[1])
            kept = wanted if held is None else np.where(held, full, wanted)  # θ's draws stay as drawn (unbiased)
            missed = np.where(unmoved, kept - gain * (state.g_plus - state.g_minus), 0.0)
            if residual == "verify":
                # One read of the programmed pairs (1/f noise and all): what their
                # programming missed goes into the capacitor too, so the weight keeps the
                # read's error instead of the programming's.
                read_plus = devices.read_with_noise(state.g_plus, pcm.drift_t0, pcm, rng)
                read_minus = devices.read_with_noise(state.g_minus, pcm.drift_t0, pcm, rng)
                missed = np.where(unmoved, missed, kept - gain * (read_plus - read_minus))
                if self.on_program is not None:  # the cost model: one more verify read per device
                    self.on_program(2 * (~unmoved).astype(np.int64))  # (counted as an iteration: its pulse slot is idle)
            self.write_back(missed, rng)
        state.examples_since_transfer = 0
        state.pulses_since_transfer = 0
        self.transfers += 1
        self.sync()

    def transfer_compiled(self, key: int) -> None:
        """The compiled transfer. It writes the new weights itself; of what `sync` does,
        only the read variance of the pairs it programmed and the gain (s flipped) are
        left: the other pairs' devices, and so their variance, did not change."""
        refreshed, pulses, iterations, moved = transfer_kernel.transfer(
            self.state, self.spec, key, self.col_cuts, self.pulse_tally, self.us, self.w)
        self.refreshed += refreshed
        self.pulses += pulses
        self.pcm_iterations += int(iterations.sum())
        if self.on_program is not None:  # the cost model, as program_pair and the verify read report it
            self.on_program(iterations)
            if self.spec.training.transfer_residual == "verify":
                self.on_program(2 * moved.astype(np.int64))
        self.state.examples_since_transfer = 0
        self.state.pulses_since_transfer = 0
        self.transfers += 1
        if self.var is not None:  # as one row of flat views: a 1-D gather is cheaper than a 2-D one
            cells = np.flatnonzero(moved)
            flat = dataclasses.replace(self.state, **{name: getattr(self.state, name).reshape(1, -1) for name in DEVICE_FIELDS})
            self.var.reshape(-1)[cells] = variance = self.read_variance((0, cells), flat)
            self.var_words.reshape(-1)[cells] = bfloat16.high_words(variance)
        self.sync_gain()

    def write_back(self, residual_us: np.ndarray, rng: np.random.Generator) -> None:
        """Pulse the residual (weight µS) that the PCM pair did not take back into the freshly
        reset capacitors: pairs whose change was within the closed loop's tolerance keep
        their devices, and without this their share would be lost at every transfer (a
        dead zone for slowly moving weights). The periphery knows only the nominal step,
        so the count is the residual over it, stochastically rounded; each cell then steps
        by its own up or down size, under the new polarity."""
        cap, state = self.spec.capacitor, self.state
        per_pulse = state.sign * cap.g_per_volt * self.dv_nominal  # weight µS of one nominal 'up' pulse
        wanted = residual_us / per_pulse
        n = np.floor(wanted + rng.random(wanted.shape)).astype(np.int64)
        n[residual_us == 0.0] = 0
        if not n.any():
            return
        step = np.where(n > 0, state.dv_up, state.dv_down).astype(np.float64)
        state.v[...] = np.clip(state.v + n * step, cap.v_min, cap.v_max).astype(state.v.dtype)
        fired = np.abs(n)
        self.pulses += int(fired.sum())
        for s, (c0, c1) in enumerate(zip(self.col_cuts[:-1], self.col_cuts[1:])):
            self.pulse_tally[:, s] += fired[:, c0:c1].sum(axis=1)

    def refresh(self, rng: np.random.Generator) -> None:
        """Pairs with a device beyond refresh_threshold·g_max: RESET both, reprogram the
        difference (2-PCM cells, whose devices only ever go up)."""
        state = self.state
        diff = state.g_plus - state.g_minus
        self.program_pair(diff, np.zeros(diff.shape, dtype=bool), rng, only_refresh=True)
        self.sync()

    def program_pair(self, diff: np.ndarray, reset_both: np.ndarray, rng: np.random.Generator, only_refresh: bool = False) -> None:
        """Make G⁺ − G⁻ = diff (µS) with SETs on top of the present state: raise G⁺ where
        the difference must grow, G⁻ where it must shrink; pairs that would pass the
        refresh threshold, and `reset_both` pairs, start again from RESET."""
        spec, state, pcm = self.spec, self.state, self.spec.pcm
        limit = spec.training.refresh_threshold * pcm.g_max
        need = diff - (state.g_plus - state.g_minus)
        plus_target = np.where(need > 0, state.g_plus + need, state.g_plus)
        minus_target = np.where(need < 0, state.g_minus - need, state.g_minus)
        refresh = reset_both | (np.maximum(plus_target, minus_target) > min(limit, pcm.g_prog_max))
        if only_refresh:
            refresh = np.maximum(state.g_plus, state.g_minus) > limit
            plus_target, minus_target = state.g_plus.copy(), state.g_minus.copy()
        self.refreshed += int(refresh.sum())
        start_plus = np.where(refresh, pcm.reset_g, state.g_plus)
        start_minus = np.where(refresh, pcm.reset_g, state.g_minus)
        plus_target = np.where(refresh, np.maximum(diff, 0.0), plus_target)
        minus_target = np.where(refresh, np.maximum(-diff, 0.0), minus_target)
        g_plus, it_plus = devices.program_from(start_plus, plus_target, pcm, rng)
        g_minus, it_minus = devices.program_from(start_minus, minus_target, pcm, rng)
        self.pcm_iterations += int(it_plus.sum() + it_minus.sum())
        if self.on_program is not None:
            self.on_program(it_plus + it_minus)
        moved_plus, moved_minus = g_plus != state.g_plus, g_minus != state.g_minus
        state.g_plus[...], state.g_minus[...] = g_plus, g_minus
        state.apply_faults(spec)
        redraw_drift(state, moved_plus, moved_minus, spec, rng)


def transfer_schedule(spec) -> dict:
    """When transfers (or, in 2-PCM cells, refreshes) run, named by the rule in use:
    {"rule": "pulses", "pulses_per_cell"}, {"rule": "interval", "examples"}, or
    {"rule": "never"}."""
    t = spec.training
    if spec.chip.cell != "pcm2" and t.transfer_pulses > 0:
        return {"rule": "pulses", "pulses_per_cell": t.transfer_pulses}
    if t.transfer_interval:
        return {"rule": "interval", "examples": t.transfer_interval}
    return {"rule": "never"}
