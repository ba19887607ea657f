"""The loader fuzzing properties of tests/fuzz_properties.py, run far longer than the
test suite does: N random (not derandomized) examples per property.

    python bench/fuzz_bench.py --examples 5000 [--seed S] [--only onnx_bytes toml ...]

Writes bench/results/fuzz.json: per property the examples run, seconds, examples/s,
how the commands ended (exit statuses) and the failure found, if any (hypothesis
shrinks it and the message shows the smallest failing input).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, seed, settings  # noqa: E402

from tests import fuzz_properties as fp  # noqa: E402


def run_property(name: str, examples: int, random_seed: int | None) -> dict:
    fp.STATS.clear()
    prop = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)(fp.PROPERTIES[name])
    if random_seed is not None:
        prop = seed(random_seed)(prop)
    start = time.perf_counter()
    failure = None
    try:
        prop()
    except Exception as exc:  # a failing example: record it, go on with the next property
        failure = " ".join(str(exc).split())[:2000]
    seconds = time.perf_counter() - start
    commands = sum(fp.STATS.values())
    return {
        "examples": examples,
        "seconds": round(seconds, 2),
        "examples_per_s": round(examples / seconds, 1) if seconds else None,
        "commands_run": commands,
        "exit_statuses": {f"{cmd} {code}": n for (cmd, code), n in sorted(fp.STATS.items())},
        "failure": failure,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="examples per property (default 5000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    parser.add_argument("--only", nargs="*", choices=sorted(fp.PROPERTIES), help="run these properties only")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "fuzz.json"))
    parser.add_argument("--max-memory-gib", type=float, default=8.0,
                        help="address-space limit of this process (default 8): an allocation analogc does not "
                             "check becomes a MemoryError, reported as a failure, instead of swapping the machine")
    args = parser.parse_args()
    limit = int(args.max_memory_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    results = {}
    for name in args.only or fp.PROPERTIES:
        results[name] = run_property(name, args.examples, args.seed)
        row = results[name]
        print(f"{name:15s} {row['examples']:6d} examples  {row['seconds']:8.1f} s  {row['examples_per_s']:7.1f}/s  "
              f"{'FAILED: ' + row['failure'][:300] if row['failure'] else 'ok'}  {row['exit_statuses']}", flush=True)
    total = sum(r["examples"] for r in results.values())
    seconds = sum(r["seconds"] for r in results.values())
    summary = {
        "examples_per_property": args.examples,
        "examples": total,
        "seconds": round(seconds, 1),
        "examples_per_s": round(total / seconds, 1) if seconds else None,
        "failures": sum(1 for r in results.values() if r["failure"]),
        "seed": args.seed,
        "max_memory_gib": args.max_memory_gib,
        "machine": "2 shared cores, contended (other engineers' jobs run at the same time)",
        "properties": results,
    }
    Path(args.output).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{total} examples in {seconds:.0f} s ({summary['examples_per_s']}/s), {summary['failures']} failing properties -> {args.output}")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
