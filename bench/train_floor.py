"""What the chip's inference costs a float-trained network: the floor under the in-situ
training gap.

The chip's test accuracy after in-situ training is measured on the chip (noisy reads,
DAC/ADC), the float baseline's in float. So even a chip that learned exactly the float
weights would sit below the baseline by what inference on the chip costs them. For each
seed and epoch this trains the float baseline (the same runs as train_bench.py: same
network, initial weights, example order and η schedule), compiles its weights onto the
default target as a deployment would (the spec's weight-range rule), programs fresh
devices with the seed and measures the test accuracy on the chip at t₀. Writes
bench/results/train_floor_<data>.json.

    .venv/bin/python bench/train_floor.py [--data digits] [--seeds 20] [--epochs 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys

import numpy as np

import train_bench as tb


def deployed(program, trainer):
    """The program with the float baseline's weights in it, scaled by the spec's rule."""
    from analogc.mapper.emit import magnitude_scale
    from analogc.runtime.format.spec import spec_from_dict

    spec = spec_from_dict(program.meta["target"])
    out = copy.copy(program)
    out.meta = copy.deepcopy(program.meta)
    out.arrays = dict(program.arrays)
    entries = {entry["name"]: entry for entry in out.meta["layers"]}
    for l, layer in enumerate(trainer.layers):
        entry = entries[layer.name]
        k = entry["shape"][0]
        matrix = trainer.baseline.matrices[l]
        out.arrays[f"weight/{layer.name}"] = matrix[:k].copy()
        if entry["bias"] == "analog":
            out.arrays[f"bias/{layer.name}"] = matrix[k].copy()
        elif entry["bias"] == "digital":
            out.arrays[f"bias/{layer.name}"] = trainer.baseline.biases[l].copy()
        entry.update(magnitude_scale(np.abs(matrix).ravel(), spec))  # as the compiler scales a layer
    return out


def main() -> int:
    from analogc.data import fit_to_input, load_dataset
    from analogc.runtime.chip.chip import Chip
    from analogc.runtime.chip.infer import accuracy, run_batched
    from analogc.runtime.format.program import load_program
    from analogc.runtime.training.trainer import Trainer, TrainOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=list(tb.DATASETS))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    work = tb.RESULTS / "train_programs"
    work.mkdir(parents=True, exist_ok=True)
    program = load_program(tb.compile_model(tb.DATASETS[args.data], work))
    data = load_dataset(args.data)
    info = program.meta["model"]["inputs"][0]
    feeds = lambda x: {info["name"]: fit_to_input(x, info["shape"], data.name)}  # noqa: E731
    test = feeds(data.x_test)
    rows = []
    for seed in range(args.seeds):
        float_acc, on_chip = [], []

        class Measured(Trainer):
            def finish_epoch(self, examples):
                super().finish_epoch(examples)
                float_acc.append(self.position.history[-1]["software_baseline_accuracy"])
                chip = Chip(deployed(program, self), seed=seed)
                on_chip.append(accuracy(run_batched(lambda f: list(chip.run(f).values()), test, 512)[0], data.y_test))

        options = TrainOptions(epochs=args.epochs, init="random", seed=seed, baseline=True, data_name=data.name)
        result = Measured(program, feeds(data.x_train), data.y_train, test, data.y_test, options).train()
        trained = [row["test_accuracy"] for row in result["epochs"]]
        rows.append({"seed": seed, "float": float_acc, "float_weights_on_chip": on_chip, "trained_on_chip": trained})
        print(f"seed {seed}: float {np.round(float_acc, 4).tolist()} on chip {np.round(on_chip, 4).tolist()} trained {np.round(trained, 4).tolist()}", flush=True)
    mean = {key: np.mean([r[key] for r in rows], axis=0) for key in ("float", "float_weights_on_chip", "trained_on_chip")}
    summary = {
        "data": args.data, "seeds": args.seeds, "epochs": args.epochs,
        "mean": {k: v.round(5).tolist() for k, v in mean.items()},
        "floor_pp": (100 * (mean["float_weights_on_chip"] - mean["float"])).round(2).tolist(),
        "trained_gap_pp": (100 * (mean["trained_on_chip"] - mean["float"])).round(2).tolist(),
        "trained_vs_float_on_chip_pp": (100 * (mean["trained_on_chip"] - mean["float_weights_on_chip"])).round(2).tolist(),
        "runs": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    from analogc.atomic import write_text_atomic

    write_text_atomic(tb.RESULTS / f"train_floor_{args.data.replace('-', '_')}.json", json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
