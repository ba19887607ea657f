"""A CNN on the tiles: accuracy under drift, energy per example, and simulation speed.

The shipped LeNet-like Fashion-MNIST CNN (models/fashion_cnn.onnx: two 5x5 Convs and
two FC layers, all four on tiles), compiled for the default target with
`--replicate none`:
- accuracy on the test set: ideal (equals onnxruntime), default at the drift reference
  t0, after 1 day and after 1 year (drift compensation on, as the spec ships), over
  --seeds chip seeds (mean ± std; a seed draws programming error, read noise, drift
  exponents);
- the cost model's energy per example, latency and throughput (static estimate, every
  patch a tile read);
- speed: the default-mode chip against onnxruntime on the same model and batches, in
  this one run, passes alternating so both see the same machine load; the best pass of
  each and their ratio (target: at least 0.1).
Writes bench/results/conv.json.

    .venv/bin/python bench/conv_bench.py [--seeds 5] [--limit N] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from analogc.data import fit_to_input, load_dataset
from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import Reference, accuracy, run_batched
from analogc.runtime.cost.pricing import inference_estimate
from analogc.runtime.format.spec import load_target

ROOT = Path(__file__).resolve().parents[1]
TIMES = {"default (t0)": None, "1 day": 86400.0, "1 year": 365 * 86400.0}
BATCH = 256


def chip_outputs(chip, feeds):
    return run_batched(lambda f: list(chip.run(f).values()), feeds, BATCH)


def accuracy_rows(program, feeds, labels, seeds: int) -> dict:
    rows = {"ideal": {"mean": accuracy(chip_outputs(Chip(program, ideal=True, count_ops=False), feeds), labels), "std": 0.0, "seeds": 1}}
    for label, t in TIMES.items():
        values = [accuracy(chip_outputs(Chip(program, seed=s, drift_time=t, count_ops=False), feeds), labels) for s in range(seeds)]
        rows[label] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "seeds": seeds, "values": values}
        print(f"  {label:13s} {100 * rows[label]['mean']:.2f} ± {100 * rows[label]['std']:.2f} %", flush=True)
    return rows


def speed(program, feeds, repeats: int) -> dict:
    """Alternating passes of the default chip and onnxruntime over the same batches."""
    chip, reference = Chip(program, seed=0, count_ops=False), Reference(program)
    run_chip = lambda: chip_outputs(chip, feeds)  # noqa: E731
    run_ort = lambda: run_batched(reference, feeds, BATCH)  # noqa: E731
    run_chip(), run_ort()  # warm-up: compiled kernels, sessions
    chip_s, ort_s = [], []
    for _ in range(repeats):
        for fn, times in ((run_chip, chip_s), (run_ort, ort_s)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    n = len(next(iter(feeds.values())))
    chip_rate, ort_rate = n / min(chip_s), n / min(ort_s)
    return {
        "examples": n,
        "batch": BATCH,
        "chip_examples_per_s": chip_rate,
        "onnxruntime_examples_per_s": ort_rate,
        "ratio_chip_over_onnxruntime": chip_rate / ort_rate,
        "ratio_of_neighbouring_passes_median": float(np.median(np.array(ort_s) / np.array(chip_s))),
        "passes": repeats,
        "target_ratio": 0.1,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "fashion_cnn.onnx"))
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="test examples (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "conv.json"))
    args = parser.parse_args()
    spec = load_target(None)
    start = time.perf_counter()
    program = compile_model(args.model, spec, time_limit=5)
    compile_s = time.perf_counter() - start
    data = load_dataset(args.data)
    info = program.meta["model"]["inputs"][0]
    x, labels = data.x_test[: args.limit], data.y_test[: args.limit]
    feeds = {info["name"]: fit_to_input(x, info["shape"], data.name)}
    print(f"{Path(args.model).name} on {spec.name}: {len(labels)} test examples", flush=True)
    onnxruntime_accuracy = accuracy(run_batched(Reference(program), feeds, BATCH), labels)
    rows = accuracy_rows(program, feeds, labels, args.seeds)
    estimate = inference_estimate(program).to_json()
    timing = speed(program, feeds, args.repeats)
    result = {
        "model": Path(args.model).name,
        "data": data.name,
        "examples": len(labels),
        "target": spec.name,
        "replicate": "none",
        "compile_s": compile_s,
        "layers": [
            {"name": layer["name"], "kind": layer["kind"], "shape": layer["shape"], "reads_per_example": layer["reads_per_example"],
             "blocks": layer["blocks"], "tiles": layer["tiles"]}
            for layer in program.layers
        ],
        "tiles_used": program.meta["placement"]["tiles_used"],
        "onnxruntime_accuracy": onnxruntime_accuracy,
        "accuracy": rows,
        "cost": {key: estimate[key] for key in ("energy_per_example_j", "latency_per_example_s", "throughput_examples_per_s", "ops", "tiles_used", "area_mm2")},
        "speed": timing,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"onnxruntime accuracy {100 * onnxruntime_accuracy:.2f} %, ideal chip {100 * rows['ideal']['mean']:.2f} %")
    print(f"energy {estimate['energy_per_example_j'] * 1e6:.3g} µJ/example, latency {estimate['latency_per_example_s'] * 1e6:.3g} µs, "
          f"throughput {estimate['throughput_examples_per_s']:.4g} examples/s (cost model)")
    print(f"speed: chip {timing['chip_examples_per_s']:.0f} examples/s, onnxruntime {timing['onnxruntime_examples_per_s']:.0f}, "
          f"ratio {timing['ratio_chip_over_onnxruntime']:.3f} (target ≥ 0.1)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
