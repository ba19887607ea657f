"""`analogc cost`: exact operation counts of one inference priced with a [cost] table,
by layer and by operation kind, optionally drawn to a PNG."""

from __future__ import annotations

from pathlib import Path

from analogc.atomic import check_writable_path
from analogc.console import console_for, print_json
from analogc.cost_view import cost_json, draw_cost, estimate_for, print_cost
from analogc.errors import AnalogcError
from analogc.phases import Phases, report_phases
from analogc.runtime.cost.pricing import summary_lines
from analogc.runtime.format.program import load_program


def cmd_cost(args) -> int:
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
