"""What the 0 s -> 1 day accuracy drop is made of: one effect changed at a time, paired seeds
(the same seed programs the same devices at both times), drift compensation on. Prints
and writes bench/results/drift_ablation_<model>.json.

    .venv/bin/python bench/drift_ablation.py [--model digits_mlp.onnx --data digits --seeds 20]

Two rows change the physics on purpose, for measurement only (monkeypatched here, never
switches of the simulator): the read noise's time factor frozen at t0, and a calibration
read that uses the expected conductances instead of one noisy read.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import numpy as np

from analogc.data import fit_to_input, load_dataset
from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import accuracy, run_batched
from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import devices

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0
QUANTILE = {"cell.w_max_rule": "quantile", "periphery.adc_range": "w_max"}
OLD = {**QUANTILE, "cell.w_max_quantile": 1.0, "pcm.drift_compensation_at": "digital"}
PREVIOUS = {**QUANTILE, "cell.w_max_quantile": 0.999, "pcm.drift_compensation_at": "adc_gain"}
NEW = {"cell.w_max_rule": "min_error", "cell.w_max_quantile": 0.999, "periphery.adc_range": "quantile", "pcm.drift_compensation_at": "adc_gain"}
NO_SPREAD = {"pcm.drift_nu_std_a": 0.0, "pcm.drift_nu_std_b": 0.0, "pcm.drift_nu_std_lo": 0.0, "pcm.drift_nu_std_hi": 0.0}
VARIANTS = {  # name: (spec changes, measurement-only patches)
    "old defaults": (OLD, []),
    "old defaults, calibration without read noise": (OLD, ["expected_calibration"]),
    "old + compensation as ADC gain": ({**OLD, "pcm.drift_compensation_at": "adc_gain"}, []),
    "old + w_max_quantile 0.999": ({**OLD, "cell.w_max_quantile": 0.999}, []),
    "previous defaults (w_max at the 0.999 quantile, ADC gain)": (PREVIOUS, []),
    "previous + ADC range at the 0.999 quantile (= w_max)": ({**PREVIOUS, "periphery.adc_range": "quantile"}, []),
    "min_error w_max, ADC range tied to it": ({**NEW, "periphery.adc_range": "w_max"}, []),
    **{f"min_error, design time {label}": ({**NEW, "cell.w_max_design_time": t}, []) for label, t in (("1 hour", 3600.0), ("1 day", DAY))},
    "new defaults": (NEW, []),
    "new, no drift": ({**NEW, "pcm.drift": False}, []),
    "new, no read noise": ({**NEW, "pcm.read_noise": False}, []),
    "new, read noise time factor frozen at t0": (NEW, ["frozen_read_noise"]),
    "new, sigma_nu = 0": ({**NEW, **NO_SPREAD}, []),
    "new, sigma_nu = 0, read noise frozen at t0": ({**NEW, **NO_SPREAD}, ["frozen_read_noise"]),
    "new, no output noise": ({**NEW, "periphery.output_noise_enabled": False}, []),
    **{f"w_max_quantile {q}, ADC gain": ({**PREVIOUS, "cell.w_max_quantile": q}, []) for q in (1.0, 0.995, 0.99, 0.98)},
}
ORIGINAL_Q, ORIGINAL_TILE_CURRENT = devices.read_noise_q, Chip.tile_current


def frozen_q(g, t, pcm):
    return ORIGINAL_Q(g, pcm.drift_t0, pcm)


class NoNoise:
    """Normals that are all 0: the calibration read's expected value."""

    def standard_normal(self, size):
        return np.zeros(size)


def expected_tile_current(self, blocks, t, rng):
    return ORIGINAL_TILE_CURRENT(self, blocks, t, NoNoise())


def program_for(model_path, changes):
    spec = load_target(None)
    for dotted, value in changes.items():  # compile-time keys (the weight and ADC ranges) too
        table, key = dotted.split(".")
        spec = dataclasses.replace(spec, **{table: dataclasses.replace(getattr(spec, table), **{key: value})})
    program = compile_model(model_path, spec, time_limit=2)
    program = copy.deepcopy(program)
    for dotted, value in changes.items():
        table, key = dotted.split(".")
        program.meta["target"][table][key] = value
    return program


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits_mlp.onnx")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    data = load_dataset(args.data)
    results = {}
    for name, (changes, patches) in VARIANTS.items():
        program = program_for(ROOT / "models" / args.model, changes)
        info = program.meta["model"]["inputs"][0]
        feeds = {info["name"]: fit_to_input(data.x_test, info["shape"], data.name)}
        devices.read_noise_q = frozen_q if "frozen_read_noise" in patches else ORIGINAL_Q
        Chip.tile_current = expected_tile_current if "expected_calibration" in patches else ORIGINAL_TILE_CURRENT
        acc = {}
        for t in (0.0, DAY):
            acc[t] = []
            for seed in range(args.seeds):
                chip = Chip(program, seed=seed, drift_time=t)
                acc[t].append(accuracy(run_batched(lambda f: list(chip.run(f).values()), feeds, 512)[0], data.y_test))
        drop = 100 * (np.array(acc[0.0]) - np.array(acc[DAY]))
        se = float(drop.std(ddof=1) / np.sqrt(len(drop))) if len(drop) > 1 else 0.0
        results[name] = {"t0": float(np.mean(acc[0.0])), "one_day": float(np.mean(acc[DAY])), "drop_pp": float(drop.mean()), "drop_se_pp": se}
        print(f"{name:48s} 0 s {100 * np.mean(acc[0.0]):6.2f}  1 day {100 * np.mean(acc[DAY]):6.2f}  drop {drop.mean():5.2f} ± {se:.2f} pp", flush=True)
    devices.read_noise_q, Chip.tile_current = ORIGINAL_Q, ORIGINAL_TILE_CURRENT
    out = ROOT / "bench" / "results" / f"drift_ablation_{Path(args.model).stem}.json"
    out.write_text(json.dumps({"model": args.model, "data": args.data, "seeds": args.seeds, "variants": results}, indent=1))


if __name__ == "__main__":
    main()
