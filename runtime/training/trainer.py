"""In-situ training on the simulated chip (Ambrogio et al. 2018), with checkpoints.

Per-example SGD over the trainable chain (`chain`): forward through DAC, tiles
and ADCs, digital activations; softmax cross-entropy; backward by transpose reads of
the same tiles; ΔW = −η·xᵀδ as pulses on the capacitor pairs; the capacitors' share
moves to the PCM pairs and the polarity flips (`analog_layer`) when a layer's cells have
taken transfer_pulses pulses each on average, or every transfer_interval examples.
After each epoch the chip as it stands is measured on the test set through the whole
program (frozen parts included), like `run` would.

Reproducibility: every random number comes from generators seeded by --seed (device
programming, noise and pulses, example order per epoch); a checkpoint holds the device
state, the generator's state and the position, so an interrupted run that resumes ends
bit-identical to one that was not interrupted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime.chip.activations import apply_activation
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import accuracy, batch_size_of, run_batched
from analogc.runtime.cost.opcounts import layer_program_counts
from analogc.runtime.cost.pricing import OpCounts, price, static_block_counts
from analogc.runtime.format.program import Program, program_identity
from analogc.runtime.format.spec import check_trainable, has_capacitor, spec_from_dict
from analogc.runtime.physics.layer_devices import LayerDevices, has_device_state, program_layer, us_per_weight
from analogc.runtime.training import fast_tanh
from analogc.runtime.training.analog_layer import TrainableLayer, transfer_schedule
from analogc.runtime.training.chain import find_chain, initial_weights, training_w_max
from analogc.runtime.training.float_sgd import FloatChain, activation_grad, append_one, softmax_cross_entropy
from analogc.runtime.training.loop_kernel import CompiledChain, supports
from analogc.runtime.training.state import Position, restore_state, save_state
from analogc.runtime.training.update_kernel import mix_key, slot_keys

F32 = np.float32
LEAK_EVERY = 64  # examples between applications of capacitor leakage (when leak_tau > 0)
PROGRESS_EVERY = 256
TRANSFER_TAG = 0x7472616E73666572  # 'transfer': keys of the compiled transfers


@dataclass
class TrainOptions:
    epochs: int
    init: str = "compiled"  # or "random"
    seed: int = 0
    learning_rate: float | None = None  # None: the spec's
    baseline: bool = False
    limit: int | None = None  # training examples per epoch (None: all)
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 5000
    resume: bool = False
    data_name: str = ""


class Trainer:
    def __init__(self, program: Program, x_train, y_train, x_test, y_test, options: TrainOptions):
        self.program, self.options = program, options
        self.spec = spec_from_dict(program.meta["target"], origin="program target")
        check_trainable(self.spec)
        if options.init not in ("compiled", "random"):
            raise AnalogcError(f"--init must be compiled or random, got {options.init!r}")
        self.chain = find_chain(program)
        self.lr = self.spec.training.learning_rate if options.learning_rate is None else options.learning_rate
        seeds = np.random.SeedSequence(options.seed).spawn(3)
        init_rng, program_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
        self.rng = np.random.Generator(np.random.PCG64(seeds[2]))  # transfers
        self.run_key = mix_key(options.seed, 0x7261696E)
        self.layers, matrices, biases = [], [], []
        for entry in self.chain.layers:
            layer, matrix, bias = self.make_layer(entry, init_rng, program_rng)
            self.layers.append(layer)
            matrices.append(matrix)
            biases.append(bias)
        self.baseline = FloatChain(self.chain.layers, matrices, biases) if options.baseline else None
        self.program_costs = OpCounts()  # PCM programming during transfers and refreshes
        for layer in self.layers:
            layer.on_program = lambda iterations, name=layer.name: self.program_costs.merge(
                layer_program_counts(self.program, "transfer", name, iterations)
            )
        n_out = self.chain.layers[-1]["shape"][1]
        for name, y in (("training", y_train), ("test", y_test)):
            if y is None:
                raise AnalogcError(f"{options.data_name}: the {name} split has no labels; training needs them")
            if len(y) and (y.min() < 0 or y.max() >= n_out):
                raise AnalogcError(f"{options.data_name}: labels run from {y.min()} to {y.max()}, the network has {n_out} outputs")
        self.y_train, self.y_test = y_train, y_test
        self.test_feeds = x_test
        self.features = self.chain_inputs(x_train)
        self.test_features = self.chain_inputs(x_test) if options.baseline else None
        self.position = Position()
        # The compiled loop (`loop_kernel`) where it covers the chain, else `step`.
        self.compiled = CompiledChain(self.layers, self.spec, self.features, self.y_train) if supports(self.layers) else None
        self.settings = self.run_settings()
        self.fingerprint = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()
        if options.resume:
            self.restore()

    # --------------------------------------------------------------------------- setup
    def make_layer(self, entry: dict, init_rng, program_rng):
        name = entry["name"]
        blocks = [b for b in self.program.blocks if b["layer"] == name]
        if self.options.init == "compiled" and has_device_state(self.program, name):
            state = LayerDevices.from_arrays(self.program.arrays, name, entry)
            w_max = float(entry["w_max"])
            bias = self.program.arrays.get(f"bias/{name}") if entry["bias"] == "digital" else None
            layer = TrainableLayer(entry, blocks, state, self.spec, w_max, None if bias is None else np.array(bias, dtype=F32))
            return layer, layer.weights(), None if bias is None else np.array(bias, dtype=F32)
        matrix, bias = initial_weights(self.program, entry, self.options.init, init_rng)
        w_max = training_w_max(entry, matrix, self.spec)
        regions = [(slice(*b["rows"]), slice(*b["cols"])) for b in blocks]
        state = program_layer(matrix.astype(np.float64) * us_per_weight(self.spec, w_max), regions, self.spec, program_rng)
        layer = TrainableLayer(entry, blocks, state, self.spec, w_max, None if bias is None else bias.copy())
        return layer, matrix, bias

    def chain_inputs(self, x: dict) -> np.ndarray:
        """The first chain layer's inputs for every example: the frozen part of the
        network run once on the chip (with its nonidealities), or the data itself."""
        first = self.chain.layers[0]
        name = next(iter(x))
        if first["input"] in x:
            values = x[first["input"]]
        else:
            chip = Chip(self.program, seed=self.options.seed)
            batch, pad = batch_size_of(self.program)
            (values,) = run_batched(lambda f: [chip.run(f, stop_before=first["name"])[first["input"]]], x, batch, pad)
        k = first["shape"][0]
        n = len(x[name])
        if values.size != n * k:
            raise AnalogcError(f"layer {first['name']!r} reads {values.shape[1:]} per example; training needs one vector of {k} per example")
        return np.ascontiguousarray(values.reshape(n, k), dtype=F32)

    def run_settings(self) -> dict:
        """What a checkpoint must agree with to be resumed (its fingerprint hashes them)."""
        o = self.options
        return {
            "program": program_identity(self.program.meta),
            "init": o.init, "seed": o.seed, "lr": self.lr, "baseline": o.baseline, "limit": o.limit,
            "data": o.data_name, "examples": len(self.features),
            "data_sha": hashlib.sha256(self.features.tobytes()).hexdigest(),
        }

    # ------------------------------------------------------------------------ the loop
    def order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence([self.options.seed, 7, epoch]))
        order = rng.permutation(len(self.features))
        return order if self.options.limit is None else order[: self.options.limit]

    def epoch_lr(self, epoch: int) -> float:
        """η in an epoch (0-based): the starting rate times learning_rate_decay per epoch done."""
        return self.lr * self.spec.training.learning_rate_decay**epoch

    def train(self, progress=None) -> dict:
        """Run (or finish) every epoch; returns the result (`epochs`, baseline, ...)."""
        pos = self.position
        interval = self.spec.training.transfer_interval
        adaptive = self.spec.training.transfer_pulses > 0
        leak = self.spec.capacitor.leak_tau > 0 and has_capacitor(self.spec)
        while pos.epoch < self.options.epochs:
            order = self.order(pos.epoch)
            start = time.perf_counter()
            while pos.index < len(order):
                if self.compiled is not None:  # a run of examples up to the next event below, in one call
                    self.run_compiled(order[pos.index : self.run_end(len(order), leak, progress is not None)])
                else:
                    i = order[pos.index]
                    loss, correct = self.step(self.features[i], int(self.y_train[i]))
                    pos.loss_sum += loss
                    pos.correct += correct
                    pos.index += 1
                    pos.total += 1
                if leak and pos.total % LEAK_EVERY == 0:
                    for layer in self.layers:
                        layer.leak(LEAK_EVERY)
                if adaptive:
                    self.transfer([layer for layer in self.layers if layer.transfer_due()])
                if interval and pos.total % interval == 0:
                    self.transfer([layer for layer in self.layers if not (adaptive and layer.capacitor)])
                if progress is not None and (pos.index % PROGRESS_EVERY == 0 or pos.index == len(order)):
                    elapsed = pos.seconds + time.perf_counter() - start
                    progress(pos.epoch, pos.index, len(order), pos.loss_sum / pos.index, pos.correct / pos.index, pos.index / elapsed)
                if self.options.checkpoint_dir and pos.total % self.options.checkpoint_every == 0 and pos.index < len(order):
                    pos.seconds += time.perf_counter() - start
                    start = time.perf_counter()
                    self.save()
            pos.seconds += time.perf_counter() - start
            self.finish_epoch(len(order))
            if self.options.checkpoint_dir:
                self.save()
        return self.result()

    def run_end(self, examples: int, leak: bool, progress: bool) -> int:
        """Where the compiled run from the present position must stop: the first example
        after which the loop below has something to do (leakage, an interval transfer,
        progress, a checkpoint, the epoch's end); adaptive transfers stop it in the kernel."""
        pos, interval = self.position, self.spec.training.transfer_interval
        count = examples - pos.index
        if leak:
            count = min(count, LEAK_EVERY - pos.total % LEAK_EVERY)
        if interval:
            count = min(count, interval - pos.total % interval)
        if progress:
            count = min(count, PROGRESS_EVERY - pos.index % PROGRESS_EVERY)
        if self.options.checkpoint_dir:
            count = min(count, self.options.checkpoint_every - pos.total % self.options.checkpoint_every)
        return pos.index + max(count, 1)

    def run_compiled(self, order: np.ndarray) -> None:
        """Examples order[0], order[1], … through `loop_kernel` (the same model as `step`),
        until the run's end or a transfer falls due."""
        pos = self.position
        sums = np.array([pos.loss_sum, pos.correct], dtype=np.float64)
        done = self.compiled.run(order, pos.total, self.run_key, self.epoch_lr(pos.epoch), sums)
        pos.loss_sum, pos.correct = float(sums[0]), int(sums[1])
        pos.index += done
        pos.total += done

    def step(self, x: np.ndarray, label: int) -> tuple[float, bool]:
        """One example: forward, loss, backward, update (each layer after its backward read).
        Its noise and pulses are keyed by (run key, example number, slot): no generator state."""
        layers, lr = self.layers, self.epoch_lr(self.position.epoch)
        keys = iter(slot_keys(mix_key(self.run_key, self.position.total), 4 * len(layers)))
        inputs, zs, h = [], [], x
        for l, layer in enumerate(layers):
            xa = append_one(h) if layer.analog_bias else h
            z = layer.forward(xa, next(keys))
            if layer.digital_bias is not None:
                z = z + layer.digital_bias
            inputs.append(xa)
            zs.append(z)
            if l < len(layers) - 1:
                h = apply(layer.entry["activation"], z)
        loss, correct, delta = softmax_cross_entropy(zs[-1], label)
        for l in range(len(layers) - 1, -1, -1):
            layer = layers[l]
            if l > 0:
                k = layer.entry["shape"][0]
                back = layer.backward(delta, next(keys))[:k]
                prev = layers[l - 1].entry
                delta_prev = (back * activation_grad(prev["activation"], zs[l - 1], inputs[l][:k])).astype(F32)
            layer.update(inputs[l], delta, lr, next(keys))
            if l > 0:
                delta = delta_prev
        return loss, correct

    def transfer(self, layers: list) -> None:
        """Capacitor → PCM with polarity inversion (3T1C cells), or a refresh of
        saturating pairs (2-PCM cells), for the layers due: all of them every
        transfer_interval examples, or each on its own pulse count (transfer_pulses)."""
        for layer in layers:
            if layer.capacitor:  # keyed by layer and transfer number (compiled), or the generator's draws
                layer.transfer(self.rng, mix_key(self.run_key, TRANSFER_TAG, self.layers.index(layer), layer.transfers))
            else:
                layer.refresh(self.rng)
                layer.transfers += 1
        if layers:
            self.position.transfers += 1

    def finish_epoch(self, examples: int) -> None:
        pos = self.position
        row = {
            "epoch": pos.epoch + 1,
            "examples": examples,
            "train_loss": pos.loss_sum / max(examples, 1),
            "train_accuracy": pos.correct / max(examples, 1),
            "test_accuracy": self.test_accuracy(),
            "learning_rate": self.epoch_lr(pos.epoch),
            "examples_per_s": examples / pos.seconds if pos.seconds > 0 else None,
            "seconds": pos.seconds,
            "transfers_total": pos.transfers,
            "transfers_by_layer": {layer.name: layer.transfers for layer in self.layers},
            "pulses_total": sum(layer.pulses for layer in self.layers),
            "pcm_program_iterations_total": sum(layer.pcm_iterations for layer in self.layers),
            "refreshed_pairs_total": sum(layer.refreshed for layer in self.layers),
            "weight_ranges": {layer.name: layer.w_max for layer in self.layers},
        }
        if self.baseline is not None:
            order, lr = self.order(pos.epoch), self.epoch_lr(pos.epoch)
            start = time.perf_counter()
            for i in order:
                self.baseline.step(self.features[i], int(self.y_train[i]), lr)
            seconds = time.perf_counter() - start
            predicted = self.baseline.predict(self.test_features)
            row["software_baseline_accuracy"] = float(np.mean(predicted == self.y_test))
            row["software_baseline_examples_per_s"] = len(order) / seconds if seconds > 0 else None
        pos.history.append(row)
        pos.epoch += 1
        pos.index, pos.loss_sum, pos.correct, pos.seconds = 0, 0.0, 0, 0.0

    # --------------------------------------------------------------------- measuring
    def current_program(self) -> Program:
        """The program with the chain's devices, held weights and training scale in it."""
        meta = copy.deepcopy(self.program.meta)
        arrays = dict(self.program.arrays)
        entries = {entry["name"]: entry for entry in meta["layers"]}
        for layer in self.layers:
            entry = entries[layer.name]
            k = entry["shape"][0]
            held = layer.weights()
            arrays[f"weight/{layer.name}"] = held[:k]
            if entry["bias"] == "analog":
                arrays[f"bias/{layer.name}"] = held[k]
            elif entry["bias"] == "digital":
                arrays[f"bias/{layer.name}"] = layer.digital_bias.copy()
            arrays.update(layer.state.to_arrays(layer.name))
            entry["w_max"] = layer.w_max
            entry.pop("adc_range", None)  # training reads through the ADC in units of its w_max
            entry.pop("us_per_weight", None)  # derived from w_max and the target (us_per_weight)
            entry["device"] = {"sign": layer.state.sign, "examples_since_transfer": layer.state.examples_since_transfer,
                               "pulses_since_transfer": layer.state.pulses_since_transfer}
            entry["trained"] = True
        meta["training"] = {
            "data": self.options.data_name,
            "seed": self.options.seed,
            "init": self.options.init,
            "learning_rate": self.lr,
            "examples": self.position.total,
            "trained_layers": [l.name for l in self.layers],
            "frozen_layers": self.chain.frozen_layers,
            "frozen_host_segments": self.chain.frozen_segments,
            "epochs": self.position.history,
        }
        return Program(meta, arrays, dict(self.program.members))

    def test_accuracy(self) -> float | None:
        program = self.current_program()
        chip = Chip(program, seed=self.options.seed, devices={l.name: l.state for l in self.layers})
        batch, pad = batch_size_of(program)
        names = [o["name"] for o in program.meta["model"]["outputs"]]
        outputs = run_batched(lambda f: [chip.run(f)[n] for n in names], self.test_feeds, batch, pad, program=program)
        return accuracy(outputs, self.y_test)

    def result(self) -> dict:
        history = self.position.history
        out = {
            "data": self.options.data_name,
            "target": self.spec.name,
            "seed": self.options.seed,
            "init": self.options.init,
            "learning_rate": self.lr,
            "learning_rate_decay": self.spec.training.learning_rate_decay,
            "transfer_schedule": transfer_schedule(self.spec),
            "transfer_read": self.spec.training.transfer_read,
            "trained_layers": [l.name for l in self.layers],
            "frozen_layers": self.chain.frozen_layers,
            "frozen_host_segments": self.chain.frozen_segments,
            "examples": self.position.total,
            "epochs": history,
            "test_accuracy": history[-1]["test_accuracy"] if history else None,
        }
        if self.options.baseline:  # the float network's after the last epoch, like test_accuracy; per epoch in `epochs`
            out["software_baseline_accuracy"] = history[-1].get("software_baseline_accuracy") if history else None
        out["cost"] = self.cost().to_json()
        return out

    def cost(self):
        """Energy, time and area of the training run so far: every example's forward
        pass through the whole network (frozen parts included), the transpose reads and
        updates of the trained layers, the pulses fired, and the transfers' reads and
        PCM programming (`runtime/cost/pricing.py`)."""
        n, names = self.position.total, [l.name for l in self.layers]
        counts = OpCounts()
        counts.merge(static_block_counts(self.program, "forward", n))
        counts.merge(static_block_counts(self.program, "backward", n, layers=names[1:]))
        counts.merge(static_block_counts(self.program, "update", n, layers=names))
        for layer in self.layers:
            counts.merge(static_block_counts(self.program, "transfer", layer.transfers, layers=[layer.name]))
        for layer in self.layers:
            for block in self.program.blocks:
                if block["layer"] == layer.name:
                    counts.add("update", layer.name, tuple(block["tile"]), pulses=layer.block_pulses(block))
        counts.merge(self.program_costs)
        return price(counts, self.spec, self.program, examples=n)

    # ------------------------------------------------------------------- checkpoints
    def save(self) -> None:
        save_state(self)

    def restore(self) -> None:
        restore_state(self)


def apply(activation: dict, z: np.ndarray) -> np.ndarray:
    """A hidden activation as training computes it: sigmoid and tanh through `fast_tanh`,
    as the compiled loop does (the same bits), the others as the chip does."""
    if activation["op"] == "tanh":
        return fast_tanh.tanh(z)
    if activation["op"] == "sigmoid":
        half = F32(0.5)
        return (half * (F32(1.0) + fast_tanh.tanh(np.asarray(z, dtype=F32) * half))).astype(F32, copy=False)
    return apply_activation(z, activation).astype(F32, copy=False)
