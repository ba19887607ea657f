"""PCM device effects on whole arrays of conductances (µS).

Source: the PCM programming-noise fit published with IBM's analog toolkit
(Nandakumar et al. 2019): σ(g_T) = c0 + c1·ĝ + c2·ĝ² µS with ĝ = g_T / g_max.
"""

from __future__ import annotations

import numpy as np


def programming_sigma(g_target: np.ndarray, pcm) -> np.ndarray:
    """Standard deviation (µS) of the programmed conductance at target g_target (µS)."""
    g_hat = np.clip(g_target / pcm.g_max, 0.0, None)
    sigma = pcm.prog_noise_c0 + pcm.prog_noise_c1 * g_hat + pcm.prog_noise_c2 * g_hat**2
    return np.clip(sigma, 0.0, None)


def program_conductances(g_target: np.ndarray, pcm, rng: np.random.Generator) -> np.ndarray:
    """Programmed conductances: target plus the fitted residual error, kept in [0, g_max]."""
    if not pcm.programming_noise:
        return g_target.copy()
    noisy = g_target + rng.standard_normal(g_target.shape) * programming_sigma(g_target, pcm)
    return np.clip(noisy, 0.0, pcm.g_max)


def apply_faults(g: np.ndarray, pcm, rng: np.random.Generator) -> np.ndarray:
    """Stuck-high devices read g_max, dead ones read 0."""
    if pcm.stuck_high_fraction == 0 and pcm.dead_fraction == 0:
        return g
    draw = rng.random(g.shape)
    g = np.where(draw < pcm.stuck_high_fraction, pcm.g_max, g)
    return np.where((draw >= pcm.stuck_high_fraction) & (draw < pcm.stuck_high_fraction + pcm.dead_fraction), 0.0, g)
