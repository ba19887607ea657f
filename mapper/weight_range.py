"""The layer's weight range w_max: the |w| that maps to the largest conductance difference.

A weight w is written as F·(G⁺ − G⁻) with µS per weight unit u = F·g_prog_max / w_max:
one device of the pair is programmed to g = min(|w|, w_max)/w_max · g_prog_max, the other
to 0. A small w_max clips the largest weights; a large one puts every weight at a small
conductance, where the devices are relatively noisier (1/f read noise Q ∝ ĝ^−0.65, drift
exponents that spread more, σ_ν up to 0.045, and drift more on average). Two rules
(spec `cell.w_max_rule`):

- "quantile": the `cell.w_max_quantile` quantile of |w|;
- "min_error": the w_max that minimises the expected squared weight error
  Σ_w (|w| − w_max)₊² + (w_max/g_prog_max)²·(v(g) + v(0)), where v(g) is the variance
  (µS²) of one device programmed to g, seen at the design time t = `cell.w_max_design_time`
  through global drift compensation (`weight_error`, `device_variance`).

Only the published device formulas of runtime/physics/devices.py enter; the periphery (output
noise, ADC bound) does not, since its share depends on the inputs, unknown at compile time.
"""

from __future__ import annotations

import numpy as np

from analogc.mapper.bounded_minimum import bounded_minimum
from analogc.runtime.physics import devices

MAX_SAMPLES = 1 << 14  # larger layers are judged on an even stride of this many weights
GRID = 48  # w_max candidates scanned (geometric) before the bounded Brent refinement


def w_max_by_rule(magnitudes: np.ndarray, spec, rule: str | None = None, scratch: bool = False) -> float:
    """w_max for one layer's |w| (weights and analog bias, any shape) under `rule` (the
    spec's `cell.w_max_rule` when None); 1 for a layer with no nonzero finite weight.
    With `scratch` the caller hands over a flat array of magnitudes that the quantile
    may reorder in place (no copy of a layer of 100 M weights)."""
    magnitudes = np.asarray(magnitudes)
    if not (scratch and magnitudes.ndim == 1 and magnitudes.dtype.kind == "f"):
        magnitudes = np.abs(magnitudes).ravel()  # (a copy: ours to reorder)
    if not np.isfinite(magnitudes.sum(dtype=np.float64)):  # one pass, no boolean temporary
        magnitudes = magnitudes[np.isfinite(magnitudes)]
    top = float(magnitudes.max()) if magnitudes.size else 0.0
    if not top > 0:
        return 1.0
    if (rule or spec.cell.w_max_rule) == "min_error":
        w_max = min_error_w_max(sample(magnitudes, top).astype(np.float64), spec)
    elif spec.cell.w_max_quantile >= 1.0:
        w_max = top
    else:
        w_max = quantile_in_place(magnitudes, spec.cell.w_max_quantile)
    return w_max if w_max > 0 and np.isfinite(w_max) else top


def quantile_in_place(values: np.ndarray, q: float) -> float:
    """np.quantile(values, q) (its default, linear method, the same arithmetic) from a
    partial sort of `values` in place around the two order statistics it needs, instead
    of a sorted copy."""
    n = values.size
    index = q * (n - 1)
    lo = int(np.floor(index))
    hi = min(lo + 1, n - 1)
    values.partition([lo, hi] if hi != lo else lo)
    below, above = values[lo], values[hi]
    gamma = index - lo
    diff = above - below
    # numpy's _lerp: from the lower value below the midpoint, from the upper one above it
    return float(above - diff * (1 - gamma)) if gamma >= 0.5 else float(below + diff * gamma)


CHUNK = 1 << 22  # elements per pass over a large layer (16 MB of float32 temporaries)
QUANTILE_MARGIN = 0.01  # the candidates of a quantile q: |w| at or above the sample's (q − margin) quantile


def parts_w_max(parts: list, spec, rule: str | None = None, stats: tuple | None = None) -> float:
    """`w_max_by_rule` of the magnitudes of `parts` (flat arrays, signed or not, taken one
    after the other) without a |w| copy of the layer: max and finiteness in passes that
    allocate nothing, the sample by strides, a quantile from the few candidates above a
    threshold (`parts_quantile`). The same value as w_max_by_rule on their concatenation.
    `stats` is `parts_stats(parts)` when the caller has it (two passes over the layer)."""
    n, top = parts_stats(parts) if stats is None else stats
    if n == 0 or not np.isfinite(top):
        joined = np.concatenate([np.abs(p) for p in parts]) if parts else np.zeros(0)
        return w_max_by_rule(joined, spec, rule, scratch=True)  # NaN or inf: the general path filters them
    if not top > 0:
        return 1.0
    rule = rule or spec.cell.w_max_rule
    if rule == "min_error":
        w_max = min_error_w_max(parts_sample(parts, n, top).astype(np.float64), spec)
    elif spec.cell.w_max_quantile >= 1.0:
        w_max = top
    else:
        w_max = parts_quantile(parts, n, spec.cell.w_max_quantile, top)
    return w_max if w_max > 0 and np.isfinite(w_max) else top


def parts_stats(parts: list) -> tuple[int, float]:
    """(count, max |value|) of the parts; the max is NaN or inf if any value is."""
    top = 0.0
    for p in parts:
        if p.size:
            high, low = float(p.max()), float(p.min())  # (a NaN anywhere makes both NaN)
            top = max(top, high, -low) if np.isfinite(high) and np.isfinite(low) else float("nan")
            if np.isnan(top):
                break
    return sum(p.size for p in parts), top


def parts_sample(parts: list, n: int, top: float) -> np.ndarray:
    """`sample` of the parts' magnitudes: every stride-th of the joined sequence, and top."""
    if n <= MAX_SAMPLES:
        return np.concatenate([np.abs(p) for p in parts])
    stride = -(-n // MAX_SAMPLES)
    picked, offset = [], 0
    for p in parts:
        picked.append(np.abs(p[(-offset) % stride :: stride]))
        offset += p.size
    values = np.concatenate(picked)
    return np.append(values, values.dtype.type(top))


def parts_quantile(parts: list, n: int, q: float, top: float) -> float:
    """np.quantile of the parts' magnitudes (`quantile_in_place`'s arithmetic): only the
    values at or above a threshold below the quantile are gathered (chunk by chunk) and
    partially sorted; if a threshold from the sample catches too few, all of them are."""
    index = q * (n - 1)
    lo = int(np.floor(index))
    need = n - lo  # the values of rank lo and above
    threshold = float(np.quantile(parts_sample(parts, n, top), max(q - QUANTILE_MARGIN, 0.0)))
    for bound in (threshold, -1.0):
        gathered = []
        for p in parts:
            for i in range(0, p.size, CHUNK):
                chunk = np.abs(p[i : i + CHUNK])
                gathered.append(chunk[chunk >= bound])
        values = np.concatenate(gathered)
        if values.size >= need:
            break
    skipped = n - values.size  # all below every gathered value
    hi = min(lo + 1, n - 1)
    values.partition([lo - skipped, hi - skipped] if hi != lo else lo - skipped)
    below, above = values[lo - skipped], values[hi - skipped]
    gamma = index - lo
    diff = above - below
    return float(above - diff * (1 - gamma)) if gamma >= 0.5 else float(below + diff * gamma)


def design_drift(spec) -> float:
    """L = ln(t/t0) at the design time, 0 without drift or before t0."""
    pcm, t = spec.pcm, spec.cell.w_max_design_time
    return float(np.log(t / pcm.drift_t0)) if pcm.drift and t > pcm.drift_t0 else 0.0


def device_variance(g: np.ndarray, alpha: float, spec) -> np.ndarray:
    """Variance (µS²) of one device programmed to g (µS), at the design time, after the
    global compensation multiplied every output by alpha.

    With L = ln(t/t0) and ν ~ N(μ_ν(g), σ_ν(g)), the device reads α·G·e^{−νL}:
    - programming error σ_prog(g), carried by the same factor: σ_prog²·α²·E[e^{−2νL}];
    - drift left after compensation: g²·E[(α·e^{−νL} − 1)²]
      = g²·(α²·e^{−2μL + 2σ²L²} − 2α·e^{−μL + σ²L²/2} + 1) (ν normal, lognormal moments);
    - 1/f read noise of the mean drifted conductance g_t = g·e^{−μL}, Q of the programmed
      g (`devices.read_noise_q`): (α·g_t·Q(g, t))².
    """
    pcm = spec.pcm
    g = np.asarray(g, dtype=np.float64)
    sigma_prog = devices.programming_sigma(g, pcm) if pcm.programming_noise else np.zeros_like(g)
    drift_l = design_drift(spec)
    mean, std = devices.drift_nu_moments(g, pcm)
    first = np.exp(-mean * drift_l + 0.5 * (std * drift_l) ** 2)  # E[e^{−νL}]
    second = np.exp(-2 * mean * drift_l + 2 * (std * drift_l) ** 2)  # E[e^{−2νL}]
    g_t = g * np.exp(-mean * drift_l)
    read = alpha * g_t * devices.read_noise_q(g, max(spec.cell.w_max_design_time, pcm.drift_t0), pcm)
    residual = g**2 * (alpha**2 * second - 2 * alpha * first + 1)
    return sigma_prog**2 * alpha**2 * second + np.clip(residual, 0.0, None) + read**2


def compensation(g: np.ndarray, spec) -> float:
    """The global compensation's factor at the design time: total conductance at t0 over
    its expected value at t (Σ g / Σ g·E[e^{−νL}]), as the calibration read measures it."""
    drift_l = design_drift(spec)
    if drift_l == 0.0 or not spec.pcm.drift_compensation:
        return 1.0
    mean, std = devices.drift_nu_moments(g, spec.pcm)
    now = float(np.sum(g * np.exp(-mean * drift_l + 0.5 * (std * drift_l) ** 2)))
    return float(np.sum(g)) / now if now > 0 else 1.0


def weight_error(magnitudes: np.ndarray, w_max: float, spec) -> float:
    """Expected squared weight error (weight units²) summed over the weights |w| when the
    layer's range is w_max: clipping above w_max plus both devices' variance."""
    magnitudes = np.asarray(magnitudes, dtype=np.float64)
    g_prog_max = spec.pcm.g_prog_max
    g = np.minimum(magnitudes / w_max, 1.0) * g_prog_max
    alpha = compensation(g, spec)
    variance = device_variance(g, alpha, spec) + device_variance(np.zeros(1), alpha, spec)[0]
    clipped = np.clip(magnitudes - w_max, 0.0, None)
    return float(np.sum(clipped**2) + (w_max / g_prog_max) ** 2 * np.sum(variance))


def sample(magnitudes: np.ndarray, top: float | None = None) -> np.ndarray:
    """At most MAX_SAMPLES of the magnitudes, an even stride through the layer, with its
    largest value (`top`, if known) kept (the tail decides the clipping)."""
    if magnitudes.size <= MAX_SAMPLES:
        return magnitudes
    stride = -(-magnitudes.size // MAX_SAMPLES)
    return np.append(magnitudes[::stride], magnitudes.max() if top is None else magnitudes.dtype.type(top))


def min_error_w_max(magnitudes: np.ndarray, spec) -> float:
    """For |w| (float64, at least one nonzero), the w_max in [median |w|, max |w|] with
    the least `weight_error`: a geometric scan of GRID candidates (the error need not be
    unimodal over the whole range), then a bounded Brent search (scipy's, `bounded_minimum`) between the best
    candidate's neighbours."""
    values = magnitudes[magnitudes > 0]
    top = float(values.max())
    bottom = min(float(np.median(values)), top)
    candidates = np.geomspace(bottom, top, GRID) if bottom < top else np.array([top])
    errors = [weight_error(values, w, spec) for w in candidates]
    best = int(np.argmin(errors))
    lo, hi = candidates[max(best - 1, 0)], candidates[min(best + 1, len(candidates) - 1)]
    if hi <= lo:
        return float(candidates[best])
    x, fun = bounded_minimum(lambda w: weight_error(values, w, spec), float(lo), float(hi), xatol=1e-9 * hi)
    return float(x) if fun < errors[best] else float(candidates[best])
