"""In-situ training bench: chip vs float, ablations, speed (issue 6).

For Fashion-MNIST (models/fashion_mlp.onnx, 784-250-125-10 sigmoid, trained from random
init) and scikit-learn digits (models/digits_mlp.onnx, 64-32-10 ReLU), on the default
target with every nonideality on: test accuracy after every epoch next to the float
baseline (same network, initial weights, example order, learning rate), averaged over
seeds; then ablations, each against the same baseline: no polarity inversion, capacitor
pair only (no transfer), PCM pair only (2-PCM cell), a fixed transfer every 1k / 8k /
32k examples instead of the adaptive schedule, a transfer that reads the whole weight
(and the previous default: that, every 1k examples), 1% stuck devices (half stuck high,
half dead), the paper's 2 µS transfer offset, the residual kept but not verified, the
residual dropped with no deadband (the earlier default), and η fixed over the epochs
(against float runs with η fixed too). Speed: training examples/s of the main run next to the
float loop's, both timed in the same process.

Writes bench/results/train.json and bench/results/train.png (learning curves).

    .venv/bin/python bench/train_bench.py [--epochs 5] [--seeds 3] [--ablation-epochs 2] [--ablation-seeds 2] [--jobs 2]
    .venv/bin/python bench/train_bench.py --data digits --seeds 20 --ablation-seeds 8 --merge   # one dataset again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
FIXED = {"transfer_pulses": 0.0}  # a fixed interval instead of the default adaptive schedule
ABLATIONS = {
    "no_polarity_inversion": {"training": {"polarity_inversion": False}},
    "capacitor_only_no_transfer": {"training": {**FIXED, "transfer_interval": 0}},
    "pcm_pair_only": {"chip": {"cell": "pcm2"}},
    "transfer_every_1k": {"training": {**FIXED, "transfer_interval": 1000}},
    "transfer_every_8k": {"training": {**FIXED, "transfer_interval": 8000}},
    "transfer_every_32k": {"training": {**FIXED, "transfer_interval": 32000}},
    "transfer_reads_whole_weight": {"training": {"transfer_read": "weight"}},
    "previous_default_1k_whole_weight": {"training": {**FIXED, "transfer_interval": 1000, "transfer_read": "weight"}},
    "stuck_devices_1pct": {"pcm": {"stuck_high_fraction": 0.005, "dead_fraction": 0.005}},
    "transfer_offset_2uS": {"training": {"transfer_offset": 2.0}},
    "residual_kept_not_verified": {"training": {"transfer_residual": "keep"}},
    "residual_dropped_no_deadband": {"training": {"transfer_residual": "drop", "transfer_deadband": 0.0}},
    # η fixed over the epochs: the float baseline changes too, so this one brings its own.
    "fixed_learning_rate": {"training": {"learning_rate_decay": 1.0}},
}


def changes_float(overrides: dict) -> bool:
    """Whether an ablation changes the float baseline too (its SGD settings)."""
    return any(key.startswith("learning_rate") for key in overrides.get("training", {}))


DATASETS = {"fashion-mnist": "fashion_mlp.onnx", "digits": "digits_mlp.onnx"}


def compile_model(model: str, folder: Path) -> Path:
    from analogc.cli import main

    out = folder / (Path(model).stem + ".atp")
    # Always afresh: the program carries the target spec, so one compiled before a
    # default changed would silently train with the old defaults.
    assert main(["compile", str(REPO / "models" / model), "-o", str(out), "-q"]) == 0
    return out


def train_job(job: dict) -> dict:
    """One training run (a process of its own in the pool)."""
    from analogc.data import fit_to_input, load_dataset
    from analogc.runtime.format.program import load_program
    from analogc.runtime.training.trainer import Trainer, TrainOptions

    program = load_program(job["program"])
    for table, values in job["overrides"].items():
        program.meta["target"][table].update(values)
    data = load_dataset(job["data"])
    info = program.meta["model"]["inputs"][0]
    feeds = lambda x: {info["name"]: fit_to_input(x, info["shape"], data.name)}  # noqa: E731
    options = TrainOptions(epochs=job["epochs"], init="random", seed=job["seed"], baseline=job["baseline"], data_name=data.name)
    start = time.perf_counter()
    trainer = Trainer(program, feeds(data.x_train), data.y_train, feeds(data.x_test), data.y_test, options)
    result = trainer.train()
    result["wall_seconds"] = time.perf_counter() - start
    result["name"], result["overrides"] = job["name"], job["overrides"]
    print(f"  {job['data']:<14} {job['name']:<28} seed {job['seed']}: "
          + " ".join(f"{r['test_accuracy']:.4f}" for r in result["epochs"]), flush=True)
    return result


def mean_std(rows: list[list[float]]) -> tuple[list, list]:
    values = np.array(rows, dtype=float)
    return values.mean(axis=0).round(5).tolist(), values.std(axis=0).round(5).tolist()


def summarise(main_runs: list, ablation_runs: dict, baseline: list) -> dict:
    chip_mean, chip_std = mean_std([[r["test_accuracy"] for r in run["epochs"]] for run in main_runs])
    float_mean, float_std = mean_std(baseline)
    gap = (np.array(chip_mean) - np.array(float_mean)).round(5).tolist()
    out = {
        "seeds": [run["seed"] for run in main_runs],
        "chip_test_accuracy_mean": chip_mean,
        "chip_test_accuracy_std": chip_std,
        "float_test_accuracy_mean": float_mean,
        "float_test_accuracy_std": float_std,
        "gap_pp_per_epoch": [round(100 * g, 2) for g in gap],
        "within_0p5pp_every_epoch": bool(all(g >= -0.005 for g in gap)),
        "runs": main_runs,
        "ablations": {},
    }
    for name, runs in ablation_runs.items():
        acc_mean, acc_std = mean_std([[r["test_accuracy"] for r in run["epochs"]] for run in runs])
        epochs = len(acc_mean)
        # Against the float baseline of the same seeds (the ablations run on the first few).
        if changes_float(runs[0]["overrides"]):  # against its own float runs (same seeds, same SGD settings)
            same_seeds, _ = mean_std([[e["software_baseline_accuracy"] for e in run["epochs"]][:epochs] for run in runs])
        else:
            same_seeds, _ = mean_std([baseline[run["seed"]][:epochs] for run in runs])
        out["ablations"][name] = {
            "overrides": runs[0]["overrides"],
            "test_accuracy_mean": acc_mean,
            "test_accuracy_std": acc_std,
            "float_test_accuracy_mean": same_seeds,
            "gap_pp_per_epoch": [round(100 * (a - f), 2) for a, f in zip(acc_mean, same_seeds)],
            "pulses_total": runs[0]["epochs"][-1]["pulses_total"],
            "refreshed_pairs_total": runs[0]["epochs"][-1]["refreshed_pairs_total"],
        }
    return out


def speed(main_runs: list) -> dict:
    chip = [row["examples_per_s"] for run in main_runs for row in run["epochs"]]
    flt = [row["software_baseline_examples_per_s"] for run in main_runs for row in run["epochs"]]
    return {
        "chip_examples_per_s_median": float(np.median(chip)),
        "float_loop_examples_per_s_median": float(np.median(flt)),
        "ratio_median": float(np.median(np.array(chip) / np.array(flt))),
        "note": "both timed in the same process, epoch by epoch; the float loop is runtime/training/float_sgd.py (numpy, per-example, float32)",
    }


def speed_section(program_path: str, data_name: str, examples: int, repeats: int) -> dict:
    """Examples/s of the chip (every nonideality on), the numpy float loop (runtime/training/float_sgd.py)
    and a compiled float loop (bench/float_numba.py) on the same examples, interleaved:
    per round, one chip epoch of `examples` examples, the numpy loop on the same ones
    (timed by the trainer right after), then the numba loop on them; best of the rounds."""
    from analogc.data import fit_to_input, load_dataset
    from analogc.runtime.format.program import load_program
    from analogc.runtime.training.trainer import Trainer, TrainOptions

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from float_numba import NumbaFloatChain

    program = load_program(program_path)
    data = load_dataset(data_name)
    info = program.meta["model"]["inputs"][0]
    feeds = lambda x: {info["name"]: fit_to_input(x, info["shape"], data.name)}  # noqa: E731
    options = TrainOptions(epochs=0, init="random", seed=0, baseline=True, data_name=data.name, limit=examples)
    trainer = Trainer(program, feeds(data.x_train), data.y_train, feeds(data.x_test[:500]), data.y_test[:500], options)
    compiled = NumbaFloatChain(trainer.chain.layers, trainer.baseline.matrices)
    compiled.train(trainer.features, trainer.y_train, trainer.order(0)[:50], trainer.lr)  # compile (cached) outside the timing
    chip, numpy_loop, numba_loop = [], [], []
    load_before = os.getloadavg()
    for round_ in range(repeats):
        trainer.options.epochs = round_ + 1
        trainer.train()  # one more epoch: the chip, then the numpy loop on the same examples
        row = trainer.position.history[-1]
        chip.append(row["examples_per_s"])
        numpy_loop.append(row["software_baseline_examples_per_s"])
        order = trainer.order(round_)
        start = time.perf_counter()
        compiled.train(trainer.features, trainer.y_train, order, trainer.epoch_lr(round_))
        numba_loop.append(len(order) / (time.perf_counter() - start))
        print(f"  speed round {round_ + 1}: chip {chip[-1]:.0f}, numpy float {numpy_loop[-1]:.0f}, "
              f"numba float {numba_loop[-1]:.0f} examples/s", flush=True)
    best = {"chip": max(chip), "numpy": max(numpy_loop), "numba": max(numba_loop)}
    return {
        "examples_per_round": examples,
        "rounds": repeats,
        "chip_examples_per_s": [round(v, 1) for v in chip],
        "numpy_float_examples_per_s": [round(v, 1) for v in numpy_loop],
        "numba_float_examples_per_s": [round(v, 1) for v in numba_loop],
        "chip_over_numpy_float": round(best["chip"] / best["numpy"], 3),
        "chip_over_numba_float": round(best["chip"] / best["numba"], 3),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "note": "best of the rounds for each side; each round: chip epoch, numpy float loop, numba float loop on the same examples, one process",
    }


ABLATION_MARKERS = "v^<>DPX*hsp8o"  # with tab10's colours and three dash patterns: no two lines alike


ABLATION_COLOURS = [i for i in range(10) if i != 3]  # tab10 without red, the chip's own line


def ablation_style(k: int) -> dict:
    """The k-th ablation's colour, line pattern and marker: colours repeat every 9,
    patterns every 4 and markers every 13, so any two of the first 36 lines differ in
    at least two of the three."""
    import matplotlib.pyplot as plt

    colour = plt.cm.tab10(ABLATION_COLOURS[k % len(ABLATION_COLOURS)])
    return {"color": colour, "linestyle": ("--", ":", "-.", "-")[k % 4], "marker": ABLATION_MARKERS[k % len(ABLATION_MARKERS)]}


def training_figure(report: dict):
    """One panel per data set: float, the chip, and every ablation, by epoch; legend
    beside the panel, whole-number epoch ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(report["datasets"]), figsize=(9.5 * len(report["datasets"]), 5.0))
    axes = np.atleast_1d(axes)
    for ax, (name, res) in zip(axes, report["datasets"].items()):
        epochs = np.arange(1, len(res["chip_test_accuracy_mean"]) + 1)
        ax.errorbar(epochs, 100 * np.array(res["float_test_accuracy_mean"]), 100 * np.array(res["float_test_accuracy_std"]), color="black", marker="s", label="float baseline", capsize=3)
        ax.errorbar(epochs, 100 * np.array(res["chip_test_accuracy_mean"]), 100 * np.array(res["chip_test_accuracy_std"]), color="tab:red", marker="o", label="chip (default spec)", capsize=3, lw=2)
        for k, (label, ab) in enumerate(res["ablations"].items()):
            e = np.arange(1, len(ab["test_accuracy_mean"]) + 1)
            ax.plot(e, 100 * np.array(ab["test_accuracy_mean"]), markersize=5, alpha=0.9, label=label.replace("_", " "), **ablation_style(k))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_title(f"{name}: test accuracy after each epoch (mean ± std over seeds)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot(report: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    from analogc.atomic import atomic_path

    fig = training_figure(report)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ablation-epochs", type=int, default=2)
    parser.add_argument("--ablation-seeds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="processes for the ablation runs (the main runs go first, one at a time, for the speed figures)")
    parser.add_argument("--data", nargs="*", default=list(DATASETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--speed-only", action="store_true", help="only the interleaved speed comparison (merged into OUT/train.json)")
    parser.add_argument("--speed-examples", type=int, default=10000)
    parser.add_argument("--speed-rounds", type=int, default=3)
    parser.add_argument("--merge", action="store_true", help="keep the other datasets' results already in OUT/train.json (to re-run one dataset, e.g. with more seeds)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "train_programs"
    work.mkdir(exist_ok=True)
    report = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}, "datasets": {}}
    if args.speed_only:
        from analogc.atomic import write_text_atomic

        path = args.out / "train.json"
        report = json.loads(path.read_text()) if path.exists() else report
        for data in args.data:
            program = str(compile_model(DATASETS[data], work))
            print(f"{data}: speed ({args.speed_rounds} rounds of {args.speed_examples} examples)", flush=True)
            section = speed_section(program, data, args.speed_examples, args.speed_rounds)
            report["datasets"].setdefault(data, {})["speed_interleaved"] = section
            print(json.dumps(section, indent=1), flush=True)
        write_text_atomic(path, json.dumps(report, indent=1))
        return 0
    if args.merge and (args.out / "train.json").exists():
        kept = json.loads((args.out / "train.json").read_text())["datasets"]
        report["datasets"] = {name: res for name, res in kept.items() if name not in args.data}
    for data in args.data:
        program = str(compile_model(DATASETS[data], work))
        print(f"{data}: main runs ({args.epochs} epochs, {args.seeds} seeds, with the float baseline)", flush=True)
        main_runs = [train_job({"program": program, "data": data, "overrides": {}, "name": "default", "seed": s, "epochs": args.epochs, "baseline": True}) for s in range(args.seeds)]
        baseline = [[e["software_baseline_accuracy"] for e in run["epochs"]] for run in main_runs]
        print(f"{data}: ablations ({args.ablation_epochs} epochs, {args.ablation_seeds} seeds)", flush=True)
        jobs = [
            {"program": program, "data": data, "overrides": ov, "name": name, "seed": s, "epochs": args.ablation_epochs, "baseline": changes_float(ov)}
            for name, ov in ABLATIONS.items() for s in range(args.ablation_seeds)
        ]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            done = list(pool.map(train_job, jobs))
        ablation_runs = {}
        for job, res in zip(jobs, done):
            ablation_runs.setdefault(job["name"], []).append(res)
        res = summarise(main_runs, ablation_runs, baseline)
        res["speed"] = speed(main_runs)
        # Measured afresh with every full run: a --merge of one data set used to drop it.
        print(f"{data}: speed ({args.speed_rounds} rounds of {args.speed_examples} examples, interleaved)", flush=True)
        res["speed_interleaved"] = speed_section(program, data, args.speed_examples, args.speed_rounds)
        report["datasets"][data] = res
        print(json.dumps({k: res[k] for k in ("chip_test_accuracy_mean", "float_test_accuracy_mean", "gap_pp_per_epoch", "speed")}, indent=1), flush=True)
    from analogc.atomic import write_text_atomic

    write_text_atomic(args.out / "train.json", json.dumps(report, indent=1))
    plot(report, args.out / "train.png")
    print(f"wrote {args.out / 'train.json'} and {args.out / 'train.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
