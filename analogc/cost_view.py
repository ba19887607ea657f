"""The cost model's report as text tables and as a picture (`analogc cost`, `run`, `plan`).

`cost_json(report, counts)` and `print_cost(report, console)` are what `train` reuses:
price the trainer's OpCounts with runtime.cost.price, then print or embed these.
"""

from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.table import Table

from analogc.atomic import atomic_path
from analogc.runtime.cost.opcounts import STEP_KINDS, WORK_KINDS
from analogc.runtime.cost.pricing import price, static_block_counts
from analogc.runtime.format.spec import load_target, spec_from_dict


def estimate_for(program, target: str | None = None):
    """(counts, report) of one inference, priced with the program's spec or with the
    [cost] table of another `target` (name or .toml path)."""
    spec = spec_from_dict(program.meta["target"], origin="program target")
    if target:
        spec = dataclasses.replace(spec, cost=load_target(target).cost)
    counts = static_block_counts(program, "inference", 1)
    return counts, price(counts, spec, program, examples=1)


def cost_json(report, counts=None) -> dict:
    """The report's fields, and the counts per (phase, layer, tile) when given."""
    out = report.to_json()
    if counts is not None:
        out["counts_by_layer_tile"] = counts.to_json()
    return out


def print_cost(report, console: Console, title: str = "cost", tables: bool = True) -> None:
    """Summary lines, then tables by layer and by operation kind."""
    for line in report.summary_lines():
        console.print(f"  {line}")
    if not tables:
        return
    per = max(report.examples, 1)
    layers = Table(title=f"{title} by layer (per example)", title_justify="left")
    for column in ("layer", "energy nJ", "share", "time µs"):
        layers.add_column(column, justify="left" if column == "layer" else "right")
    total = report.energy_j or 1.0
    for name in sorted(set(report.energy_by_layer) | set(report.time_by_layer), key=lambda n: -report.energy_by_layer.get(n, 0.0)):
        energy = report.energy_by_layer.get(name, 0.0)
        layers.add_row(name, f"{energy / per * 1e9:.4g}", f"{energy / total:.1%}", f"{report.time_by_layer.get(name, 0.0) / per * 1e6:.4g}")
    console.print(layers)
    kinds = Table(title=f"{title} by operation kind (per example)", title_justify="left")
    for column in ("kind", "count", "energy nJ", "share", "time µs"):
        kinds.add_column(column, justify="left" if column == "kind" else "right")
    for kind in WORK_KINDS + STEP_KINDS:
        if kind not in report.counts_by_kind:
            continue
        energy = report.energy_by_kind.get(kind)
        time = report.time_by_kind.get(kind)
        kinds.add_row(
            kind,
            f"{report.counts_by_kind[kind] / per:.6g}",
            "" if energy is None else f"{energy / per * 1e9:.4g}",
            "" if energy is None else f"{energy / total:.1%}",
            "" if time is None else f"{time / per * 1e6:.4g}",
        )
    console.print(kinds)


def draw_cost(report, path, title: str) -> None:
    """Energy and time per example by layer, stacked by operation kind; written atomically."""
    import matplotlib.pyplot as plt  # heavy: matplotlib, only for --png

    fig = cost_figure(report, title)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def cost_figure(report, title: str):
    """The two panels of draw_cost, legends below them."""
    import matplotlib  # heavy: matplotlib, only for --png

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # layer names are text, never mathtext
    import matplotlib.pyplot as plt

    per = max(report.examples, 1)
    layers = list(report.energy_by_layer) + [n for n in report.time_by_layer if n not in report.energy_by_layer]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, max(3.5, 0.55 * len(layers) + 2.2) + 0.6))
    palette = plt.get_cmap("tab20")
    panels = (
        (left, report.energy_by_layer_kind, WORK_KINDS, "energy per example (nJ)", 1e9, "energy by layer and operation kind"),
        (right, report.time_by_layer_kind, STEP_KINDS + ("host_flops",), "latency per example (µs)", 1e6, "latency by layer (critical-path steps)"),
    )
    for ax, split, kinds, unit, scale, heading in panels:
        start = [0.0] * len(layers)
        for kind in kinds:
            values = [split.get(layer, {}).get(kind, 0.0) / per * scale for layer in layers]
            if not any(values):
                continue
            colour = palette((WORK_KINDS + STEP_KINDS).index(kind) % 20)
            ax.barh(range(len(layers)), values, left=start, color=colour, label=kind, edgecolor="black", lw=0.3)
            start = [a + b for a, b in zip(start, values)]
        ax.set_yticks(range(len(layers)), layers, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(unit)
        ax.set_title(heading, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        handles = ax.get_legend_handles_labels()[0]
        if handles:  # below the axes, where it cannot cover a bar
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(len(handles), 4), frameon=False)
    peak = report.peak
    fig.suptitle(
        f"{title}: {(report.energy_per_example_j or 0) * 1e9:.4g} nJ and {(report.latency_per_example_s or 0) * 1e6:.4g} µs per example, "
        f"{report.gops_per_w or 0:,.0f} GOP/s/W, {report.gops_per_mm2 or 0:,.1f} GOP/s/mm²\n"
        f"full-tile peak {peak.get('gops_per_w') or 0:,.0f} GOP/s/W, {peak.get('gops_per_mm2') or 0:,.0f} GOP/s/mm² "
        "(2018 paper's projection: 28,065 GOP/s/W, 3,600 GOP/s/mm²)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
