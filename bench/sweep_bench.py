"""A design-space sweep through `analogc sweep`: polarity inversion on/off × capacitor step
mismatch 0 / 10 / 30 / 50 % × 3 seeds, training the digits MLP in situ from random
weights (3 epochs of 1,438 examples), on a LocalCluster of 2 workers and again of 1
worker (same sweep, both timed: the speed-up of 2 workers over 1 on this machine).

Writes bench/results/sweep_bench.parquet and .csv (the 2-worker table),
sweep_bench.png (accuracy vs mismatch, one line per polarity setting), and sweep.json
(the sweep record with the timing of both runs).

    .venv/bin/python bench/sweep_bench.py [--epochs 3] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ANALOGC = [sys.executable, "-m", "analogc.cli"]
SWEEP = """# bench/sweep_bench.py: polarity inversion x capacitor step mismatch, digits, in-situ training
command = "train"
seeds = {seeds}

[train]
epochs = {epochs}
init = "random"

[grid]
"training.polarity_inversion" = [true, false]
"capacitor.step_mismatch" = [0.0, 0.1, 0.3, 0.5]
"""


def analogc(*args) -> str:
    done = subprocess.run([*ANALOGC, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"analogc {' '.join(map(str, args))} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def timed_sweep(program: Path, sweep: Path, out: Path, workers: int) -> dict:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    summary = json.loads(analogc("sweep", program, "--data", "digits", "--sweep", sweep, "--workers", workers, "-o", out, "--json"))
    wall = time.perf_counter() - start
    rows = pq.read_table(out / "results.parquet").to_pylist()
    job_seconds = sum(r["seconds"] for r in rows)
    print(f"{workers} worker(s): {wall:.1f} s wall ({summary['seconds']:.1f} s in the sweep, {job_seconds:.1f} s of jobs), {summary['ok']} ok, {summary['failed']} failed", flush=True)
    return {"workers": workers, "load_average_1min_before": load, "wall_s": wall, "sweep_s": summary["seconds"], "job_seconds_sum": job_seconds, "ok": summary["ok"], "failed": summary["failed"]}


def table_markdown(rows: list[dict]) -> str:
    """Mean ± sample std of accuracy per cell (mismatch x polarity inversion)."""
    mismatches = sorted({r["capacitor.step_mismatch"] for r in rows})
    lines = ["| step mismatch | polarity inversion on | off |", "|---|---|---|"]
    for m in mismatches:
        cells = []
        for pol in (True, False):
            acc = [r["accuracy"] for r in rows if r["capacitor.step_mismatch"] == m and r["training.polarity_inversion"] == pol]
            cells.append(f"{np.mean(acc):.4f} ± {np.std(acc, ddof=1):.4f}")
        lines.append(f"| {m:.0%} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        program = tmp / "digits.atp"
        analogc("compile", ROOT / "models" / "digits_mlp.onnx", "-o", program, "-q")
        sweep = tmp / "sweep.toml"
        sweep.write_text(SWEEP.format(seeds=args.seeds, epochs=args.epochs))
        one = timed_sweep(program, sweep, tmp / "w1", 1)
        two = timed_sweep(program, sweep, tmp / "w2", 2)
        one_rows = pq.read_table(tmp / "w1" / "results.parquet").to_pylist()
        two_rows = pq.read_table(tmp / "w2" / "results.parquet").to_pylist()
        same = [(r["job_id"], r["accuracy"]) for r in one_rows] == [(r["job_id"], r["accuracy"]) for r in two_rows]
        for suffix in ("parquet", "csv"):
            shutil.copyfile(tmp / "w2" / f"results.{suffix}", RESULTS / f"sweep_bench.{suffix}")
        analogc("sweep-plot", tmp / "w2", "--x", "capacitor.step_mismatch", "--y", "accuracy", "--hue", "training.polarity_inversion", "-o", RESULTS / "sweep_bench.png", "-q")
        record = json.loads((tmp / "w2" / "sweep.json").read_text())
    record["timing"] = {
        "one_worker": one, "two_workers": two, "speedup_wall": one["wall_s"] / two["wall_s"],
        "speedup_sweep": one["sweep_s"] / two["sweep_s"],
        "job_seconds_ratio_2_over_1": two["job_seconds_sum"] / one["job_seconds_sum"], "identical_results_1_and_2_workers": same,
        "note": "2-core machine shared with other work while measured: contended timings; wall time includes starting the LocalCluster and importing analogc in each worker",
    }
    (RESULTS / "sweep.json").write_text(json.dumps(record, indent=1))
    print(f"speed-up of 2 workers over 1: {record['timing']['speedup_wall']:.2f}x wall, {record['timing']['speedup_sweep']:.2f}x in the sweep (each job took {record['timing']['job_seconds_ratio_2_over_1']:.2f}x as long with 2 workers); same results with 1 and 2 workers: {same}")
    print(table_markdown(two_rows))


if __name__ == "__main__":
    main()
