"""`analogc compile`, `plan`, `export` and `targets`: the commands that write or show a
tile program (or the shipped specs) without running it on the chip."""

from __future__ import annotations

from pathlib import Path

from analogc.atomic import atomic_path, check_writable_path, write_bytes_atomic
from analogc.console import console_for, print_json
from analogc.errors import AnalogcError
from analogc.phases import Phases, report_phases
from analogc.plan_view import plan_json, print_plan
from analogc.runtime.format.program import load_program, save_program
from analogc.runtime.format.spec import DEFAULT_TARGET, load_spec, load_target, shipped_targets, spec_summary


def cmd_compile(args) -> int:
    # heavy: the compiler loads ortools and onnx (1.4 s), which no other command needs
    from analogc.mapper import compile_model
    from analogc.mapper.compile import check_written_program

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
    if args.png and not args.png.endswith(".png"):
        raise AnalogcError(f"{args.png}: --png needs a file name ending in .png")
    phases = Phases()
    with phases("load program"):
        program = load_program(args.program)
    if args.png:
        from analogc.plan_png import draw_plan  # heavy: matplotlib, only for --png

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


def cmd_targets(args) -> int:
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


def cmd_export(args) -> int:
    from analogc.runtime.chip.export import export_bytes  # heavy: onnx (0.7 s), only for export

    output = Path(args.output)
    if output.suffix != ".onnx":
        raise AnalogcError(f"{output}: the exported model must end in .onnx")
    check_writable_path(output)
    phases = Phases()
    with phases("load program"):
        program = load_program(args.program)
    with phases("read the weights back into the graph"):
        data = export_bytes(program)
    with phases("write model"):
        write_bytes_atomic(output, data)
    result = {"program": args.program, "output": str(output), "bytes": len(data), "trained": bool(program.meta.get("training"))}
    if args.json:
        print_json(result)
    elif args.quiet:
        print(f"wrote {output}")
    else:
        what = "trained weights" if result["trained"] else "compiled weights (the program was never trained)"
        print(f"wrote {output} ({len(data):,} bytes): the original graph with the chip's {what}")
    report_phases(args, phases)
    return 0
