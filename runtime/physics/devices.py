"""PCM device physics on whole arrays of conductances (µS), one function per effect.

Sources: the PCM statistics published with IBM's analog toolkit (Nandakumar et al.
2019, Joshi et al. 2020), as given in docs/chip.md:
- programming error σ(g_T) = c0 + c1·ĝ + c2·ĝ² µS, ĝ = g_T / g_max;
- drift G(t) = G(t0)·(t/t0)^(−ν), ν ~ N(μ_ν, σ_ν) per device with
  μ_ν = clip(a·ln ĝ + b, lo, hi), σ_ν = clip(a'·ln ĝ + b', lo', hi');
- 1/f read noise N(0, G·Q), Q = min(q0/ĝ^e, qmax)·sqrt(ln((t + t_read)/(2·t_read))).
Every function takes the spec's `[pcm]` table and, where random, a numpy Generator.
"""

from __future__ import annotations

import numpy as np

G_HAT_FLOOR = 1e-6  # ĝ below this is treated as this, so logs and powers stay finite


def programming_sigma(g_target: np.ndarray, pcm) -> np.ndarray:
    """σ (µS) of the programmed conductance around target g_target (µS), clipped at 0."""
    g_hat = np.clip(g_target / pcm.g_max, 0.0, None)
    sigma = pcm.prog_noise_c0 + pcm.prog_noise_c1 * g_hat + pcm.prog_noise_c2 * g_hat**2
    return np.clip(sigma, 0.0, None)


def set_increment(g: np.ndarray, wanted: np.ndarray, pcm, rng: np.random.Generator) -> np.ndarray:
    """One partial-SET pulse from state g (µS) that tries to add `wanted` µS.

    The device answers with a fraction (1 − g/g_max) of the pulse's nominal step (it
    saturates), the controller knows this and under-aims (80%) to avoid overshooting;
    the nominal step is capped at set_step and the response spreads by set_step_noise
    (relative, cycle to cycle).
    """
    response = np.clip(1.0 - g / pcm.g_max, 0.02, 1.0)
    nominal = np.minimum(0.8 * wanted / response, pcm.set_step)
    spread = 1.0 + pcm.set_step_noise * rng.standard_normal(g.shape)
    return np.clip(nominal * response * spread, 0.0, None)


def program_closed_loop(g_target: np.ndarray, pcm, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Program every device to its target by read-verify-pulse; returns (G, iterations).

    From RESET, each iteration reads the device, stops it when within prog_tolerance,
    RESETs it when above target + tolerance, and otherwise applies a partial SET toward
    the target; devices still off target after prog_max_iterations keep their error.
    The programmed state then relaxes by N(0, σ(g_T)) (the published programming-error
    fit, which describes devices read shortly after programming), so with a tolerance
    well below σ the achieved error follows the fit.
    """
    target = np.clip(np.asarray(g_target, dtype=np.float64), 0.0, pcm.g_prog_max)
    if not pcm.programming_noise:
        return target.copy(), np.zeros(target.shape, dtype=np.int32)
    return closed_loop(np.full(target.shape, pcm.reset_g), target, np.ones(target.shape, dtype=bool), pcm, rng)


def program_from(g_start: np.ndarray, g_target: np.ndarray, pcm, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Closed-loop programming that starts from each device's present state (training's
    transfer: partial SETs on top of what is there, RESET only on overshoot). Devices
    already within prog_tolerance of their target are not touched: no pulse, no fresh
    programming error. Returns (G, iterations)."""
    target = np.clip(np.asarray(g_target, dtype=np.float64), 0.0, pcm.g_prog_max)
    start = np.asarray(g_start, dtype=np.float64)
    touched = np.abs(target - start) > pcm.prog_tolerance
    if not pcm.programming_noise:
        return np.where(touched, target, start), np.zeros(target.shape, dtype=np.int32)
    return closed_loop(start.copy(), target, touched, pcm, rng)


def closed_loop(g: np.ndarray, target: np.ndarray, touched: np.ndarray, pcm, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The read-verify-pulse loop on the devices marked `touched` (g is updated in
    place), then the programming relaxation N(0, σ(g_T)) on those devices."""
    iterations = np.zeros(target.shape, dtype=np.int32)
    flat_g, flat_target, flat_iterations = np.ravel(g), np.ravel(target), iterations.reshape(-1)
    # The active devices as a shrinking list of flat indices, in C order: the same devices
    # and draws as masking the whole array at every iteration, without rescanning it.
    idx = np.flatnonzero(touched & (np.abs(target - g) > pcm.prog_tolerance))
    for _ in range(pcm.prog_max_iterations):
        if not idx.size:
            break
        g_i, target_i = flat_g[idx], flat_target[idx]
        error = target_i - g_i
        flat_iterations[idx] += 1
        too_high = error < -pcm.prog_tolerance
        step = set_increment(g_i, np.clip(error, 0.0, None), pcm, rng)
        new_g = np.clip(np.where(too_high, pcm.reset_g, g_i + step), 0.0, pcm.g_max)
        flat_g[idx] = new_g
        idx = idx[np.abs(target_i - new_g) > pcm.prog_tolerance]
    if not np.shares_memory(flat_g, g):  # g was not contiguous: ravel copied it
        g[...] = flat_g.reshape(g.shape)
    if touched.all():
        relaxed = g + programming_sigma(target, pcm) * rng.standard_normal(g.shape)
        return np.clip(relaxed, 0.0, pcm.g_max), iterations
    idx = np.nonzero(touched)
    g[idx] = np.clip(g[idx] + programming_sigma(target[idx], pcm) * rng.standard_normal(len(idx[0])), 0.0, pcm.g_max)
    return g, iterations


def drift_nu_moments(g_programmed: np.ndarray, pcm) -> tuple[np.ndarray, np.ndarray]:
    """(μ_ν, σ_ν) of the drift exponent of devices programmed to g_programmed (µS)."""
    log_g = np.log(np.clip(g_programmed / pcm.g_max, G_HAT_FLOOR, None))
    mean = np.clip(pcm.drift_nu_mean_a * log_g + pcm.drift_nu_mean_b, pcm.drift_nu_mean_lo, pcm.drift_nu_mean_hi)
    std = np.clip(pcm.drift_nu_std_a * log_g + pcm.drift_nu_std_b, pcm.drift_nu_std_lo, pcm.drift_nu_std_hi)
    return mean, std


def drift_exponents(g_programmed: np.ndarray, pcm, rng: np.random.Generator) -> np.ndarray:
    """Per-device drift exponent ν ~ N(μ_ν(ĝ), σ_ν(ĝ)), clipped at 0."""
    mean, std = drift_nu_moments(np.asarray(g_programmed), pcm)
    return np.clip(mean + std * rng.standard_normal(mean.shape), 0.0, None)


def drift_factor(nu: np.ndarray, t: float, pcm) -> np.ndarray:
    """(t / t0)^(−ν) for t after t0; 1 before (no drift measured before t0)."""
    if not pcm.drift or t <= pcm.drift_t0:
        return np.ones_like(nu)
    return np.power(t / pcm.drift_t0, -nu)


def read_noise_q(g_programmed: np.ndarray, t: float, pcm) -> np.ndarray:
    """Relative 1/f read-noise amplitude Q (σ = G(t)·Q) at time t after programming, of a
    device programmed to g_programmed.

    ĝ is the programmed conductance, not the drifted one, as in the published fit
    (Joshi et al., Nat. Commun. 2020; aihwkit's PCMLikeNoiseModel): drift scales the
    noise with G(t) but does not raise Q as G falls. Reads happen at least t0 after
    programming (the drift reference), so t is taken as max(t, t0); that also keeps
    the log positive.
    """
    if not pcm.read_noise:
        return np.zeros_like(g_programmed)
    t = max(t, pcm.drift_t0)
    g_hat = np.clip(g_programmed / pcm.g_max, G_HAT_FLOOR, None)
    q = np.minimum(pcm.read_noise_q0 / np.power(g_hat, pcm.read_noise_qexp), pcm.read_noise_qmax)
    return q * np.sqrt(np.log((t + pcm.t_read) / (2 * pcm.t_read)))


def read_with_noise(g: np.ndarray, t: float, pcm, rng: np.random.Generator, g_programmed: np.ndarray | None = None) -> np.ndarray:
    """One read of every device at conductance g (at time t): G + N(0, G·Q), Q from the
    programmed conductance (g itself when not given: a read at t0, before any drift)."""
    return g + g * read_noise_q(g if g_programmed is None else g_programmed, t, pcm) * rng.standard_normal(g.shape)


def fault_masks(shape, pcm, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(stuck at g_max, dead at 0) boolean masks, disjoint, with the spec's fractions."""
    draw = rng.random(shape)
    stuck = draw < pcm.stuck_high_fraction
    dead = (draw >= pcm.stuck_high_fraction) & (draw < pcm.stuck_high_fraction + pcm.dead_fraction)
    return stuck, dead


def apply_faults(g: np.ndarray, stuck: np.ndarray, dead: np.ndarray, pcm) -> np.ndarray:
    return np.where(stuck, pcm.g_max, np.where(dead, 0.0, g))
