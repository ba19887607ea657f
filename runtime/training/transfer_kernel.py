"""A capacitor → PCM transfer of one layer in one compiled call, cell by cell.

`TrainableLayer.transfer` does a transfer as some forty numpy passes over the layer's
arrays (float64, a fresh array each) with a Generator; for Fashion-MNIST's first layer
(785 x 250) that was ~50 ms a transfer, a third of training's time. A transfer is cell by
cell: what one pair's devices do depends only on that cell's state and its own random
numbers. So this kernel visits each cell and does the whole model there, the same model
in the same order (`analog_layer` and `devices` are the reference); a branch-free first
pass finishes the cells whose devices stay, a second the rest (`_transfer_body`):
- read: the capacitor pair's share (transfer_read "capacitor"), or the whole weight,
  each PCM device with its 1/f read noise ("weight");
- target: the new polarity's reset value taken off; the deadband (held pairs keep their
  devices), the stochastic threshold, the offset rule;
- programming (`devices.program_from`): RESET and start again (a pair past the refresh
  limit, or an offset reset) or go on from the present state, the read-verify-pulse loop
  with partial SETs that saturate and spread cycle to cycle, the programming relaxation
  N(0, σ(g_T)); then faults (stuck, dead) and fresh drift exponents for moved devices;
- the capacitor reset to v_init, and the residual ("keep"/"verify") pulsed back by
  stochastic rounding of the nominal step, each cell stepping by its own up/down size.

Random numbers are counter-keyed (`counter_rng`'s splitmix64, float32 Box-Muller normals as
the reads use): cell c's draws come from the key mix(key + (c + 1)·golden), each draw
from a fixed slot of it, so a transfer is fixed by its key (the trainer keys it by run,
layer and transfer number) and a resumed run transfers as an uninterrupted one.
The numpy path (no numba, or a layer not compiled) draws from the trainer's Generator.
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.format import vocabulary
from analogc.runtime.format.vocabulary import FAULT_DEAD, FAULT_STUCK_HIGH
from analogc.runtime.physics import counter_rng
from analogc.runtime.physics.cores import CHOICE
from analogc.runtime.physics.numba_cache import drop_stale_builds, renamed

HAVE_NUMBA = counter_rng.HAVE_NUMBA
RESIDUAL_MODES = {"drop": 0, "keep": 1, "verify": 2}
# Layers of fewer cells transfer on one core (~0.1 ms of work: less than waking threads).
PARALLEL_CELLS = 16384
# Per-cell draw slots: fixed ones, then the closed loops' iterations and relaxation (G⁺, then G⁻).
SLOT_READ, SLOT_THRESHOLD, SLOT_DRIFT, SLOT_VERIFY, SLOT_WRITE_BACK, SLOT_LOOP = 1, 2, 3, 4, 5, 8


def transfer_params(spec) -> np.ndarray:
    """The spec's constants a transfer uses, float64, in the kernel's order."""
    pcm, cap, t = spec.pcm, spec.capacitor, spec.training
    read_q_time = np.sqrt(np.log((pcm.drift_t0 + pcm.t_read) / (2 * pcm.t_read)))  # reads at t0 (`devices.read_noise_q`)
    return np.array([
        spec.cell.gain_f, cap.g_per_volt, cap.v_init, cap.v_min, cap.v_max, 0.5 * (cap.dv_up + cap.dv_down),
        t.transfer_deadband, t.transfer_threshold, t.transfer_offset, t.refresh_threshold * pcm.g_max,
        pcm.g_max, pcm.g_prog_max, pcm.reset_g, pcm.prog_tolerance, pcm.set_step, pcm.set_step_noise,
        pcm.prog_noise_c0, pcm.prog_noise_c1, pcm.prog_noise_c2,
        pcm.drift_nu_mean_a, pcm.drift_nu_mean_b, pcm.drift_nu_mean_lo, pcm.drift_nu_mean_hi,
        pcm.drift_nu_std_a, pcm.drift_nu_std_b, pcm.drift_nu_std_lo, pcm.drift_nu_std_hi,
        pcm.read_noise_q0, pcm.read_noise_qexp, pcm.read_noise_qmax, read_q_time if pcm.read_noise else 0.0,
    ], dtype=np.float64)


def transfer_flags(spec) -> np.ndarray:
    """The spec's switches a transfer uses, int64, in the kernel's order."""
    pcm, t = spec.pcm, spec.training
    return np.array([
        t.transfer_read == "weight", t.polarity_inversion, RESIDUAL_MODES[t.transfer_residual],
        pcm.programming_noise, pcm.drift, pcm.prog_max_iterations,
    ], dtype=np.int64)


if HAVE_NUMBA:
    import numba

    drop_stale_builds(__file__, [counter_rng, vocabulary])  # their code and constants are compiled in
    _jit = numba.njit(fastmath=False, error_model="numpy", cache=True)
    # Inlined (numba IR): the first pass's cell loop calls them and must stay call-free.
    _jit_inline = numba.njit(fastmath=False, error_model="numpy", cache=True, inline="always")
    G_HAT_FLOOR = 1e-6  # as devices.G_HAT_FLOOR

    @_jit_inline
    def _draw(cell_key, slot):
        return counter_rng._splitmix64_nb(cell_key + np.uint64(slot) * counter_rng.GOLDEN)

    @_jit
    def _normals(cell_key, slot):
        """Two standard normals (float64 of float32 Box-Muller) from one slot."""
        z0, z1 = counter_rng._normal_pair_nb(_draw(cell_key, slot))
        return np.float64(z0), np.float64(z1)

    @_jit_inline
    def _uniform(cell_key, slot):
        """Uniform on [0, 1), 53 bits."""
        return np.float64(_draw(cell_key, slot) >> np.uint64(11)) * 2.0**-53

    @_jit
    def _read_q(g, p):
        """`devices.read_noise_q` at t0 for a device at g (µS)."""
        g_hat = max(g / p[10], G_HAT_FLOOR)
        return min(p[27] / g_hat ** p[28], p[29]) * p[30]

    @_jit
    def _program(g, target, p, cell_key, first_slot, noisy, max_iterations):
        """`devices.program_from` for one device: (G, iterations)."""
        tolerance, g_max = p[13], p[10]
        target = min(max(target, 0.0), p[11])
        if not abs(target - g) > tolerance:
            return g, 0
        if not noisy:
            return target, 0
        iterations = 0
        for k in range(max_iterations):
            if not abs(target - g) > tolerance:
                break
            error = target - g
            iterations += 1
            if error < -tolerance:
                g = p[12]  # RESET
            else:
                response = min(max(1.0 - g / g_max, 0.02), 1.0)
                nominal = min(0.8 * max(error, 0.0) / response, p[14])
                z, _ = _normals(cell_key, first_slot + k)
                g = g + max(nominal * response * (1.0 + p[15] * z), 0.0)
            g = min(max(g, 0.0), g_max)
        g_hat = max(target / g_max, 0.0)
        sigma = max(p[16] + p[17] * g_hat + p[18] * g_hat * g_hat, 0.0)
        z, _ = _normals(cell_key, first_slot + max_iterations)
        return min(max(g + sigma * z, 0.0), g_max), iterations

    @_jit
    def _fault(g, code, g_max):
        if code == FAULT_STUCK_HIGH:
            return g_max
        if code == FAULT_DEAD:
            return 0.0
        return g

    @_jit
    def _drift_nu(g, p, z):
        log_g = np.log(max(g / p[10], G_HAT_FLOOR))
        mean = min(max(p[19] * log_g + p[20], p[21]), p[22])
        std = min(max(p[23] * log_g + p[24], p[25]), p[26])
        return np.float32(max(mean + std * z, 0.0))

    @_jit
    def _weight(gain, g_per_volt, new_sign, us, gp, gm, rg, base, v):
        """The weight (float32, weight units) the pair presents after the transfer: the
        same operations as `sync` (LayerDevices.weights_us / us) on one cell."""
        return np.float32((gain * (gp - gm) + new_sign * (rg * g_per_volt * np.float64(v) + base)) / us)

    def _transfer_body(key, sign, g_plus, g_minus, nu_plus, nu_minus, faults_plus, faults_minus, v, dv_up, dv_down,
                     read_gain, cap_base, p, flags, col_cuts, tally, iterations, moved, us, w, fast):
        """The whole transfer in place; iterations[i, j] gets the pair's closed-loop
        iterations, moved[i, j] whether a device of it was programmed, w[i, j] the
        weight it now presents. Returns (refreshed pairs, write-back pulses).

        Two passes per row segment, the same model and draws in both: the first is
        branch-free over the cells (so it vectorises) and finishes every cell whose
        devices stay as they are (held or within the closed loop's tolerance, no fault
        to apply: most cells of most transfers) — its residual pulsed back into the
        capacitor; the second does the rest, cell by cell, with the programming loop.
        With fast False (tests) the second pass does every cell."""
        gain, g_per_volt, v_init, v_min, v_max, dv_nominal = p[0], p[1], p[2], p[3], p[4], p[5]
        deadband, theta, offset, limit, g_max, g_prog_max = p[6], p[7], p[8], p[9], p[10], p[11]
        tolerance = p[13]
        weight_read, invert, residual, noisy, drift, max_it = flags[0], flags[1], flags[2], flags[3], flags[4], flags[5]
        new_sign = -sign if invert else sign
        per_pulse = new_sign * g_per_volt * dv_nominal  # weight µS of one nominal 'up' pulse
        refresh_limit = min(limit, g_prog_max)
        v_start = np.float32(v_init)
        refreshed = 0
        pulses = 0
        rows, cols = g_plus.shape
        gp_f, gm_f, v_f, up_f, down_f = g_plus.ravel(), g_minus.ravel(), v.ravel(), dv_up.ravel(), dv_down.ravel()
        rg_f, base_f, fp_f, fm_f = read_gain.ravel(), cap_base.ravel(), faults_plus.ravel(), faults_minus.ravel()
        w_f = w.ravel()
        for i in numba.prange(rows):  # rows are independent (own cells, own draws): the same bits on 1 or 2 threads
            done = np.zeros(cols, dtype=np.bool_)
            for s in range(col_cuts.size - 1):
                fired_row = 0
                if fast and not weight_read:
                    # First pass: the cells whose devices stay (see the docstring), branch-free.
                    for j in range(col_cuts[s], col_cuts[s + 1]):
                        c = np.uint64(i * cols + j)
                        cell_key = counter_rng._splitmix64_nb(key + (c + np.uint64(1)) * counter_rng.GOLDEN)
                        gp0, gm0 = gp_f[c], gm_f[c]
                        rg = np.float64(rg_f[c])
                        base = np.float64(base_f[c])
                        pcm_read = gain * (gp0 - gm0)
                        wanted = pcm_read + sign * (rg * g_per_volt * np.float64(v_f[c]) + base)
                        wanted = wanted - new_sign * (rg * g_per_volt * v_init + base)
                        full = wanted
                        keep = gain * (gp0 - gm0)
                        held = deadband > 0 and abs(wanted - pcm_read) < deadband
                        wanted = keep if held else wanted
                        if theta > 0:
                            change = wanted - pcm_read
                            u = _uniform(cell_key, SLOT_THRESHOLD)
                            stepped = pcm_read + np.sign(change) * theta
                            chosen = stepped if u < abs(change) / theta else keep
                            wanted = chosen if abs(change) < theta else wanted
                        target = wanted - offset
                        reset_both = wanted > 0 and wanted < offset and not held
                        target = wanted if held else target
                        diff = target / gain
                        need = diff - (gp0 - gm0)
                        plus_target = gp0 + need if need > 0 else gp0
                        minus_target = gm0 - need if need < 0 else gm0
                        refresh = reset_both or max(plus_target, minus_target) > refresh_limit
                        # `_program` leaves a device whose (clipped) target is within tolerance.
                        stay_p = not abs(min(max(plus_target, 0.0), g_prog_max) - gp0) > tolerance
                        stay_m = not abs(min(max(minus_target, 0.0), g_prog_max) - gm0) > tolerance
                        unfaulted = _fault(gp0, fp_f[c], g_max) == gp0 and _fault(gm0, fm_f[c], g_max) == gm0
                        kept = full if held else wanted
                        missed = kept - gain * (gp0 - gm0)
                        n = np.floor(missed / per_pulse + _uniform(cell_key, SLOT_WRITE_BACK))
                        n = n if residual > 0 and missed != 0.0 else 0.0
                        simple = (not refresh) and stay_p and stay_m and unfaulted and n == n
                        step = np.float64(up_f[c]) if n > 0 else np.float64(down_f[c])
                        v_new = np.float32(min(max(np.float64(v_start) + n * step, v_min), v_max))
                        v_new = v_new if n != 0 else v_start
                        done[j] = simple
                        v_f[c] = v_new if simple else v_f[c]
                        w_f[c] = _weight(gain, g_per_volt, new_sign, us, gp0, gm0, rg, base, v_new)
                        fired_row += np.int64(abs(n)) if simple else 0
                for j in range(col_cuts[s], col_cuts[s + 1]):
                    if fast and not weight_read and done[j]:
                        continue
                    cell_key = counter_rng._splitmix64_nb(key + np.uint64(i * cols + j + 1) * counter_rng.GOLDEN)
                    gp0, gm0 = g_plus[i, j], g_minus[i, j]
                    gp_read, gm_read = gp0, gm0
                    if weight_read:
                        z0, z1 = _normals(cell_key, SLOT_READ)
                        gp_read = gp0 + gp0 * _read_q(gp0, p) * z0
                        gm_read = gm0 + gm0 * _read_q(gm0, p) * z1
                    rg = np.float64(read_gain[i, j])
                    base = np.float64(cap_base[i, j])
                    pcm_read = gain * (gp_read - gm_read)
                    wanted = pcm_read + sign * (rg * g_per_volt * np.float64(v[i, j]) + base)
                    wanted = wanted - new_sign * (rg * g_per_volt * v_init + base)
                    full = wanted
                    keep = gain * (gp0 - gm0)
                    held = deadband > 0 and abs(wanted - pcm_read) < deadband
                    if held:
                        wanted = keep
                    if theta > 0:
                        change = wanted - pcm_read
                        if abs(change) < theta:
                            if _uniform(cell_key, SLOT_THRESHOLD) < abs(change) / theta:
                                wanted = pcm_read + np.sign(change) * theta
                            else:
                                wanted = keep
                    target = wanted - offset
                    reset_both = wanted > 0 and wanted < offset and not held
                    if held:
                        target = wanted
                    if reset_both:
                        target = 0.0
                    # program_pair: SETs on top of the present state, or RESET and start again
                    diff = target / gain
                    need = diff - (gp0 - gm0)
                    plus_target = gp0 + need if need > 0 else gp0
                    minus_target = gm0 - need if need < 0 else gm0
                    refresh = reset_both or max(plus_target, minus_target) > refresh_limit
                    plus_start, minus_start = gp0, gm0
                    if refresh:
                        refreshed += 1
                        plus_start = minus_start = p[12]
                        plus_target, minus_target = max(diff, 0.0), max(-diff, 0.0)
                    gp, it_p = _program(plus_start, plus_target, p, cell_key, SLOT_LOOP, noisy, max_it)
                    gm, it_m = _program(minus_start, minus_target, p, cell_key, SLOT_LOOP + max_it + 1, noisy, max_it)
                    iterations[i, j] = it_p + it_m
                    moved_p, moved_m = gp != gp0, gm != gm0
                    gp = _fault(gp, faults_plus[i, j], g_max)
                    gm = _fault(gm, faults_minus[i, j], g_max)
                    if drift and (moved_p or moved_m):
                        z0, z1 = _normals(cell_key, SLOT_DRIFT)
                        if moved_p:
                            nu_plus[i, j] = _drift_nu(gp, p, z0)
                        if moved_m:
                            nu_minus[i, j] = _drift_nu(gm, p, z1)
                    g_plus[i, j], g_minus[i, j] = gp, gm
                    unmoved = gp == gp0 and gm == gm0
                    moved[i, j] = not unmoved
                    v_new = v_start
                    if residual > 0:
                        kept = full if held else wanted
                        missed = kept - gain * (gp - gm) if unmoved else 0.0
                        if residual == 2 and not unmoved:  # one noisy read of the programmed pair
                            z0, z1 = _normals(cell_key, SLOT_VERIFY)
                            missed = kept - gain * ((gp + gp * _read_q(gp, p) * z0) - (gm + gm * _read_q(gm, p) * z1))
                        if missed != 0.0:
                            n = np.floor(missed / per_pulse + _uniform(cell_key, SLOT_WRITE_BACK))
                            if n != 0:
                                step = np.float64(dv_up[i, j]) if n > 0 else np.float64(dv_down[i, j])
                                v_new = np.float32(min(max(np.float64(v_new) + n * step, v_min), v_max))
                                fired_row += int(abs(n))
                    v[i, j] = v_new
                    w[i, j] = _weight(gain, g_per_volt, new_sign, us, gp, gm, rg, base, v_new)
                tally[i, s] += fired_row
                pulses += fired_row
        return refreshed, pulses

    _transfer_nb = numba.njit(fastmath=False, error_model="numpy", cache=True)(renamed(_transfer_body, "_transfer_serial"))
    _transfer_parallel = numba.njit(fastmath=False, error_model="numpy", cache=True, parallel=True)(renamed(_transfer_body, "_transfer_parallel"))


def transfer(state, spec, key: int, col_cuts: np.ndarray, tally: np.ndarray, us: float, w: np.ndarray, fast: bool = True) -> tuple[int, int, np.ndarray, np.ndarray]:
    """One transfer of `state` (a LayerDevices, updated in place, polarity flipped);
    w (float32, C-contiguous) gets the weights the devices then present, in weight units
    of `us` µS (as `TrainableLayer.sync`); returns (refreshed pairs, write-back pulses,
    iterations per cell, moved pairs). fast False: every cell through the cell-by-cell pass
    (the reference of the fast pass, for tests)."""
    iterations = np.zeros(state.shape, dtype=np.int32)
    moved = np.zeros(state.shape, dtype=np.bool_)
    for name in vocabulary.DEVICE_FIELDS:
        if not getattr(state, name).flags.c_contiguous:  # the kernel works on flat views of them
            setattr(state, name, np.ascontiguousarray(getattr(state, name)))
    if not (w.flags.c_contiguous and w.dtype == np.float32 and w.shape == state.shape):
        raise ValueError("transfer: w must be a C-contiguous float32 array of the layer's shape")
    args = (
        np.uint64(key), float(state.sign), state.g_plus, state.g_minus, state.nu_plus, state.nu_minus,
        state.faults_plus, state.faults_minus, state.v, state.dv_up, state.dv_down, state.read_gain, state.cap_base,
        transfer_params(spec), transfer_flags(spec), np.asarray(col_cuts, dtype=np.int64), tally, iterations, moved,
        float(us), w, bool(fast),
    )
    # Both cores when one is free and that was faster (`cores.CHOICE`): a transfer of a
    # large layer is milliseconds of independent rows; a small one is not worth the threads.
    if state.g_plus.size < PARALLEL_CELLS:
        refreshed, pulses = _transfer_nb(*args)
    else:
        refreshed, pulses = CHOICE.run(("transfer", state.shape), state.g_plus.size, _transfer_nb, _transfer_parallel, *args)
    if spec.training.polarity_inversion:
        state.sign = -state.sign
    return int(refreshed), int(pulses), iterations, moved
