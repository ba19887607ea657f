"""`analogc sweep-plot`: one metric of a sweep's table against one swept key, mean ± std
over seeds (and over every swept key not on the plot, which the title names), one line
per value of --hue. Only jobs with status ok count."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.table import Table

from analogc.atomic import atomic_path, check_writable_path
from analogc.console import console_for, print_json
from analogc.errors import AnalogcError
from analogc.sweep_table import PARQUET, TAIL, read_table

NOT_KEYS = {"job_id", "seed", "command", *(name for name, _ in TAIL)}


def cmd_sweep_plot(args) -> int:
    output = Path(args.output)
    if output.suffix != ".png":
        raise AnalogcError(f"{output}: the plot must be a .png file")
    check_writable_path(output)
    table = read_table(Path(args.folder))
    if table is None:
        raise AnalogcError(f"{args.folder}: no {PARQUET} (not a sweep folder, or no job finished yet)")
    check_columns(table, args, Path(args.folder))
    ok = table.filter(pc.equal(table["status"], "ok"))
    if ok.num_rows == 0:
        raise AnalogcError(f"{args.folder}: no job finished with status ok, nothing to plot")
    groups = summarise(ok, args.x, args.y, args.hue)
    pooled = [c for c in ["seed", *swept_keys(table)] if c not in (args.x, args.hue)]
    over = pooled_text(pooled, len(set(ok["seed"].to_pylist())))
    title = f"{args.y} vs {args.x}: " + (f"mean ± std over {over}" if over else "one job per point")
    draw(groups, args, output, title=title)
    if args.json:
        print_json({"x": args.x, "y": args.y, "hue": args.hue, "pooled_over": pooled, "groups": groups, "png": str(output)})
    else:
        if not args.quiet:
            print_groups(groups, args, title)
        print(f"wrote {output}")
    return 0


def pooled_text(pooled: list[str], seeds: int) -> str:
    """What each point averages over, in words: "3 seeds and training.epochs", or "" when
    every swept column (the seed included) is on the plot."""
    words = [f"{seeds} seed{'s' if seeds != 1 else ''}" if key == "seed" else key for key in pooled]
    return " and ".join(words) if len(words) <= 2 else ", ".join(words[:-1]) + " and " + words[-1]


def swept_keys(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c not in NOT_KEYS]


def check_columns(table: pa.Table, args, folder: Path) -> None:
    keys = swept_keys(table)
    metrics = [name for name, kind in TAIL if kind == pa.float64()]
    for flag, column, allowed in (("--x", args.x, keys + ["seed"]), ("--hue", args.hue, keys + ["seed"]), ("--y", args.y, metrics)):
        if column is not None and column not in allowed:
            raise AnalogcError(f"{folder}: {flag} {column!r} is not a column of the table (choose from {', '.join(allowed)})")
    if args.hue is not None and args.hue == args.x:
        raise AnalogcError(f"--hue {args.hue!r} is the same column as --x")


def summarise(table: pa.Table, x: str, y: str, hue: str | None) -> list[dict]:
    """Per (hue, x): count, mean and sample standard deviation (n − 1) of y."""
    keys = [x] if hue is None else [hue, x]
    valid = table.filter(pc.is_valid(table[y]))
    stats = valid.group_by(keys).aggregate([(y, "count"), (y, "mean"), (y, "stddev", pc.VarianceOptions(ddof=1))])
    groups = []
    for row in stats.to_pylist():
        std = row[f"{y}_stddev"]
        groups.append({
            "x": row[x], "hue": row[hue] if hue else None, "n": row[f"{y}_count"], "mean": row[f"{y}_mean"],
            "std": 0.0 if std is None or math.isnan(std) else std,
        })
    return sorted(groups, key=lambda g: (sort_key(g["hue"]), sort_key(g["x"])))


def sort_key(value):
    return (0, "") if value is None else (1, value) if isinstance(value, (int, float)) else (2, str(value))


def is_numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def draw(groups: list[dict], args, output: Path, title: str) -> None:
    import matplotlib  # heavy: matplotlib (0.4 s), loaded when drawing, after the table is checked

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # keys and values are text, never mathtext
    import matplotlib.pyplot as plt

    xs = sorted({g["x"] for g in groups}, key=sort_key)
    numeric = is_numeric(xs)
    hues = sorted({g["hue"] for g in groups}, key=sort_key)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, hue in enumerate(hues):
        line = [g for g in groups if g["hue"] == hue]
        if numeric:
            pos = np.array([g["x"] for g in line], dtype=float)
        else:  # categories side by side, lines nudged apart so error bars do not overlap
            pos = np.array([xs.index(g["x"]) for g in line], dtype=float) + 0.06 * (i - (len(hues) - 1) / 2)
        label = None if args.hue is None else f"{args.hue} = {format_label(hue)}"
        ax.errorbar(pos, [g["mean"] for g in line], yerr=[g["std"] for g in line], marker="o", capsize=4, label=label)
    if not numeric:
        ax.set_xticks(range(len(xs)), [format_label(v) for v in xs])
    elif all(isinstance(v, int) for v in xs):  # seeds, epochs, bits: no ticks between whole numbers
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(args.x)
    ax.set_ylabel(args.y)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if args.hue is not None:
        ax.legend()
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def format_label(value) -> str:
    return {True: "true", False: "false"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def print_groups(groups: list[dict], args, title: str) -> None:
    table = Table(title=title)
    if args.hue:
        table.add_column(args.hue)
    table.add_column(args.x)
    for name in ("n", "mean", "std"):
        table.add_column(name, justify="right")
    for g in groups:
        cells = [format_label(g["x"]), str(g["n"]), f"{g['mean']:.4g}", f"{g['std']:.2g}"]
        table.add_row(*([format_label(g["hue"])] if args.hue else []), *cells)
    console_for(args).print(table)
