"""`analogc run`: inference on the simulated chip next to onnxruntime on the original
model, with accuracy, agreement, the nonidealities used, speed and cost."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from analogc.data import image_feeds, load_dataset
from analogc.errors import AnalogcError
from analogc.kernel_status import kernel_compilations
from analogc.memory import check_fits
from analogc.phases import Phases, report_phases
from analogc.run_arrays import check_output_path, read_input_arrays, write_outputs
from analogc.run_view import report_run
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import (
    Reference, accuracy, batch_bytes, batch_size_of, chip_runner, examples_axis, run_batched, single_input,
)
from analogc.runtime.cost.pricing import price
from analogc.runtime.format.program import load_program


def cmd_run(args) -> int:
    if args.batch_size <= 0:
        raise AnalogcError(f"--batch-size must be positive, got {args.batch_size}")
    if args.limit is not None and args.limit <= 0:
        raise AnalogcError(f"--limit must be positive, got {args.limit}")
    if args.output and not args.input:
        raise AnalogcError("--output goes with --input (with --data, results are printed)")
    phases = Phases()
    with phases("load program"):
        program = load_program(args.program)
    with phases("load data"):
        if args.input:
            feeds, labels, data_name = read_input_arrays(Path(args.input), program), None, Path(args.input).name
            if args.output:
                check_output_path(Path(args.output), Path(args.input))
        else:
            feeds, labels, data_name = dataset_feeds(args.data, program, args.limit)
    if args.limit is not None:
        axes = {i["name"]: i.get("batch_axis", 0) for i in program.meta["model"]["inputs"]}
        feeds = {k: v[(slice(None),) * axes.get(k, 0) + (slice(args.limit),)] for k, v in feeds.items()}
        labels = labels[: args.limit] if labels is not None else None
    if len(next(iter(feeds.values()))) == 0:
        raise AnalogcError(f"{data_name}: no examples to run")
    if args.drift_time is not None and not (args.drift_time >= 0 and np.isfinite(args.drift_time)):
        raise AnalogcError(f"--drift-time must be a number of seconds ≥ 0, got {args.drift_time}")
    with phases("program the devices"):
        chip = Chip(program, ideal=args.ideal, seed=args.seed, drift_time=args.drift_time, origin=str(args.program))
    result, outputs = evaluate(program, chip, feeds, labels, args, phases)
    result = {"data": data_name, **result, **chip_effects(chip), "cost": run_cost(chip, result["examples"]).to_json()}
    if args.output:
        with phases("write outputs"):
            left_out = write_outputs(Path(args.output), program, outputs)
        result["output"] = args.output
        if left_out:
            result["outputs_left_out"] = left_out
    report_run(args, program, result)
    report_phases(args, phases)
    return 0


def run_cost(chip, examples: int):
    """The run's exact operation counts priced with the target's [cost] table."""
    return price(chip.op_counts(), chip.spec, chip.program, examples=examples)


def chip_effects(chip) -> dict:
    """Which nonidealities this run used, the drift time and compensation, programming error."""
    spec = chip.spec
    effects = {
        "programming_noise": spec.pcm.programming_noise,
        "drift": spec.pcm.drift,
        "read_noise": spec.pcm.read_noise,
        "dac_adc_quantization": spec.periphery.quantization,
        "output_noise": spec.periphery.output_noise_enabled and spec.periphery.output_noise > 0,
        "faulty_devices": spec.pcm.stuck_high_fraction + spec.pcm.dead_fraction > 0,
        "capacitor_mismatch": spec.capacitor.read_offset_sigma > 0 or spec.capacitor.read_gain_sigma > 0,
    }
    t0 = spec.pcm.drift_t0
    clamped = {"drift_clamped_from_s": chip.time} if chip.time < t0 else {}  # the drift model starts at t0
    return {
        "nonidealities": effects,
        "drift_time_s": max(chip.time, t0),
        **clamped,
        "drift_compensation": bool(chip.compensation),
        "drift_compensation_at": spec.pcm.drift_compensation_at if chip.compensation else None,
        "programming_error": chip.programming_error(),
    }


def evaluate(program, chip, feeds, labels, args, phases: Phases | None = None):
    """Chip and onnxruntime reference on the same batches; accuracy and agreement."""
    phases = phases or Phases()
    batch, pad = batch_size_of(program, args.batch_size)
    n = len(next(iter(feeds.values())))
    axis = examples_axis(program)
    if axis:  # time-major inputs: all examples in one batch, counted along their batch axis
        batch, pad = max(n, 1), False
        n = next(np.shape(feeds[i["name"]])[axis] for i in program.meta["model"]["inputs"] if i.get("batch_axis"))
    if pad:  # a fixed batch is padded to its full size, however few the examples
        check_fits(batch_bytes(program, feeds, batch), f"its fixed batch of {batch} examples", str(args.program))
    with progress_bar(args, n, "chip") as advance:
        compiled_before, start = kernel_compilations(), time.perf_counter()
        chip_out = run_batched(chip_runner(chip), feeds, batch, pad, advance, program=program)
        seconds = time.perf_counter() - start
        compiled_during = kernel_compilations() - compiled_before
    phases.add("chip inference", seconds)
    with phases("onnxruntime reference"):
        ref_out = run_batched(Reference(program), feeds, batch, pad, program=program)
    result = {
        "mode": "ideal" if args.ideal else "default",
        "target": program.meta["target"]["name"],
        "seed": args.seed,
        "examples": n,
        "seconds": seconds,
        "examples_per_s": n / seconds if seconds > 0 else None,
        **({"includes_kernel_compilation": True} if compiled_during > 0 else {}),
    }
    if labels is not None:
        result["accuracy"] = accuracy(chip_out, labels)
        result["onnxruntime_accuracy"] = accuracy(ref_out, labels)
        if result["accuracy"] is None:
            result.pop("accuracy"), result.pop("onnxruntime_accuracy")
    for a, b in zip(chip_out, ref_out):
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape != b.shape:
            raise AnalogcError(
                f"{args.program}: the program's outputs ({a.shape}) disagree with its original model's ({b.shape}); "
                "the program.json was edited"
            )
    diffs = [
        max_abs_diff(a, b)
        for a, b in zip(chip_out, ref_out)
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype.kind == "f"
    ]
    result["max_abs_diff_vs_onnxruntime"] = max(diffs) if diffs else 0.0
    return result, chip_out


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| where equal values (NaN beside NaN, an infinity beside the same one)
    differ by 0; a NaN beside a number differs by Inf."""
    if not a.size:
        return 0.0
    a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(same, 0.0, diff)
    return float(np.max(np.where(np.isnan(diff), np.inf, diff)))


class progress_bar:
    """A rich progress bar on stderr for long runs; silent with --json/-q or when short."""

    def __init__(self, args, total: int, label: str):
        self.enabled = not (args.json or args.quiet) and total >= 2048 and sys.stderr.isatty()
        self.total, self.label = total, label

    def __enter__(self):
        if not self.enabled:
            return None
        self.progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.progress.start()
        task = self.progress.add_task(self.label, total=self.total)
        return lambda k: self.progress.advance(task, k)

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()
        return False


def dataset_feeds(spec: str, program, limit):
    model_input = single_input(program)
    data = load_dataset(spec)
    x = data.x_test if limit is None else data.x_test[:limit]
    labels = data.y_test if limit is None else data.y_test[:limit]
    return image_feeds(x, model_input, data.name), labels, data.name
