"""Periphery kernels: numpy reference vs numba twin, per call and in the whole chip.

One fc1-sized block read (batch 256 × 250 outputs, read noise, output noise, 8-bit ADC),
one fc1 DAC pass (256 × 785), the normal generators, and the shipped Fashion-MNIST chip
(as bench/infer_bench.py) with the compiled kernels and with the numpy fallback. Writes
bench/results/kernels.json.

    .venv/bin/python bench/kernel_bench.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from analogc.data import fit_to_input, load_dataset
from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import run_batched
from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import counter_rng, dac_kernels, kernels, periphery

ROOT = Path(__file__).resolve().parents[1]


def best_us(fn, repeats, inner):
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best * 1e6


def per_call(repeats):
    spec = load_target(None).periphery
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((256, 250)) * 3).astype(np.float32)
    var = (rng.random((256, 250)) * 0.05**2).astype(np.float32)
    acc = np.zeros_like(y)
    x = rng.random((256, 785), dtype=np.float32)
    sfc = np.random.Generator(np.random.SFC64(0))
    z_cos, z_sin = np.empty(y.size // 2, np.float32), np.empty(y.size // 2, np.float32)
    rows = {
        "adc_numpy_us": best_us(lambda: kernels.adc_accumulate_numpy(acc, 0, y, var, 0.7, None, spec, 1), repeats, 20),
        "dac_numpy_us": best_us(lambda: periphery.dac(x, spec), repeats, 50),
        "normals_numpy_sfc64_us": best_us(lambda: sfc.standard_normal(y.shape, dtype=np.float32), repeats, 100),
        "normals_counter_numpy_us": best_us(lambda: counter_rng.counter_normal(1, y.shape), repeats, 20),
    }
    if kernels.HAVE_NUMBA:
        rows |= {
            "adc_compiled_us": best_us(lambda: kernels.adc_accumulate_compiled(acc, 0, y, var, 0.7, None, spec, 1), repeats, 100),
            "dac_compiled_us": best_us(lambda: dac_kernels.dac_compiled(x, spec), repeats, 100),
            "normals_counter_compiled_us": best_us(lambda: counter_rng._normal_pairs_nb(np.uint64(1), 0, z_cos, z_sin), repeats, 100),
        }
    return rows


def whole_chip(repeats):
    program = compile_model(ROOT / "models" / "fashion_mlp.onnx", load_target(None), time_limit=2)
    info = program.meta["model"]["inputs"][0]
    data = load_dataset("fashion-mnist")
    feeds = {info["name"]: fit_to_input(data.x_test, info["shape"], data.name)}
    chip = Chip(program, seed=0)
    n = len(data.x_test)
    rates = {}
    have = kernels.HAVE_NUMBA
    for label, compiled in (("numpy", False), ("compiled", True)):
        if compiled and not have:
            continue
        kernels.HAVE_NUMBA = compiled
        try:
            seconds = best_us(lambda: run_batched(lambda f: list(chip.run(f).values()), feeds, 256), repeats, 1) / 1e6
        finally:
            kernels.HAVE_NUMBA = have
        rates[f"chip_{label}_examples_per_s"] = n / seconds
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "kernels.json"))
    args = parser.parse_args()
    result = {"numba": kernels.HAVE_NUMBA, "block": "256 x 250 outputs", "dac": "256 x 785 inputs"}
    result |= per_call(args.repeats) | whole_chip(args.repeats)
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
