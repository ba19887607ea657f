"""What each CLI command does, given parsed arguments. Returns the exit status."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from analogc.atomic import atomic_path, check_writable_path
from analogc.console import console_for
from analogc.errors import AnalogcError
from analogc.kernel_status import kernel_compilations
from analogc.phases import Phases, report_phases
from analogc.run_view import report_run


def cmd_compile(args) -> int:
    from analogc.cli import print_json
    from analogc.mapper import compile_model
    from analogc.mapper.compile import check_written_program
    from analogc.plan_view import plan_json, print_plan
    from analogc.runtime.program import save_program
    from analogc.runtime.spec import load_target

    if not 0 < args.time_limit <= 86400:
        raise AnalogcError(f"--time-limit must be a number of seconds in (0, 86400], got {args.time_limit}")
    phases = Phases()
    with phases("load target"):
        spec = load_target(args.target)
    output = Path(args.output) if args.output else Path(Path(args.model).stem + ".atp")
    if output.suffix != ".atp":
        raise AnalogcError(f"{output}: the output of compile must end in .atp")
    check_writable_path(output)  # fail before compiling, not after
    with phases("compile (frontend, placement, emission)"):
        program = compile_model(args.model, spec, placer=args.placer, time_limit=args.time_limit, seed=args.seed, replicate=args.replicate,
                                fold_batchnorm=args.fold_batchnorm)
    with phases("write program"):
        with atomic_path(output) as tmp:
            save_program(program, tmp)
            check_written_program(tmp, args.model, program)  # before the rename: never a program run refuses
    if args.json:
        print_json({"output": str(output), **plan_json(program)})
    elif args.quiet:
        console_for(args).print(f"wrote {output}", markup=False)
    else:
        console = console_for(args)
        console.print(f"wrote {output}", markup=False)
        print_plan(program, console, verbose=args.verbose)
        if args.replicate != "none" and all(layer.get("copies", 1) == 1 for layer in program.layers):
            why = "no layer reads more than once per example" if args.replicate == "throughput" else "a second copy of every layer does not fit"
            console.print(f"--replicate {args.replicate}: no copies ({why}, or no tiles are spare); the plan is the one without replication", markup=False)
    report_phases(args, phases)
    return 0


def cmd_plan(args) -> int:
    from analogc.cli import print_json
    from analogc.plan_view import plan_json, print_plan
    from analogc.runtime.program import load_program

    if args.png and not args.png.endswith(".png"):
        raise AnalogcError(f"{args.png}: --png needs a file name ending in .png")
    phases = Phases()
    with phases("load program"):
        program = load_program(args.program)
    if args.png:
        from analogc.plan_png import draw_plan

        with phases("draw png"):
            draw_plan(program, args.png)
    if args.json:
        print_json({**plan_json(program), **({"png": args.png} if args.png else {})})
    else:
        if not args.quiet:
            print_plan(program, console_for(args), verbose=args.verbose)
        if args.png:
            console_for(args).print(f"wrote {args.png}", markup=False)
    report_phases(args, phases)
    return 0


def cmd_cost(args) -> int:
    from analogc.cli import print_json
    from analogc.cost_view import cost_json, draw_cost, estimate_for, print_cost
    from analogc.runtime.program import load_program

    if args.png and not args.png.endswith(".png"):
        raise AnalogcError(f"{args.png}: --png needs a file name ending in .png")
    if args.png:
        check_writable_path(Path(args.png))
    phases = Phases()
    with phases("load program"):
        program = load_program(args.program)
    with phases("count and price"):
        counts, report = estimate_for(program, args.target)
    title = f"{program.meta['model']['name']} on {program.meta['target']['name']}"
    if args.png:
        with phases("draw png"):
            draw_cost(report, args.png, title)
    if args.json:
        print_json({"model": program.meta["model"]["name"], "target": program.meta["target"]["name"], "cost": cost_json(report, counts), **({"png": args.png} if args.png else {})})
    elif args.quiet:
        console = console_for(args)
        from analogc.runtime.cost import summary_lines

        for line in summary_lines(report.to_json()):  # the figures, without the tables
            console.print(line, markup=False)
        if args.png:
            console.print(f"wrote {args.png}", markup=False)
    else:
        console = console_for(args)
        console.print(f"{title}: static estimate of one inference")
        print_cost(report, console)
        if args.png:
            console.print(f"wrote {args.png}", markup=False)
    report_phases(args, phases)
    return 0


def cmd_targets(args) -> int:
    from analogc.cli import print_json
    from analogc.runtime.spec import DEFAULT_TARGET, load_spec, shipped_targets, spec_summary

    rows = []
    for name, path in shipped_targets().items():
        spec = load_spec(path)
        rows.append({"name": name, "default": name == DEFAULT_TARGET, "summary": spec_summary(spec), "description": spec.description, "path": str(path)})
    if args.json:
        print_json({"targets": rows})
    else:
        width = max(len(r["name"]) for r in rows)
        for row in rows:
            mark = " (default)" if row["default"] else ""
            print(f"{row['name']:<{width}}  {row['summary']}: {row['description']}{mark}")
    return 0


def cmd_run(args) -> int:
    from analogc.runtime.chip import Chip
    from analogc.runtime.program import load_program

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
                check_output_path(Path(args.output))
        else:
            feeds, labels, data_name = dataset_feeds(args.data, program, args.limit)
    if args.limit is not None:
        feeds = {k: v[: args.limit] for k, v in feeds.items()}
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
    from analogc.runtime.cost import price

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
    from analogc.memory import check_fits
    from analogc.runtime.infer import Reference, accuracy, batch_bytes, batch_size_of, chip_runner, run_batched

    batch, pad = batch_size_of(program, args.batch_size)
    n = len(next(iter(feeds.values())))
    if pad:  # a fixed batch is padded to its full size, however few the examples
        check_fits(batch_bytes(program, feeds, batch), f"its fixed batch of {batch} examples", str(args.program))
    with progress_bar(args, n, "chip") as advance:
        compiled_before, start = kernel_compilations(), time.perf_counter()
        chip_out = run_batched(chip_runner(chip), feeds, batch, pad, advance)
        seconds = time.perf_counter() - start
        compiled_during = kernel_compilations() - compiled_before
    phases.add("chip inference", seconds)
    with phases("onnxruntime reference"):
        ref_out = run_batched(Reference(program), feeds, batch, pad)
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
        float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        for a, b in zip(chip_out, ref_out)
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype.kind == "f"
    ]
    result["max_abs_diff_vs_onnxruntime"] = max(diffs) if diffs else 0.0
    return result, chip_out


class progress_bar:
    """A rich progress bar on stderr for long runs; silent with --json/-q or when short."""

    def __init__(self, args, total: int, label: str):
        self.enabled = not (args.json or args.quiet) and total >= 2048 and sys.stderr.isatty()
        self.total, self.label = total, label

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.progress.start()
        task = self.progress.add_task(self.label, total=self.total)
        return lambda k: self.progress.advance(task, k)

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()
        return False


def dataset_feeds(spec: str, program, limit):
    from analogc.data import load_dataset
    from analogc.runtime.infer import single_input

    model_input = single_input(program)
    data = load_dataset(spec)
    x = data.x_test if limit is None else data.x_test[:limit]
    labels = data.y_test if limit is None else data.y_test[:limit]
    from analogc.data import image_feeds

    return image_feeds(x, model_input, data.name), labels, data.name


def read_input_arrays(path: Path, program) -> dict:
    """--input: one .npy for a one-input model, or a .npz keyed by input names."""
    inputs = program.meta["model"]["inputs"]
    if not path.is_file():
        raise AnalogcError(f"{path}: no such file")
    from analogc.npy_read import read_npy_or_npz

    loaded = read_npy_or_npz(path)
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise AnalogcError(f"{path}: the model has {len(inputs)} inputs; give a .npz with arrays named {', '.join(i['name'] for i in inputs)}")
        arrays = {inputs[0]["name"]: loaded}
    else:
        missing = [i["name"] for i in inputs if i["name"] not in loaded]
        if missing:
            raise AnalogcError(f"{path}: no array for model {'input' if len(missing) == 1 else 'inputs'} {', '.join(missing)}")
        arrays = {i["name"]: loaded[i["name"]] for i in inputs}
    feeds, batch = {}, None
    for info in inputs:
        feeds[info["name"]] = check_input_array(arrays[info["name"]], info, path)
        n = len(feeds[info["name"]])
        if batch is not None and n != batch:
            raise AnalogcError(f"{path}: inputs disagree on the number of examples ({batch} vs {n})")
        batch = n
    return feeds


def check_input_array(x: np.ndarray, info: dict, path: Path) -> np.ndarray:
    shape = info["shape"]
    expected = tuple("N" if d is None else d for d in (shape or []))
    if shape is not None and (x.ndim != len(shape) or any(d is not None and i > 0 and d != s for i, (d, s) in enumerate(zip(shape, x.shape)))):
        raise AnalogcError(f"{path}: array of shape {x.shape} does not fit model input {info['name']!r} of shape {expected}")
    if x.ndim == 0:
        raise AnalogcError(f"{path}: input {info['name']!r} must have a batch dimension")
    dtype = np.dtype(info["dtype"]) if info["dtype"] != "unknown" else x.dtype
    if x.dtype.kind not in "biuf" or (dtype.kind == "f") != (x.dtype.kind == "f"):
        raise AnalogcError(f"{path}: input {info['name']!r} is {x.dtype}, the model expects {dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise AnalogcError(f"{path}: input {info['name']!r} holds NaN or Inf")
    return x.astype(dtype, copy=False)


def check_output_path(path: Path) -> None:
    if path.suffix not in (".npy", ".npz"):
        raise AnalogcError(f"{path}: --output must end in .npy or .npz")
    check_writable_path(path)


def write_outputs(path: Path, program, outputs: list) -> list[dict]:
    """The outputs as arrays in a .npz (every one that has an array form: a ZipMap's
    probabilities become NAME [N, classes] plus NAME.labels [classes]) or the first in
    a .npy. Returns the outputs left out, each with the reason, for the report."""
    from analogc.atomic import atomic_path

    names = [o["name"] for o in program.meta["model"]["outputs"]]
    tensors, left_out = {}, []
    for name, value in zip(names, outputs):
        arrays, why = output_arrays(name, value)
        tensors.update(arrays)
        if why:
            left_out.append({"name": name, "why": why})
    if path.suffix == ".npy" and not (isinstance(outputs[0], np.ndarray) and outputs[0].dtype != object):
        raise AnalogcError(f"{path}: output {names[0]!r} is not a tensor (e.g. a ZipMap sequence); use --output FILE.npz, "
                           "which holds it as arrays")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            if path.suffix == ".npz":
                np.savez(handle, **tensors)
            else:
                np.save(handle, tensors[names[0]], allow_pickle=False)
    return left_out if path.suffix == ".npz" else []


def output_arrays(name: str, value) -> tuple[dict, str | None]:
    """({key: array}, None) for an output that has an array form, ({}, reason) if not.
    A sequence of maps with the same keys (ZipMap: one {class: probability} per example)
    is a [N, classes] array of the values plus the keys, in the maps' order."""
    if isinstance(value, np.ndarray):
        return ({name: value}, None) if value.dtype != object else ({}, "a tensor of Python objects")
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        keys = list(value[0]) if value else []
        if all(list(v) == keys for v in value):
            labels = np.asarray(keys)
            if labels.dtype.kind in "iuU" or not keys:
                rows = np.asarray([[v[k] for k in keys] for v in value], dtype=np.float32).reshape(len(value), len(keys))
                return {name: rows, f"{name}.labels": labels}, None
        return {}, "a sequence of maps whose keys differ between examples"
    return {}, f"a {type(value).__name__}, not a tensor"


def cmd_train(args) -> int:
    from analogc.train_cli import cmd_train as run

    return run(args)


def cmd_export(args) -> int:
    from analogc.train_cli import cmd_export as run

    return run(args)


def cmd_sweep(args) -> int:
    from analogc.sweep import cmd_sweep as run

    return run(args)


def cmd_sweep_plot(args) -> int:
    from analogc.sweep_plot import cmd_sweep_plot as run

    return run(args)
