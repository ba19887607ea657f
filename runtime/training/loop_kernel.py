"""In-situ training's examples in one compiled call: the whole chain, example after example.

`Trainer.step` does one example as a few dozen numpy and kernel calls (a read per layer
each way, an update per layer, activations, the loss); at a few hundred microseconds an
example, the Python between those calls cost more than their arithmetic. `run_examples`
does a run of examples (up to the next event the trainer handles itself: leakage, a
transfer, progress, a checkpoint, the epoch's end) in one numba call, with the same
model and the same kernels:
- keys: example e's read and update keys are slot_keys(mix_key(run key, e), 4·L)
  (`update_kernel`), here in compiled code, consumed in the same order as `step`
  (forward reads of layers 0…L−1, then per layer from the last: backward read, update);
- forward: `read_kernel`'s layer read (DAC, blocks, read noise, ADCs), the digital bias,
  the hidden activation (float32, as `activations` computes it);
- loss: softmax cross-entropy on the last layer's outputs (as `float_sgd`);
- backward: transpose reads, times the activation's derivative;
- update: the digital bias in float, then `update_kernel`'s capacitor pulses.
After an example that makes a layer's adaptive transfer due (its pulses since the last
transfer reach `due[l]`), the call returns, so the trainer transfers exactly where the
per-example loop would. Everything is keyed by the example number, not by generator
state, so where a run is cut (checkpoints, resume) does not change a bit.

It needs numba (a dependency of the project): without it, and for what it does not
cover (2-PCM cells, hidden activations other than `ACTIVATION_CODES`), the trainer
runs `step`, whose reads and updates have numpy twins.
"""

from __future__ import annotations

import numpy as np

from analogc.runtime.physics import counter_rng
from analogc.runtime.physics.numba_cache import drop_stale_builds
from analogc.runtime.training import fast_tanh, read_kernel, update_kernel

HAVE_NUMBA = counter_rng.HAVE_NUMBA
# Hidden activations the compiled loop computes (the rest train through `Trainer.step`).
ACTIVATION_CODES = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "leaky_relu": 4}
NO_WORDS = np.zeros((0, 0), dtype=np.uint16)  # the variance words of a layer without read noise (never read)


if HAVE_NUMBA:
    import numba

    # `_run_examples` compiles in the code of read_kernel, update_kernel and counter_rng.
    drop_stale_builds(__file__, [read_kernel, update_kernel, counter_rng, fast_tanh])

    _jit = numba.njit(fastmath=False, error_model="numpy", cache=True)
    _finalise = counter_rng._splitmix64_nb

    @_jit
    def _example_keys(run_key, example, keys):
        """keys[s − 1] = slot_keys(mix_key(run_key, example), len(keys))[s − 1]."""
        g = counter_rng.GOLDEN
        base = _finalise(_finalise(run_key + g) + np.uint64(example) + g)
        first = _finalise(base + g) + g
        for s in range(keys.size):
            keys[s] = _finalise(first + np.uint64(s + 1))

    _tanh = numba.njit(fastmath=False, error_model="numpy", cache=True, inline="always")(fast_tanh.tanh_scalar)

    @_jit
    def _activate(code, alpha, z, h):
        for j in range(z.size):
            v = z[j]
            if code == 1:
                v = max(v, np.float32(0.0))
            elif code == 2:  # 0.5·(1 + tanh(0.5·z)), as activations.sigmoid
                v = np.float32(0.5) * (np.float32(1.0) + _tanh(v * np.float32(0.5)))
            elif code == 3:
                v = _tanh(v)
            elif code == 4:
                v = v if v >= 0 else v * alpha
            h[j] = v

    @_jit
    def _backprop(code, alpha, z, h, back, delta_prev):
        """delta_prev[j] = back[j] · d activation / dz at output j (as
        float_sgd.activation_grad) for j < delta_prev.size, in one call a layer with one
        loop per activation: a call per element, with the lists' items and its array
        arguments increfed, cost ~50 ns (20 µs an example on 784-250-125-10)."""
        one, zero = np.float32(1.0), np.float32(0.0)
        n = delta_prev.size
        if code == 1:
            for j in range(n):
                delta_prev[j] = back[j] * (one if z[j] > 0 else zero)
        elif code == 2:
            for j in range(n):
                delta_prev[j] = back[j] * (h[j] * (one - h[j]))
        elif code == 3:
            for j in range(n):
                delta_prev[j] = back[j] * (one - h[j] * h[j])
        elif code == 4:
            for j in range(n):
                delta_prev[j] = back[j] * (one if z[j] > 0 else alpha)
        else:
            for j in range(n):
                delta_prev[j] = back[j]

    @_jit
    def _read(x, l, transpose, key, ws, variances, blocks, has_var, w_max, settings):
        ideal, dac_quant, dac_step, dac_range, adc_quant, adc_step, adc_bound, sigma2, output_noise = settings
        out = np.zeros(ws[l].shape[0] if transpose else ws[l].shape[1], dtype=np.float32)
        read_kernel._read_layer_nb(x, ws[l], variances[l], blocks[l], transpose, has_var[l], ideal, dac_quant, dac_step,
                                   dac_range, adc_quant, adc_step, adc_bound, sigma2, has_var[l] or output_noise,
                                   w_max[l], key, out)
        return out

    @numba.njit(fastmath=False, error_model="numpy", cache=True, inline="always")
    def _update(l, ws, vs, wgains, dv_ups, dv_downs, steps, x, delta, coef, cap, v_min, v_max, key, col_cuts, tallies, gains):
        """Layer l's capacitor update (`update_kernel`), with its steps packed (steps an
        int32 array) or not (None), and every cell's wgain gains[l] or its own (NaN)."""
        if gains[l] == gains[l]:
            return update_kernel._update_nb(ws[l], vs[l], wgains[l], dv_ups[l], dv_downs[l], steps, x, delta, coef, cap, v_min,
                                            v_max, key, col_cuts[l], tallies[l], gains[l])
        return update_kernel._update_nb(ws[l], vs[l], wgains[l], dv_ups[l], dv_downs[l], steps, x, delta, coef, cap, v_min,
                                        v_max, key, col_cuts[l], tallies[l], None)

    @_jit
    def _run_examples(features, labels, order, first_example, run_key, lr, ws, variances, blocks, has_var, w_max, settings,
                      wgains, gains, vs, dv_ups, dv_downs, steps, col_cuts, tallies, biases, has_bias, analog_bias, codes, alphas,
                      coef_per_lr, cap_limits, counts, due, sums):
        n_layers = len(ws)
        keys = np.empty(4 * n_layers, dtype=np.uint64)
        lr32 = np.float32(lr)
        done = 0
        for e in range(order.size):
            _example_keys(run_key, first_example + e, keys)
            x = features[order[e]]
            inputs = []
            zs = []
            hs = []
            h = x
            for l in range(n_layers):
                k = ws[l].shape[0]
                xa = np.empty(k, dtype=np.float32)
                xa[: h.size] = h
                if analog_bias[l]:
                    xa[k - 1] = np.float32(1.0)
                z = _read(xa, l, False, keys[l], ws, variances, blocks, has_var, w_max, settings)
                if has_bias[l]:
                    z += biases[l]
                hl = np.empty_like(z)
                if l < n_layers - 1:
                    _activate(codes[l], alphas[l], z, hl)
                inputs.append(xa)
                zs.append(z)
                hs.append(hl)
                h = hl
            logits = zs[n_layers - 1]
            label = labels[order[e]]
            top = logits[0]
            best = 0
            for j in range(logits.size):
                if logits[j] > top:
                    top, best = logits[j], j
            shifted = logits - top
            ex = np.exp(shifted)
            total = np.float32(0.0)
            for j in range(ex.size):
                total += ex[j]
            sums[0] += np.float64(np.log(total) - shifted[label])
            sums[1] += 1.0 if best == label else 0.0
            delta = (ex / total).astype(np.float32)
            delta[label] -= np.float32(1.0)
            slot = n_layers
            for l in range(n_layers - 1, -1, -1):
                delta_prev = delta
                if l > 0:
                    k_prev = ws[l - 1].shape[1]
                    back = _read(delta, l, True, keys[slot], ws, variances, blocks, has_var, w_max, settings)
                    slot += 1
                    delta_prev = np.empty(k_prev, dtype=np.float32)
                    _backprop(codes[l - 1], alphas[l - 1], zs[l - 1], hs[l - 1], back, delta_prev)
                if has_bias[l]:
                    bias = biases[l]
                    for j in range(bias.size):
                        bias[j] -= lr32 * delta[j]
                coef = np.float32(lr * coef_per_lr[l])
                cap, v_min, v_max = cap_limits[l, 0], cap_limits[l, 1], cap_limits[l, 2]
                # Serial (update_kernel's threaded build is not called from here: on the shared
                # 2-core machine it ran 9 ms against 0.2 ms for the 785x250 layer, and a cached
                # caller of a parallel build crashed when reloaded in a new process).
                if steps is None:
                    fired = _update(l, ws, vs, wgains, dv_ups, dv_downs, None, inputs[l], delta, coef, cap, v_min, v_max,
                                    keys[slot], col_cuts, tallies, gains)
                else:
                    fired = _update(l, ws, vs, wgains, dv_ups, dv_downs, steps[l], inputs[l], delta, coef, cap, v_min, v_max,
                                    keys[slot], col_cuts, tallies, gains)
                slot += 1
                counts[l, 0] += fired  # pulses
                counts[l, 1] += fired  # pulses since the last transfer
                counts[l, 2] += 1  # examples since the last transfer
                counts[l, 3] = fired  # in this update
                delta = delta_prev
            done += 1
            stop = False
            for l in range(n_layers):
                if due[l] >= 0 and counts[l, 1] >= due[l]:
                    stop = True
            if stop:
                break
        return done


def supports(layers: list) -> bool:
    """Whether the compiled loop covers these trainable layers (`analog_layer.TrainableLayer`)."""
    if not HAVE_NUMBA or not layers:
        return False
    for l, layer in enumerate(layers):
        if not (layer.compiled and layer.capacitor):
            return False
        if l < len(layers) - 1 and layer.entry["activation"]["op"] not in ACTIVATION_CODES:
            return False
    return True


class CompiledChain:
    """The trainable layers' arrays and constants as `_run_examples` takes them. Arrays are
    the layers' own (updated in place); `refresh` re-reads those that a transfer, a leak or
    a checkpoint's restore replaces."""

    def __init__(self, layers: list, spec, features: np.ndarray, labels: np.ndarray):
        self.layers, self.spec = layers, spec
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        settings = read_kernel.read_settings(spec, 1.0)
        self.settings = settings[:-1]  # w_max is per layer
        cap = spec.capacitor
        per_cell = spec.training.transfer_pulses
        self.due = np.array([int(np.ceil(per_cell * layer.w.size)) if per_cell > 0 else -1 for layer in layers], dtype=np.int64)
        self.cap_limits = np.array([[cap.max_pulses, cap.v_min, cap.v_max]] * len(layers), dtype=np.float32)
        self.codes = np.array([ACTIVATION_CODES.get(l.entry["activation"]["op"], 0) for l in layers], dtype=np.int64)
        self.alphas = np.array([np.float32(l.entry["activation"].get("alpha", 0.01)) for l in layers], dtype=np.float32)
        self.analog_bias = np.array([l.analog_bias for l in layers])
        self.has_bias = np.array([l.digital_bias is not None for l in layers])
        self.has_var = np.array([l.var is not None for l in layers])
        self.blocks = tuple(l.block_array for l in layers)
        self.col_cuts = tuple(l.col_cuts for l in layers)
        self.w_max = np.array([l.w_max for l in layers], dtype=np.float32)

    def uniform_gains(self) -> np.ndarray:
        """Per layer, the wgain all its cells share, or NaN (the update then streams wgain)."""
        gains = [update_kernel.uniform_gain(l.wgain) for l in self.layers]
        return np.array([np.nan if g is None else g for g in gains], dtype=np.float32)

    def run(self, order: np.ndarray, first_example: int, run_key: int, lr: float, sums: np.ndarray) -> int:
        """Train on features[order] (examples first_example, first_example + 1, …); stops
        early after an example that makes a transfer due. Adds (loss, correct) into
        sums; returns how many examples were done."""
        layers, cap = self.layers, self.spec.capacitor
        dv = cap.g_per_volt * 0.5 * (cap.dv_up + cap.dv_down)
        # coef = −η·us·s / (dG/dV·ΔV nominal), as TrainableLayer.update (η applied in the kernel)
        coef_per_lr = np.array([-l.us * l.state.sign / dv for l in layers], dtype=np.float64)
        counts = np.array([[l.pulses, l.state.pulses_since_transfer, l.state.examples_since_transfer, 0] for l in layers], dtype=np.int64)
        # Packed steps (half the bytes to stream) when every layer has them, else the float pairs.
        steps = tuple(l.steps for l in layers) if all(l.steps is not None for l in layers) else None
        empty = np.zeros(0, dtype=np.float32)
        done = _run_examples(
            self.features, self.labels, np.ascontiguousarray(order, dtype=np.int64), first_example, np.uint64(run_key), float(lr),
            tuple(l.w for l in layers), tuple(NO_WORDS if l.var_words is None else l.var_words for l in layers), self.blocks,
            self.has_var, self.w_max, self.settings, tuple(l.wgain for l in layers), self.uniform_gains(),
            tuple(l.state.v for l in layers),
            tuple(l.state.dv_up for l in layers), tuple(l.state.dv_down for l in layers), steps, self.col_cuts,
            tuple(l.pulse_tally for l in layers), tuple(empty if l.digital_bias is None else l.digital_bias for l in layers),
            self.has_bias, self.analog_bias, self.codes, self.alphas, coef_per_lr, self.cap_limits,
            counts, self.due, sums,
        )
        for layer, (pulses, since, examples, last) in zip(layers, counts.tolist()):
            layer.pulses, layer.state.pulses_since_transfer, layer.state.examples_since_transfer = pulses, since, examples
            layer.last_fired = last  # pulses of the run's last update (tests check where transfers fall)
        return int(done)
