"""Inference speed: the simulated chip with every nonideality on vs onnxruntime.

Shipped Fashion-MNIST model (784-250-125-10), default target, batch 256, the whole
test set, both measured in this one run on this machine: passes alternate (chip,
onnxruntime, chip, ...) so both see the same load from other processes; reported are the
best pass of each, their ratio, and the spread of the ratio of neighbouring passes.
Writes bench/results/infer.json.

    .venv/bin/python bench/infer_bench.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from analogc.data import fit_to_input, load_dataset
from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import Reference, accuracy, run_batched
from analogc.runtime.format.spec import load_target

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def alternate(chip_fn, ort_fn, repeats):
    """(chip seconds per pass, onnxruntime seconds per pass, last outputs), interleaved."""
    chip_s, ort_s = [], []
    chip_fn(), ort_fn()  # warm-up: compiled kernels, thread pools, caches
    for _ in range(repeats):
        seconds, chip_out = timed(chip_fn)
        chip_s.append(seconds)
        seconds, ort_out = timed(ort_fn)
        ort_s.append(seconds)
    return chip_s, ort_s, chip_out, ort_out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "fashion_mlp.onnx"))
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "infer.json"))
    args = parser.parse_args()
    program = compile_model(args.model, load_target(None), time_limit=2)
    info = program.meta["model"]["inputs"][0]
    data = load_dataset(args.data)
    feeds = {info["name"]: fit_to_input(data.x_test, info["shape"], data.name)}
    n = len(data.x_test)
    chip = Chip(program, seed=0)
    reference = Reference(program)
    chip_s, ort_s, chip_out, ort_out = alternate(
        lambda: run_batched(lambda f: list(chip.run(f).values()), feeds, args.batch),
        lambda: run_batched(reference, feeds, args.batch),
        args.repeats,
    )
    chip_rate, ort_rate = n / min(chip_s), n / min(ort_s)
    pair_ratios = np.array(ort_s) / np.array(chip_s)
    result = {
        "model": Path(args.model).name,
        "data": data.name,
        "examples": n,
        "batch": args.batch,
        "nonidealities": "all on (default pcm3t1c-2018 spec: programming noise, drift at t0, read noise, DAC/ADC, output noise)",
        "chip_examples_per_s": chip_rate,
        "onnxruntime_examples_per_s": ort_rate,
        "ratio_chip_over_onnxruntime": chip_rate / ort_rate,
        "passes": args.repeats,
        "ratio_of_neighbouring_passes": {"min": float(pair_ratios.min()), "median": float(np.median(pair_ratios)), "max": float(pair_ratios.max())},
        "chip_examples_per_s_median": n / float(np.median(chip_s)),
        "onnxruntime_examples_per_s_median": n / float(np.median(ort_s)),
        "load_average_1min": os.getloadavg()[0],
        "chip_accuracy": accuracy(chip_out[0], data.y_test),
        "onnxruntime_accuracy": accuracy(ort_out[0], data.y_test),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "targets": {"chip_examples_per_s": 50000, "ratio": 0.2},
    }
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
