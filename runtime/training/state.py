"""A training run's checkpoint: what `Trainer` saves, and its checked restore.

The functions take the trainer (they were its methods): the device state, the
presented weights, pulse tallies, digital biases, the float baseline, the transfer
generator's state, the cost counters and the position in the run. Every value read
back is checked before it is used, so a damaged checkpoint is one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime.cost.pricing import OpCounts
from analogc.runtime.format.program_check import device_value_problem
from analogc.runtime.format.vocabulary import DEVICE_FIELDS as FIELDS
from analogc.runtime.training.checkpoint import load_checkpoint, save_checkpoint, settings_difference

F32 = np.float32


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


def save_state(trainer) -> None:
    """Write the trainer's checkpoint (devices, counters, generator, position)."""
    arrays = {}
    for layer in trainer.layers:
        arrays.update(layer.state.to_arrays(layer.name))
        arrays[f"presented/{layer.name}"] = layer.w
        arrays[f"pulse_tally/{layer.name}"] = layer.pulse_tally
        if layer.digital_bias is not None:
            arrays[f"digital_bias/{layer.name}"] = layer.digital_bias
    if trainer.baseline is not None:
        for l, m in enumerate(trainer.baseline.matrices):
            arrays[f"baseline/matrix/{l}"] = m
            if trainer.baseline.biases[l] is not None:
                arrays[f"baseline/bias/{l}"] = trainer.baseline.biases[l]
    pos = trainer.position
    meta = {
        "fingerprint": trainer.fingerprint,
        "settings": trainer.settings,
        "position": {k: getattr(pos, k) for k in ("epoch", "index", "total", "loss_sum", "correct", "transfers", "seconds", "history")},
        "rng": trainer.rng.bit_generator.state,
        "program_costs": trainer.program_costs.to_json(),
        "layers": {
            l.name: {"sign": l.state.sign, "examples_since_transfer": l.state.examples_since_transfer,
                     "pulses_since_transfer": l.state.pulses_since_transfer, "transfers": l.transfers,
                     "pulses": l.pulses, "pcm_iterations": l.pcm_iterations, "refreshed": l.refreshed}
            for l in trainer.layers
        },
    }
    save_checkpoint(trainer.options.checkpoint_dir, arrays, meta)

def restore_state(trainer) -> None:
    """Resume from the trainer's checkpoint folder, if it holds a checkpoint of this run."""
    if not trainer.options.checkpoint_dir:
        raise AnalogcError("--resume needs --checkpoint DIR")
    loaded = load_checkpoint(trainer.options.checkpoint_dir)
    if loaded is None:
        return  # nothing saved yet: start from the beginning
    arrays, meta = loaded
    where = f"{trainer.options.checkpoint_dir}/checkpoint.npz"
    if meta.get("fingerprint") != trainer.fingerprint:
        raise AnalogcError(f"{where}: this checkpoint belongs to another run: {settings_difference(meta.get('settings'), trainer.settings)}")
    try:
        load_state(trainer, arrays, meta)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError, AnalogcError) as exc:
        raise AnalogcError(f"{where}: checkpoint is incomplete or damaged ({exc})") from None

def load_state(trainer, arrays: dict, meta: dict) -> None:
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

    for layer in trainer.layers:
        info = meta["layers"][layer.name]
        for name, dtype in FIELDS.items():
            setattr(layer.state, name, array(f"device/{layer.name}/{name}", layer.state.shape, dtype))
        state = layer.state
        problem = device_value_problem(layer.name, lambda field: getattr(state, field), trainer.spec.pcm.g_max)
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
    if trainer.baseline is not None:
        for l, matrix in enumerate(trainer.baseline.matrices):
            trainer.baseline.matrices[l] = array(f"baseline/matrix/{l}", matrix.shape, F32)
            if trainer.baseline.biases[l] is not None:
                trainer.baseline.biases[l] = array(f"baseline/bias/{l}", trainer.baseline.biases[l].shape, F32)
    trainer.rng.bit_generator.state = meta["rng"]
    trainer.program_costs = OpCounts()
    for row in meta["program_costs"]:
        tile = row["tile"]
        trainer.program_costs.add(str(row["phase"]), str(row["layer"]), None if tile is None else (count(tile[0]), count(tile[1])),
                               **{str(k): count(v) for k, v in dict(row["counts"]).items()})
    p = meta["position"]
    position = Position(count(p["epoch"]), count(p["index"]), count(p["total"]), number(p["loss_sum"]), count(p["correct"]),
                        count(p["transfers"]), number(p["seconds"]), list(p["history"]))
    if position.epoch > trainer.options.epochs or len(position.history) != position.epoch:
        raise ValueError(f"position: epoch {position.epoch} with {len(position.history)} epochs of history")
    if position.epoch < trainer.options.epochs and position.index > len(trainer.order(position.epoch)):
        raise ValueError(f"position: example {position.index} is past the epoch's end")
    for row in position.history:
        check_history_row(row, count, number)
    trainer.position = position


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
