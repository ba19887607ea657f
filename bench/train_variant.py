"""One training variant (spec keys changed) against the float baseline of the same seeds:
the quick way to explore the in-situ training scheme before a full `train_bench.py`.

The float baseline is trained in the same run (same seed, initial weights, example order
and learning-rate schedule; it is cheap next to the chip). Each run appends one JSON line to
bench/results/train_variants.jsonl: name, seed, chip and float accuracy per epoch, gap.

    .venv/bin/python bench/train_variant.py NAME --data fashion-mnist --seeds 0 1 2 --epochs 2 \\
        --set training.transfer_pulses=125 --set training.transfer_read=capacitor
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib

import train_bench as tb


def parse_setting(text: str) -> tuple[str, str, object]:
    dotted, _, value = text.partition("=")
    table, _, key = dotted.partition(".")
    if not (table and key and value):
        raise SystemExit(f"--set wants table.key=value, got {text!r}")
    return table, key, tomllib.loads(f"v = {value}")["v"]  # TOML literal: 125, true, "capacitor"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--data", default="fashion-mnist", choices=list(tb.DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE")
    args = parser.parse_args()
    overrides: dict = {}
    for text in args.set:
        table, key, value = parse_setting(text)
        overrides.setdefault(table, {})[key] = value
    work = tb.RESULTS / "train_programs"
    work.mkdir(parents=True, exist_ok=True)
    program = str(tb.compile_model(tb.DATASETS[args.data], work))
    for seed in args.seeds:
        job = {"program": program, "data": args.data, "overrides": overrides, "name": args.name, "seed": seed,
               "epochs": args.epochs, "baseline": True}
        result = tb.train_job(job)
        chip = [e["test_accuracy"] for e in result["epochs"]]
        floats = [e["software_baseline_accuracy"] for e in result["epochs"]]
        row = {"name": args.name, "data": args.data, "seed": seed, "overrides": overrides, "chip": chip, "float": floats,
               "gap_pp": [round(100 * (c - f), 2) for c, f in zip(chip, floats)],
               "transfers_by_layer": result["epochs"][-1].get("transfers_by_layer")}
        print(json.dumps(row), flush=True)
        with open(tb.RESULTS / "train_variants.jsonl", "a") as out:
            out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
