"""In-situ training on the simulated chip (Ambrogio et al. 2018), with checkpoints.

Per-example SGD over the trainable chain (`train_chain`): forward through DAC, tiles
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime.activations import apply_activation
from analogc.runtime.analog_layer import TrainableLayer, transfer_schedule
from analogc.runtime.checkpoint import load_checkpoint, save_checkpoint, settings_difference
from analogc.runtime.cost import OpCounts, price, static_block_counts
from analogc.runtime.opcounts import layer_program_counts
from analogc.runtime.float_sgd import FloatChain, activation_grad, append_one, softmax_cross_entropy
from analogc.runtime.infer import accuracy, batch_size_of, run_batched
from analogc.runtime.layer_devices import FIELDS, LayerDevices, has_device_state, program_layer
from analogc.runtime.program import Program, program_identity
from analogc.runtime.program_check import device_value_problem
from analogc.runtime.spec import check_trainable, has_capacitor, spec_from_dict
from analogc.runtime.train_chain import find_chain, initial_weights, training_w_max
from analogc.runtime.update_kernel import mix_key, slot_keys

F32 = np.float32
LEAK_EVERY = 64  # examples between applications of capacitor leakage (when leak_tau > 0)
PROGRESS_EVERY = 256


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


@dataclass
class Position:
    epoch: int = 0
    index: int = 0  # examples done in this epoch
    total: int = 0  # examples done overall
    loss_sum: float = 0.0
    correct: int = 0
    transfers: int = 0
    seconds: float = 0.0  # chip training time in this epoch
    history: list = field(default_factory=list)


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
        us = self.spec.cell.gain_f * self.spec.pcm.g_prog_max / w_max
        regions = [(slice(*b["rows"]), slice(*b["cols"])) for b in blocks]
        state = program_layer(matrix.astype(np.float64) * us, regions, self.spec, program_rng)
        layer = TrainableLayer(entry, blocks, state, self.spec, w_max, None if bias is None else bias.copy())
        return layer, matrix, bias

    def chain_inputs(self, x: dict) -> np.ndarray:
        """The first chain layer's inputs for every example: the frozen part of the
        network run once on the chip (with its nonidealities), or the data itself."""
        from analogc.runtime.chip import Chip

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
            if layer.capacitor:
                layer.transfer(self.rng)
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
            entry["us_per_weight"] = layer.us
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
        from analogc.runtime.chip import Chip

        program = self.current_program()
        chip = Chip(program, seed=self.options.seed, devices={l.name: l.state for l in self.layers})
        batch, pad = batch_size_of(program)
        names = [o["name"] for o in program.meta["model"]["outputs"]]
        outputs = run_batched(lambda f: [chip.run(f)[n] for n in names], self.test_feeds, batch, pad)
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
        PCM programming (`runtime/cost.py`)."""
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
        arrays = {}
        for layer in self.layers:
            arrays.update(layer.state.to_arrays(layer.name))
            arrays[f"presented/{layer.name}"] = layer.w
            arrays[f"pulse_tally/{layer.name}"] = layer.pulse_tally
            if layer.digital_bias is not None:
                arrays[f"digital_bias/{layer.name}"] = layer.digital_bias
        if self.baseline is not None:
            for l, m in enumerate(self.baseline.matrices):
                arrays[f"baseline/matrix/{l}"] = m
                if self.baseline.biases[l] is not None:
                    arrays[f"baseline/bias/{l}"] = self.baseline.biases[l]
        pos = self.position
        meta = {
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "position": {k: getattr(pos, k) for k in ("epoch", "index", "total", "loss_sum", "correct", "transfers", "seconds", "history")},
            "rng": self.rng.bit_generator.state,
            "program_costs": self.program_costs.to_json(),
            "layers": {
                l.name: {"sign": l.state.sign, "examples_since_transfer": l.state.examples_since_transfer,
                         "pulses_since_transfer": l.state.pulses_since_transfer, "transfers": l.transfers,
                         "pulses": l.pulses, "pcm_iterations": l.pcm_iterations, "refreshed": l.refreshed}
                for l in self.layers
            },
        }
        save_checkpoint(self.options.checkpoint_dir, arrays, meta)

    def restore(self) -> None:
        if not self.options.checkpoint_dir:
            raise AnalogcError("--resume needs --checkpoint DIR")
        loaded = load_checkpoint(self.options.checkpoint_dir)
        if loaded is None:
            return  # nothing saved yet: start from the beginning
        arrays, meta = loaded
        where = f"{self.options.checkpoint_dir}/checkpoint.npz"
        if meta.get("fingerprint") != self.fingerprint:
            raise AnalogcError(f"{where}: this checkpoint belongs to another run: {settings_difference(meta.get('settings'), self.settings)}")
        try:
            self.load_state(arrays, meta)
        except (KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError, AnalogcError) as exc:
            raise AnalogcError(f"{where}: checkpoint is incomplete or damaged ({exc})") from None

    def load_state(self, arrays: dict, meta: dict) -> None:
        """Everything a checkpoint holds, each value checked before it is used."""

        def array(name: str, shape: tuple, dtype) -> np.ndarray:
            value = arrays[name]
            if value.shape != shape or value.dtype.kind not in "fiub" or (value.dtype.kind == "f" and not np.all(np.isfinite(value))):
                raise ValueError(f"{name} is {value.dtype} {value.shape}, expected finite {np.dtype(dtype)} {shape}")
            return np.array(value, dtype=dtype)

        def count(value) -> int:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
                raise ValueError(f"{value!r} is not a count")
            return value

        def number(value) -> float:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise ValueError(f"{value!r} is not a finite number")
            return float(value)

        for layer in self.layers:
            info = meta["layers"][layer.name]
            for name, dtype in FIELDS.items():
                setattr(layer.state, name, array(f"device/{layer.name}/{name}", layer.state.shape, dtype))
            state = layer.state
            problem = device_value_problem(layer.name, lambda field: getattr(state, field), self.spec.pcm.g_max)
            if problem:
                raise ValueError(problem)
            if info["sign"] not in (1, -1):
                raise ValueError(f"layer {layer.name}: polarity {info['sign']!r} is not ±1")
            state.sign = float(info["sign"])
            state.examples_since_transfer = count(info["examples_since_transfer"])
            state.pulses_since_transfer = count(info["pulses_since_transfer"])
            layer.transfers = count(info["transfers"])
            layer.pulses, layer.pcm_iterations, layer.refreshed = count(info["pulses"]), count(info["pcm_iterations"]), count(info["refreshed"])
            layer.sync()
            layer.w = np.ascontiguousarray(array(f"presented/{layer.name}", layer.w.shape, F32))
            tally = array(f"pulse_tally/{layer.name}", layer.pulse_tally.shape, np.int64)
            if tally.min(initial=0) < 0:
                raise ValueError(f"layer {layer.name}: negative pulse counts")
            layer.pulse_tally = tally
            if layer.digital_bias is not None:
                layer.digital_bias = array(f"digital_bias/{layer.name}", layer.digital_bias.shape, F32)
        if self.baseline is not None:
            for l, matrix in enumerate(self.baseline.matrices):
                self.baseline.matrices[l] = array(f"baseline/matrix/{l}", matrix.shape, F32)
                if self.baseline.biases[l] is not None:
                    self.baseline.biases[l] = array(f"baseline/bias/{l}", self.baseline.biases[l].shape, F32)
        self.rng.bit_generator.state = meta["rng"]
        self.program_costs = OpCounts()
        for row in meta["program_costs"]:
            tile = row["tile"]
            self.program_costs.add(str(row["phase"]), str(row["layer"]), None if tile is None else (count(tile[0]), count(tile[1])),
                                   **{str(k): count(v) for k, v in dict(row["counts"]).items()})
        p = meta["position"]
        position = Position(count(p["epoch"]), count(p["index"]), count(p["total"]), number(p["loss_sum"]), count(p["correct"]),
                            count(p["transfers"]), number(p["seconds"]), list(p["history"]))
        if position.epoch > self.options.epochs or len(position.history) != position.epoch:
            raise ValueError(f"position: epoch {position.epoch} with {len(position.history)} epochs of history")
        if position.epoch < self.options.epochs and position.index > len(self.order(position.epoch)):
            raise ValueError(f"position: example {position.index} is past the epoch's end")
        for row in position.history:
            check_history_row(row, count, number)
        self.position = position


# What a history row (finish_epoch) holds; `train` prints the last one and the trained
# program keeps them all, so a resumed row must be of the same kinds.
ROW_COUNTS = ("epoch", "examples", "transfers_total", "pulses_total", "pcm_program_iterations_total", "refreshed_pairs_total")
ROW_NUMBERS = ("train_loss", "train_accuracy", "seconds", "learning_rate")
ROW_OPTIONAL = ("test_accuracy", "examples_per_s", "software_baseline_accuracy", "software_baseline_examples_per_s")
ROW_BY_LAYER = {"transfers_by_layer": "count", "weight_ranges": "number"}


def check_history_row(row, count, number) -> None:
    """One epoch of a checkpoint's history: known keys only, each of its kind."""
    if not isinstance(row, dict):
        raise ValueError(f"history row {str(row)[:40]} is not an object")
    unknown = sorted(set(row) - {*ROW_COUNTS, *ROW_NUMBERS, *ROW_OPTIONAL, *ROW_BY_LAYER})
    if unknown:
        raise ValueError(f"history row has unknown key {unknown[0][:40]!r}")
    for key in ("epoch", "examples", "train_loss", "train_accuracy"):
        if key not in row:
            raise ValueError(f"history row lacks {key!r}")
    try:
        for key, value in row.items():
            if key in ROW_COUNTS:
                count(value)
            elif key in ROW_NUMBERS or (key in ROW_OPTIONAL and value is not None):
                number(value)
            elif key in ROW_BY_LAYER:
                if not isinstance(value, dict):
                    raise ValueError(f"{str(value)[:40]} is not an object")
                for item in value.values():
                    (count if ROW_BY_LAYER[key] == "count" else number)(item)
    except ValueError as exc:
        raise ValueError(f"history row {key}: {exc}") from None


def apply(activation: dict, z: np.ndarray) -> np.ndarray:
    return apply_activation(z, activation).astype(F32, copy=False)
