"""Cost model: the shipped models on the default spec next to the 2018 paper's
projection (28,065 GOP/s/W, 3.6 TOP/s/mm²), the same priced with the paper-calibrated
[cost] table (bench/pcm3t1c-2018-paper.toml), and the run-time overhead of counting.

Per model: compile on pcm3t1c-2018 (seed 0), the static estimate of one inference, and
a default-mode run of its test set on the simulated chip whose exact counts must give
the same per-example figures. Overhead: the Fashion-MNIST model over its 10,000 test
images, batch 256, counting on vs off, interleaved, best of --repeats passes each (the
"on" time includes turning the tallies into counts once). Writes bench/results/cost.json.

    .venv/bin/python bench/cost_bench.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

from analogc.data import fit_to_input, load_dataset
from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import run_batched
from analogc.runtime.cost.pricing import peak_figures, price, static_block_counts
from analogc.runtime.format.spec import load_spec, load_target

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"gops_per_w": 28065.0, "gops_per_mm2": 3600.0, "source": "Ambrogio et al., Nature 558 (2018), projection"}
IBM = {
    "hermes_core_tops_per_w": 10.5,
    "hermes_core_tops_per_mm2": 1.59,
    "speech_chip_tops_per_w": 12.4,
    "source": "Le Gallo et al., Nature Electronics 2023 (64-core, per core); Ambrogio et al., Nature 2023 (speech chip, chip level)",
}
DATASET = {"fashion_mlp.onnx": "fashion-mnist", "fashion_cnn.onnx": "fashion-mnist", "digits_mlp.onnx": "digits", "digits_conv.onnx": "digits"}
FIGURES = ("energy_per_example_j", "latency_per_example_s", "throughput_examples_per_s", "gops_per_w", "gops_per_mm2")


def figures(report) -> dict:
    out = {k: getattr(report, k) for k in FIGURES}
    out["vs_paper_gops_per_w"] = (report.gops_per_w or 0) / PAPER["gops_per_w"]
    out["vs_paper_gops_per_mm2"] = (report.gops_per_mm2 or 0) / PAPER["gops_per_mm2"]
    energy = report.energy_j or 1.0
    out["energy_share_by_kind"] = {k: v / energy for k, v in report.energy_by_kind.items()}
    out["tiles_used"], out["area_mm2"] = report.tiles_used, report.area_mm2
    out["macs_per_example"] = report.ops // 2 // max(report.examples, 1)
    out["read_steps_per_example"] = report.counts_by_kind.get("read_steps", 0) // max(report.examples, 1)
    return out


def model_rows(spec, paper_cost) -> list[dict]:
    rows = []
    for path in sorted((ROOT / "models").glob("*.onnx")):
        program = compile_model(path, spec, time_limit=5, seed=0)
        counts = static_block_counts(program, "inference", 1)
        default = price(counts, spec, program, examples=1)
        paper = price(counts, dataclasses.replace(spec, cost=paper_cost), program, examples=1)
        data = load_dataset(DATASET.get(path.name, "digits"))
        info = program.meta["model"]["inputs"][0]
        feeds = {info["name"]: fit_to_input(data.x_test, info["shape"], data.name)}
        chip = Chip(program, seed=0)
        run_batched(lambda f: list(chip.run(f).values()), feeds, 256)
        run = price(chip.op_counts(), chip.spec, program, examples=len(data.x_test))
        rows.append(
            {
                "model": path.name,
                "layers": [tuple(l["shape"]) for l in program.layers],
                "host_segments": len(program.meta.get("host_segments", [])),
                "default_spec": figures(default),
                "paper_cost_table": figures(paper),
                "run": {
                    "data": data.name,
                    "examples": len(data.x_test),
                    **{k: getattr(run, k) for k in FIGURES},
                    "setup_energy_j": run.setup_energy_j,
                    "setup_time_s": run.setup_time_s,
                    "matches_static_estimate": all(
                        abs(getattr(run, k) - getattr(default, k)) <= 1e-9 * abs(getattr(default, k)) for k in FIGURES
                    ),
                },
            }
        )
    return rows


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def overhead(spec, repeats: int) -> dict:
    program = compile_model(ROOT / "models" / "fashion_mlp.onnx", spec, time_limit=5, seed=0)
    data = load_dataset("fashion-mnist")
    info = program.meta["model"]["inputs"][0]
    feeds = {info["name"]: fit_to_input(data.x_test, info["shape"], data.name)}
    chips = {True: Chip(program, seed=0, count_ops=True), False: Chip(program, seed=0, count_ops=False)}

    def one_pass(on: bool) -> float:
        chip = chips[on]
        start = time.perf_counter()
        run_batched(lambda f: list(chip.run(f).values()), feeds, 256)
        if on:
            chip.op_counts()
        return time.perf_counter() - start

    one_pass(False), one_pass(True)  # warm-up: compiled kernels, caches
    seconds = {True: [], False: []}
    for k in range(repeats):
        for on in ((False, True) if k % 2 == 0 else (True, False)):
            seconds[on].append(one_pass(on))
    ratios = sorted(b / a for a, b in zip(seconds[False], seconds[True]))
    op_counts_seconds = min(timed(chips[True].op_counts) for _ in range(5))
    return {
        "model": "fashion_mlp.onnx",
        "examples": len(data.x_test),
        "batch": 256,
        "repeats": repeats,
        "seconds_counting_off_best": min(seconds[False]),
        "seconds_counting_on_best": min(seconds[True]),
        "overhead_best_of": min(seconds[True]) / min(seconds[False]) - 1,
        "overhead_median_paired": ratios[len(ratios) // 2] - 1,
        "op_counts_seconds": op_counts_seconds,
        "target": "at most 0.10",
        "counting_work": "one dict update per layer load and per host call; op_counts() once at the end",
        "note": "2 shared cores, other engineers' jobs running: contended timings; the lead re-measures",
    }


def explanation(spec, paper_cost, models: list[dict]) -> str:
    """Which parameters make the difference to the paper's figures (numbers computed here)."""
    cost, chip = spec.cost, spec.chip
    cells, lines = chip.tile_rows * chip.tile_cols, chip.tile_rows + chip.tile_cols
    cell_nj = cells * cost.mvm_energy_per_mac * 1e9
    converter_nj = (chip.tile_rows * cost.dac_energy + chip.tile_cols * cost.adc_energy) * 1e9
    paper_area = 2 * cells / paper_cost.mvm_time / (PAPER["gops_per_mm2"] * 1e9)
    peak = peak_figures(spec)
    fashion = next((m for m in models if m["model"] == "fashion_mlp.onnx"), None)
    text = (
        f"At full tile the default [cost] gives {peak['gops_per_w']:,.0f} GOP/s/W ({peak['gops_per_w'] / PAPER['gops_per_w']:.2f}x the paper) "
        f"and {peak['gops_per_mm2']:,.0f} GOP/s/mm² ({peak['gops_per_mm2'] / PAPER['gops_per_mm2']:.2f}x): a {chip.tile_rows}x{chip.tile_cols} read "
        f"costs {cell_nj:.1f} nJ in the cells (mvm_energy_per_mac {cost.mvm_energy_per_mac:.3g} J, priced from IBM's measured 14 nm core where the "
        f"paper projected) plus {converter_nj:.1f} nJ in {lines} DAC/ADC conversions (dac_energy, adc_energy), and tile_area is "
        f"{cost.tile_area:.3g} mm² (the 64-core chip's core scaled by cells) where the paper's figure implies {paper_area:.2f} mm² at the same "
        f"{cost.mvm_time * 1e9:.0f} ns mvm_time. Per model the figures fall further for mapping reasons, not prices: "
    )
    if fashion:
        f = fashion["default_spec"]
        reads = f["macs_per_example"] / cells
        text += (
            f"fashion_mlp fills one tile but needs sequential reads (blocks sharing rows or columns), so each read uses a fraction of the cells "
            f"({reads:.2f} tiles' worth of MACs spread over {f['read_steps_per_example']} sequential reads: "
            f"{reads / max(f['read_steps_per_example'], 1):.0%} of the cells per read) and GOP/s/mm² is {f['vs_paper_gops_per_mm2']:.3f}x; "
        )
    text += (
        "small layers (digits_mlp) use under 1% of a tile and pay a DAC per row and an ADC per column for few MACs; "
        "the CNNs' conv layers read a small block once per output position (digits_conv 64 reads per image, fashion_cnn 884), "
        "a few of the tile's cells per read, most of the energy in their DAC and ADC conversions."
    )
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cost.json"))
    args = parser.parse_args()
    spec = load_target(None)
    paper_spec = load_spec(ROOT / "bench" / "pcm3t1c-2018-paper.toml")
    result = {
        "spec": spec.name,
        "paper": PAPER,
        "ibm_chips": IBM,
        "full_tile_peak": {
            "default_spec": peak_figures(spec),
            "paper_cost_table": peak_figures(dataclasses.replace(spec, cost=paper_spec.cost)),
        },
        "models": (models := model_rows(spec, paper_spec.cost)),
        "explanation": explanation(spec, paper_spec.cost, models),
        "overhead": overhead(spec, args.repeats),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=1, default=float))
    Path(args.out).write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
