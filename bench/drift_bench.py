"""Accuracy after drift: 0 s, 1 hour, 1 day, 1 month, 1 year after programming, with global
drift compensation as the ADC's gain (the default), as a digital factor after the ADC, and
without, over --seeds seeds (default 5; mean ± std), for the shipped Fashion-MNIST and digits models on the
default target. Writes bench/results/drift.json and bench/results/drift.png, and prints
the paired 0 s -> 1 day drop (mean ± standard error; also over seeds 0-4 alone).

    .venv/bin/python bench/drift_bench.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analogc.data import fit_to_input, load_dataset  # noqa: E402
from analogc.mapper import compile_model  # noqa: E402
from analogc.runtime.chip.chip import Chip  # noqa: E402
from analogc.runtime.chip.infer import Reference, accuracy, run_batched  # noqa: E402
from analogc.runtime.format.spec import load_target  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMES = {"0 s": 0.0, "1 hour": 3600.0, "1 day": 86400.0, "1 month": 30 * 86400.0, "1 year": 365 * 86400.0}
MODELS = {"fashion_mlp.onnx": "fashion-mnist", "digits_mlp.onnx": "digits"}


# (label, drift_compensation, drift_compensation_at)
SETTINGS = [("compensated", True, "adc_gain"), ("compensated digitally", True, "digital"), ("uncompensated", False, "adc_gain")]


def with_compensation(program, on: bool, where: str):
    program.meta["target"]["pcm"]["drift_compensation"] = on
    program.meta["target"]["pcm"]["drift_compensation_at"] = where
    return program


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "drift.json"))
    args = parser.parse_args()
    results = {}
    for model, data_name in MODELS.items():
        program = compile_model(ROOT / "models" / model, load_target(None), time_limit=2)
        info = program.meta["model"]["inputs"][0]
        data = load_dataset(data_name)
        feeds = {info["name"]: fit_to_input(data.x_test, info["shape"], data.name)}
        float_acc = accuracy(run_batched(Reference(program), feeds, 512)[0], data.y_test)
        rows = {}
        for setting, compensated, where in SETTINGS:
            with_compensation(program, compensated, where)
            for label, t in TIMES.items():
                accs = []
                for seed in range(args.seeds):
                    chip = Chip(program, seed=seed, drift_time=t)
                    accs.append(accuracy(run_batched(lambda f: list(chip.run(f).values()), feeds, 512)[0], data.y_test))
                key = f"{label}, {setting}"
                rows[key] = {
                    "time_s": t, "compensated": compensated, "compensation_at": where if compensated else None,
                    "mean": float(np.mean(accs)), "std": float(np.std(accs)), "runs": accs,
                }
                print(f"{model:<18} {key:<28} {np.mean(accs):.4f} ± {np.std(accs):.4f}", flush=True)
        results[model] = {
            "data": data_name, "float_accuracy": float_acc, "seeds": args.seeds,
            "w_max": {layer["name"]: layer["w_max"] for layer in program.layers},
            "w_max_rule": program.meta["target"]["cell"]["w_max_rule"],
            "w_max_design_time_s": program.meta["target"]["cell"]["w_max_design_time"],
            "w_max_quantile": program.meta["target"]["cell"]["w_max_quantile"],
            "adc_range": {layer["name"]: layer.get("adc_range", layer["w_max"]) for layer in program.layers},
            "accuracy": rows,
        }
        after = rows["0 s, compensated"]["mean"]
        for setting, _, _ in SETTINGS:
            results[model][f"drop_1_day_{setting.replace(' ', '_')}_pp"] = 100 * (after - rows[f"1 day, {setting}"]["mean"])
        drops = 100 * (np.array(rows["0 s, compensated"]["runs"]) - np.array(rows["1 day, compensated"]["runs"]))
        results[model]["drop_1_day_compensated_se_pp"] = float(drops.std(ddof=1) / np.sqrt(len(drops))) if len(drops) > 1 else 0.0
        first5 = drops[:5].mean()
        results[model]["drop_1_day_compensated_seeds_0_4_pp"] = float(first5)
        print(f"{model}: 1-day drop (compensated) {drops.mean():.2f} ± {results[model]['drop_1_day_compensated_se_pp']:.2f} pp over {len(drops)} seeds; seeds 0-4: {first5:.2f} pp", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    plot(results, Path(args.out).with_suffix(".png"))


def plot(results, path):
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2))
    for ax, (model, r) in zip(np.atleast_1d(axes), results.items()):
        labels = list(TIMES)
        styles = {"compensated": ("-o", "compensation as ADC gain (default)"), "compensated digitally": ("-.^", "compensation after the ADC"),
                  "uncompensated": ("--s", "no compensation")}
        for setting, _, _ in SETTINGS:
            style, text = styles[setting]
            mean = [r["accuracy"][f"{l}, {setting}"]["mean"] for l in labels]
            std = [r["accuracy"][f"{l}, {setting}"]["std"] for l in labels]
            ax.errorbar(range(len(labels)), mean, yerr=std, fmt=style, capsize=3, label=text)
        ax.axhline(r["float_accuracy"], color="grey", lw=1, ls=":", label="float (onnxruntime)")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_title(f"{model} ({r['data']})")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Accuracy after PCM drift (default pcm3t1c-2018 spec, mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
