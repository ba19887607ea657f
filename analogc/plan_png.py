"""A picture of a plan: the grid, tiles coloured by layer with their block rectangles,
faulty tiles crossed out, arrows for the data flowing between tiles, and a legend; a
second panel zooms in on the tiles in use when they are a small part of the grid."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # names from the model are text: "a$^$b" is no formula
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, PatchCollection  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle  # noqa: E402

from analogc.atomic import atomic_path  # noqa: E402
from analogc.plan_labels import Block, name_blocks  # noqa: E402
from analogc.runtime.cost.dataflow import block_flows, program_views  # noqa: E402
from analogc.wording import count  # noqa: E402

MAX_TICKS = 32  # tick labels per axis; larger grids label every k-th tile


def tile_flows(program) -> dict:
    """Elements per example between pairs of tiles (tile-to-tile only)."""
    blocks, layers = program_views(program)
    tile_of = {b["id"]: tuple(b["tile"]) for b in program.blocks}
    flows: dict[tuple, int] = {}
    for a, b, elements in block_flows(blocks, layers):
        key = (tile_of[a], tile_of[b])
        if key[0] != key[1]:
            flows[key] = flows.get(key, 0) + elements
    return flows


def zoom_window(program) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1), tiles half-open, around the tiles in use, when they fill
    at most a quarter of the grid (a small model on a big chip would be a speck); else None."""
    grid_rows, grid_cols = program.meta["placement"]["grid"]
    used = {tuple(b["tile"]) for b in program.blocks}
    if not used:
        return None
    r0, r1 = min(r for r, _ in used), max(r for r, _ in used) + 1
    c0, c1 = min(c for _, c in used), max(c for _, c in used) + 1
    return (r0, r1, c0, c1) if 4 * (r1 - r0) * (c1 - c0) <= grid_rows * grid_cols else None


def draw_grid(ax, program, colour: dict, window: tuple[int, int, int, int], labels: bool, inches_across: float) -> None:
    """Tiles, faulty crosses, blocks and data arrows of the tiles in `window`; with
    `labels`, every block is named (layer, rows and columns; `plan_labels`)."""
    r0, r1, c0, c1 = window
    placement = program.meta["placement"]
    tile_rows, tile_cols = placement["tile"]
    faulty = {tuple(t) for t in program.meta["target"]["chip"]["faulty_tiles"]}
    inside = lambda t: r0 <= t[0] < r1 and c0 <= t[1] < c1  # noqa: E731
    gap = 0.12
    # One collection for all tiles: a grid of 256x256 tiles would take minutes as patches.
    ax.add_collection(PatchCollection(
        [Rectangle((c, r), 1 - gap, 1 - gap) for r in range(r0, r1) for c in range(c0, c1)],
        facecolor="#f4f4f4", edgecolor="#bbbbbb", lw=0.6 if max(r1 - r0, c1 - c0) <= 32 else 0.0,
    ))
    crosses = [seg for r, c in sorted(t for t in faulty if inside(t)) for seg in (((c, r), (c + 1 - gap, r + 1 - gap)), ((c, r + 1 - gap), (c + 1 - gap, r)))]
    if crosses:
        ax.add_collection(LineCollection(crosses, colors="#c0392b", lw=1.5))
    scale_r, scale_c = (1 - gap) / tile_rows, (1 - gap) / tile_cols
    inches = 0.8 * inches_across / max(r1 - r0, c1 - c0)  # of one tile, roughly
    named = []
    for block in program.blocks:
        r, c = block["tile"]
        if not inside((r, c)):
            continue
        o_r, o_c = block["offset"]
        (k0, k1), (n0, n1) = block["rows"], block["cols"]
        x, y, width, height = c + o_c * scale_c, r + o_r * scale_r, (n1 - n0) * scale_c, (k1 - k0) * scale_r
        ax.add_patch(Rectangle((x, y), width, height, facecolor=colour[block["layer"]], edgecolor="black", lw=0.3, alpha=0.85))
        named.append(Block(x, y, width, height, block["layer"], (k0, k1), (n0, n1)))
    right = name_blocks(ax, named, inches, c1 + 0.1) if labels else c1 + 0.1
    flows = tile_flows(program)
    shown = {key: elements for key, elements in flows.items() if inside(key[0]) and inside(key[1])}
    if shown:
        biggest = max(flows.values())
        for (src, dst), elements in sorted(shown.items()):
            centre = lambda t: (t[1] + (1 - gap) / 2, t[0] + (1 - gap) / 2)  # noqa: E731
            ax.add_patch(FancyArrowPatch(centre(src), centre(dst), arrowstyle="-|>", mutation_scale=8, lw=0.4 + 2.2 * elements / biggest,
                                         color="#2c3e50", alpha=0.55, connectionstyle="arc3,rad=0.15"))
    ax.set_xlim(c0 - 0.2, right)
    ax.set_ylim(r1 + 0.1, r0 - 0.2)
    ax.set_aspect("equal")
    step_c, step_r = -(-(c1 - c0) // MAX_TICKS), -(-(r1 - r0) // MAX_TICKS)
    ax.set_xticks([c + (1 - gap) / 2 for c in range(c0, c1, step_c)], [str(c) for c in range(c0, c1, step_c)])
    ax.set_yticks([r + (1 - gap) / 2 for r in range(r0, r1, step_r)], [str(r) for r in range(r0, r1, step_r)])
    ax.tick_params(length=0, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_plan(program, path) -> None:
    """Write the picture to `path` (PNG), atomically."""
    fig = plan_figure(program)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def plan_figure(program):
    """The whole grid, and beside it the tiles in use, larger and with their blocks
    named, when they are a small part of it; the legend lists what the picture shows."""
    placement = program.meta["placement"]
    grid_rows, grid_cols = placement["grid"]
    names = [l["name"] for l in program.layers]
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colour = {name: palette(k % palette.N) for k, name in enumerate(names)}
    zoom = zoom_window(program)
    size = min(14.0, max(6.0, 0.9 * max(grid_rows, grid_cols)))
    if zoom is None:
        fig, ax = plt.subplots(figsize=(size + 3.5, size))
        axes = [ax]
    else:
        fig, axes = plt.subplots(1, 2, figsize=(2 * size + 3.5, size))
        span = lambda a, b: str(a) if b == a + 1 else f"{a}-{b - 1}"  # noqa: E731
        axes[1].set_title(f"tiles in use: rows {span(zoom[0], zoom[1])}, columns {span(zoom[2], zoom[3])}", fontsize=9)
    draw_grid(axes[0], program, colour, (0, grid_rows, 0, grid_cols), labels=zoom is None, inches_across=size)
    if zoom is not None:
        draw_grid(axes[1], program, colour, zoom, labels=True, inches_across=size)
    handles = [Patch(facecolor=colour[n], edgecolor="black", label=f"{n} {tuple(l['shape'])}") for n, l in zip(names, program.layers)]
    if program.meta["target"]["chip"]["faulty_tiles"]:
        handles.append(Patch(facecolor="#f4f4f4", edgecolor="#c0392b", label="faulty tile (never used)"))
    if tile_flows(program):
        handles.append(FancyArrowPatch((0, 0), (1, 0), arrowstyle="-|>", color="#2c3e50", label="data between tiles (width ∝ elements)"))
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    solver = placement["solver"]
    fig.suptitle(
        f"{program.meta['model']['name']} on {program.meta['target']['name']}: {count(placement['tiles_used'], 'tile')} "
        f"(lower bound {placement['lower_bound_tiles']}, {solver['status'].lower()}), utilization "
        f"{placement['utilization']:.0%}, traffic {placement['traffic']} (first fit {placement.get('traffic_greedy')})",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
