"""A picture of a plan: the grid, tiles coloured by layer with their block rectangles,
faulty tiles crossed out, arrows for the data flowing between tiles, and a legend."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, PatchCollection  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle  # noqa: E402

from analogc.atomic import atomic_path  # noqa: E402
from analogc.runtime.dataflow import block_flows, program_views  # noqa: E402

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


def draw_plan(program, path) -> None:
    """Write the picture to `path` (PNG), atomically."""
    placement = program.meta["placement"]
    grid_rows, grid_cols = placement["grid"]
    tile_rows, tile_cols = placement["tile"]
    faulty = {tuple(t) for t in program.meta["target"]["chip"]["faulty_tiles"]}
    names = [l["name"] for l in program.layers]
    palette = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colour = {name: palette(k % palette.N) for k, name in enumerate(names)}

    size = min(14.0, max(6.0, 0.9 * max(grid_rows, grid_cols)))
    fig, ax = plt.subplots(figsize=(size + 3.5, size))
    gap = 0.12
    # One collection for all tiles: a grid of 256x256 tiles would take minutes as patches.
    ax.add_collection(PatchCollection(
        [Rectangle((c, r), 1 - gap, 1 - gap) for r in range(grid_rows) for c in range(grid_cols)],
        facecolor="#f4f4f4", edgecolor="#bbbbbb", lw=0.6 if max(grid_rows, grid_cols) <= 32 else 0.0,
    ))
    crosses = [seg for r, c in sorted(faulty) for seg in (((c, r), (c + 1 - gap, r + 1 - gap)), ((c, r + 1 - gap), (c + 1 - gap, r)))]
    if crosses:
        ax.add_collection(LineCollection(crosses, colors="#c0392b", lw=1.5))
    scale_r, scale_c = (1 - gap) / tile_rows, (1 - gap) / tile_cols
    for block in program.blocks:
        r, c = block["tile"]
        o_r, o_c = block["offset"]
        height = block["rows"][1] - block["rows"][0]
        width = block["cols"][1] - block["cols"][0]
        ax.add_patch(
            Rectangle(
                (c + o_c * scale_c, r + o_r * scale_r),
                width * scale_c,
                height * scale_r,
                facecolor=colour[block["layer"]],
                edgecolor="black",
                lw=0.3,
                alpha=0.85,
            )
        )
    flows = tile_flows(program)
    if flows:
        biggest = max(flows.values())
        for (src, dst), elements in sorted(flows.items()):
            centre = lambda t: (t[1] + (1 - gap) / 2, t[0] + (1 - gap) / 2)  # noqa: E731
            ax.add_patch(
                FancyArrowPatch(
                    centre(src),
                    centre(dst),
                    arrowstyle="-|>",
                    mutation_scale=8,
                    lw=0.4 + 2.2 * elements / biggest,
                    color="#2c3e50",
                    alpha=0.55,
                    connectionstyle="arc3,rad=0.15",
                )
            )
    ax.set_xlim(-0.2, grid_cols + 0.1)
    ax.set_ylim(grid_rows + 0.1, -0.2)
    ax.set_aspect("equal")
    step_c, step_r = -(-grid_cols // MAX_TICKS), -(-grid_rows // MAX_TICKS)
    ax.set_xticks([c + (1 - gap) / 2 for c in range(0, grid_cols, step_c)], [str(c) for c in range(0, grid_cols, step_c)])
    ax.set_yticks([r + (1 - gap) / 2 for r in range(0, grid_rows, step_r)], [str(r) for r in range(0, grid_rows, step_r)])
    ax.tick_params(length=0, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    handles = [Patch(facecolor=colour[n], edgecolor="black", label=f"{n} {tuple(l['shape'])}") for n, l in zip(names, program.layers)]
    handles.append(Patch(facecolor="#f4f4f4", edgecolor="#c0392b", label="faulty tile (never used)"))
    handles.append(FancyArrowPatch((0, 0), (1, 0), arrowstyle="-|>", color="#2c3e50", label="data between tiles (width ∝ elements)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    solver = placement["solver"]
    ax.set_title(
        f"{program.meta['model']['name']} on {program.meta['target']['name']}: {placement['tiles_used']} tiles "
        f"(lower bound {placement['lower_bound_tiles']}, {solver['status'].lower()}), utilization "
        f"{placement['utilization']:.0%}, traffic {placement['traffic']} (first fit {placement.get('traffic_greedy')})",
        fontsize=10,
    )
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
