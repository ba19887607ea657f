"""Replication (`compile --replicate`): accuracy with and without accuracy copies, and the
cost model's throughput with and without throughput copies, on the shipped models.

Accuracy: ideal, default (read at the drift reference t0), after 1 day and after 1 year,
with `--replicate none` and `--replicate accuracy`, over --seeds chip seeds (mean ± std;
the seed draws programming error, read noise, drift exponents), and the outputs' mean
absolute error against float relative to the outputs' mean magnitude. Cost: the static
estimate of one inference (energy per example, latency, throughput, tiles, area) with
`--replicate none`, `throughput` and `accuracy`. Writes bench/results/replicate.json.

    .venv/bin/python bench/replicate_bench.py [--seeds 5] [--models digits_mlp.onnx ...]
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
from analogc.runtime.chip.infer import Reference, accuracy, run_batched
from analogc.runtime.cost.pricing import inference_estimate
from analogc.runtime.format.spec import load_target

ROOT = Path(__file__).resolve().parents[1]
TIMES = {"default (t0)": None, "1 day": 86400.0, "1 year": 365 * 86400.0}
DATA_BY_PREFIX = {"digits": "digits", "fashion": "fashion-mnist"}  # a shipped model's data set, by its file name


def shipped_models() -> dict:
    """Every model in models/ whose name says its data set: {file name: data set}."""
    found = {}
    for path in sorted((ROOT / "models").glob("*.onnx")):
        data = next((d for prefix, d in DATA_BY_PREFIX.items() if path.name.startswith(prefix)), None)
        if data:
            found[path.name] = data
    return found


def chip_accuracy(program, feeds, labels, seed, reference, ideal=False, drift_time=None) -> tuple[float, float]:
    """Top-1 accuracy, and the outputs' error against float: mean |y − y_float| over mean |y_float|."""
    chip = Chip(program, ideal=ideal, seed=seed, drift_time=drift_time, count_ops=False)
    outputs = run_batched(lambda f: list(chip.run(f).values()), feeds, 512)[0]
    return accuracy(outputs, labels), float(np.abs(outputs - reference).mean() / np.abs(reference).mean())


def cost_row(program) -> dict:
    report = inference_estimate(program).to_json()
    return {
        "copies": {layer["name"]: layer.get("copies", 1) for layer in program.layers},
        "reads_per_example": {layer["name"]: layer.get("reads_per_example", 1) for layer in program.layers},
        "tiles_used": report["tiles_used"],
        "area_mm2": report["area_mm2"],
        "energy_per_example_j": report["energy_per_example_j"],
        "latency_per_example_s": report["latency_per_example_s"],
        "throughput_examples_per_s": report["throughput_examples_per_s"],
        "read_steps_per_example": report["counts"].get("read_steps", 0),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=None, help="file names in models/ (default: every shipped digits*/fashion* model)")
    parser.add_argument("--target", default=None, help="target spec (default: the shipped default)")
    parser.add_argument("--limit", type=int, default=None, help="first N test examples only (the CNN reads every patch of every copy)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "replicate.json"))
    args = parser.parse_args()
    spec = load_target(args.target)
    results = {"target": spec.name, "models": {}}
    if Path(args.out).exists():  # models measured before (another --models run) stay
        previous = json.loads(Path(args.out).read_text())
        if previous.get("target") == spec.name:
            results["models"] = previous.get("models", {})
            for row in results["models"].values():  # files written before rows said their seeds
                row.setdefault("seeds", previous.get("seeds"))
    models = shipped_models()
    for model in args.models or list(models):
        path = ROOT / "models" / model
        if not path.exists():
            print(f"{model}: not in models/, skipped", flush=True)
            continue
        data = load_dataset(models[model])
        programs, compile_s = {}, {}
        for mode in ("none", "throughput", "accuracy"):
            start = time.perf_counter()
            programs[mode] = compile_model(path, spec, time_limit=2, replicate=mode)
            compile_s[mode] = time.perf_counter() - start
        info = programs["none"].meta["model"]["inputs"][0]
        x_test, y_test = data.x_test[: args.limit], data.y_test[: args.limit]
        feeds = {info["name"]: fit_to_input(x_test, info["shape"], data.name)}
        row = {"data": data.name, "examples": len(y_test), "seeds": args.seeds, "compile_s": compile_s}
        reference = run_batched(Reference(programs["none"]), feeds, 512)[0]
        row["float_accuracy"] = accuracy(reference, y_test)
        row["cost"] = {mode: cost_row(program) for mode, program in programs.items()}
        for mode in ("none", "throughput", "accuracy"):
            c = row["cost"][mode]
            print(f"{model:<18} cost {mode:<10} tiles {c['tiles_used']:>3}  {c['read_steps_per_example']:>6} read steps/example  "
                  f"{c['throughput_examples_per_s']:.4g} examples/s  {c['energy_per_example_j'] * 1e9:.4g} nJ/example", flush=True)
        row["accuracy"] = {}
        for mode in ("none", "accuracy"):
            program = programs[mode]
            entry = {"copies": max(layer.get("copies", 1) for layer in program.layers), "tiles_used": program.meta["placement"]["tiles_used"]}
            entry["ideal"] = chip_accuracy(program, feeds, y_test, 0, reference, ideal=True)[0]
            for label, t in TIMES.items():
                runs, errors = zip(*(chip_accuracy(program, feeds, y_test, seed, reference, drift_time=t) for seed in range(args.seeds)))
                entry[label] = {"mean": float(np.mean(runs)), "std": float(np.std(runs)), "runs": list(runs),
                                "output_error_mean": float(np.mean(errors)), "output_error_std": float(np.std(errors))}
                print(f"{model:<18} replicate {mode:<9} (k={entry['copies']:>2}) {label:<13} accuracy {np.mean(runs):.4f} ± {np.std(runs):.4f}  "
                      f"output error vs float {np.mean(errors):.4f} ± {np.std(errors):.4f}", flush=True)
            row["accuracy"][mode] = entry
        results["models"][model] = row
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
