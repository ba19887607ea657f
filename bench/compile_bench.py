"""Compile benchmark: tiles vs lower bound and traffic vs first fit, for many models.

The set: the shipped models (full ONNX compile), the VGG19 fully-connected stack
(25088x4096, 4096x4096, 4096x1000 with random weights, placement on a grid just big
enough) and 50 random MLPs (2 to 6 layers, widths 10 to 5000, seeded), each on the
default and the `tiny` target with the grid enlarged to fit. Writes
bench/results/compile.json and prints a table.

    .venv/bin/python bench/compile_bench.py [--time-limit 10] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from analogc.mapper import compile_model
from analogc.mapper.partition import partition
from analogc.mapper.place import lower_bound_tiles
from analogc.mapper.placers import place
from analogc.runtime.format.spec import load_target

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Layer:
    """Just what partition and placement read from a Dense layer."""

    name: str
    input: str
    output: str
    shape: tuple
    bias: object = 0


def mlp_layers(widths: list[int]) -> list[Layer]:
    return [Layer(f"fc{i}", f"t{i}", f"t{i + 1}", (k, n)) for i, (k, n) in enumerate(zip(widths, widths[1:]))]


def grid_for(layers, spec):
    """The spec with a square grid about 30% larger than the lower bound needs."""
    blocks = partition(layers, spec)
    side = max(2, math.ceil(math.sqrt(1.3 * lower_bound_tiles(blocks, spec) + 4)))
    chip = dataclasses.replace(spec.chip, grid_rows=side, grid_cols=side)
    return dataclasses.replace(spec, chip=chip)


def bench_layers(name, layers, spec, time_limit) -> dict:
    spec = grid_for(layers, spec)
    blocks = partition(layers, spec)
    start = time.perf_counter()
    plan = place(blocks, layers, spec, placer="cpsat", time_limit=time_limit, seed=0)
    seconds = time.perf_counter() - start
    greedy = place(blocks, layers, spec, placer="greedy")
    return {
        "model": name,
        "target": spec.name,
        "grid": [spec.chip.grid_rows, spec.chip.grid_cols],
        "layers": [list(l.shape) for l in layers],
        "blocks": len(blocks),
        "tiles_used": plan.tiles_used,
        "lower_bound_tiles": lower_bound_tiles(blocks, spec),
        "tiles_greedy": greedy.tiles_used,
        "tiles_proven_optimal": plan.extra["tiles_proven_optimal"],
        "traffic": plan.extra["traffic"],
        "traffic_greedy": greedy.extra["traffic"],
        "seconds": seconds,
    }


def random_mlps(count: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    nets = []
    for _ in range(count):
        depth = int(rng.integers(2, 7))  # layers
        widths = np.exp(rng.uniform(np.log(10), np.log(5000), size=depth + 1)).astype(int)
        nets.append([int(w) for w in widths])
    return nets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="5 random MLPs instead of 50")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "compile.json"))
    args = parser.parse_args()
    rows = []
    for model in sorted((ROOT / "models").glob("*.onnx")):
        start = time.perf_counter()
        program = compile_model(model, load_target(None), time_limit=args.time_limit)
        p = program.meta["placement"]
        rows.append({"model": model.name, "target": "pcm3t1c-2018", "blocks": len(program.blocks), "tiles_used": p["tiles_used"],
                     "lower_bound_tiles": p["lower_bound_tiles"], "tiles_proven_optimal": p["details"].get("tiles_proven_optimal"),
                     "traffic": p["traffic"], "traffic_greedy": p["traffic_greedy"], "seconds": time.perf_counter() - start,
                     "layers": [l["shape"] for l in program.layers]})
        print_row(rows[-1])
    vgg = mlp_layers([25088, 4096, 4096, 1000])
    rows.append(bench_layers("vgg19-fc", vgg, load_target(None), args.time_limit))
    print_row(rows[-1])
    for i, widths in enumerate(random_mlps(5 if args.quick else 50)):
        for target in ("pcm3t1c-2018", "tiny"):
            if target == "tiny" and sum(k * n for k, n in zip(widths, widths[1:])) > 4_000_000:
                continue  # thousands of 64x64 tiles: the bench skips, the note says so
            rows.append(bench_layers(f"mlp{i:02d}", mlp_layers(widths), load_target(target), args.time_limit))
            print_row(rows[-1])
    summary = summarize(rows)
    print(json.dumps(summary, indent=1))
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


def print_row(row: dict) -> None:
    ratio = row["traffic"] / row["traffic_greedy"] if row["traffic_greedy"] else float("nan")
    print(f"{row['model']:<22} {row['target']:<13} blocks {row['blocks']:>5} tiles {row['tiles_used']:>5} "
          f"(lb {row['lower_bound_tiles']:>5}, proven {row['tiles_proven_optimal']}) traffic/greedy {ratio:5.2f} "
          f"{row['seconds']:6.2f} s", flush=True)


def summarize(rows: list[dict]) -> dict:
    at_bound = [r["tiles_used"] == r["lower_bound_tiles"] for r in rows]
    at_optimum = [r["tiles_used"] == r["lower_bound_tiles"] or bool(r["tiles_proven_optimal"]) for r in rows]
    multi = [r for r in rows if len(r["layers"]) > 1 and r["traffic_greedy"]]
    ratios = [r["traffic"] / r["traffic_greedy"] for r in multi]
    return {
        "models": len(rows),
        "tiles_at_lower_bound_fraction": float(np.mean(at_bound)),
        "tiles_proven_optimal_fraction": float(np.mean(at_optimum)),
        "traffic_vs_greedy_mean_multilayer": float(np.mean(ratios)) if ratios else None,
        "traffic_vs_greedy_median_multilayer": float(np.median(ratios)) if ratios else None,
        "max_seconds": max(r["seconds"] for r in rows),
        "vgg19_fc": next((r for r in rows if r["model"] == "vgg19-fc"), None),
    }


if __name__ == "__main__":
    sys.exit(main())
