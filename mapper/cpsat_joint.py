"""Exact joint CP-SAT placement for small instances: packing and grid positions at once.

Each block goes to one grid position (a tile) at an offset; rectangles in one tile never
overlap; the objective is lexicographic by weights: tiles used, then traffic (elements ×
Manhattan hops of every block flow), then serialised block pairs (sharing tile rows or
columns), then distance from the grid's origin as a tie-break. Only used when blocks × positions is small; larger models go through the
two-stage decomposition in `cpsat_place.py`.
"""

from __future__ import annotations

from ortools.sat.python import cp_model

MAX_JOINT_SIZE = 1200  # blocks × usable positions


def joint_size(blocks: list, usable: list) -> int:
    return len(blocks) * len(usable)


def solve_joint(blocks: list, flows: list, usable: list, spec, solver: cp_model.CpSolver) -> dict | None:
    """Tiles as [(block id, offset)], their grid positions, and whether it is proven optimal."""
    tile_rows, tile_cols = spec.chip.tile_rows, spec.chip.tile_cols
    grid_rows, grid_cols = spec.chip.grid_rows, spec.chip.grid_cols
    n, positions = len(blocks), range(len(usable))
    model = cp_model.CpModel()
    at = [[model.new_bool_var(f"block{i}_at_{usable[p][0]}_{usable[p][1]}") for p in positions] for i in range(n)]
    used = [model.new_bool_var(f"tile_{usable[p][0]}_{usable[p][1]}_used") for p in positions]
    x = [model.new_int_var(0, tile_cols - b.width, f"block{i}_col") for i, b in enumerate(blocks)]
    y = [model.new_int_var(0, tile_rows - b.height, f"block{i}_row") for i, b in enumerate(blocks)]
    row = [model.new_int_var(0, grid_rows - 1, f"block{i}_grid_row") for i in range(n)]
    col = [model.new_int_var(0, grid_cols - 1, f"block{i}_grid_col") for i in range(n)]
    for i in range(n):
        # One tile per block; its grid row and column follow from the choice.
        model.add_exactly_one(at[i])
        model.add(row[i] == sum(usable[p][0] * at[i][p] for p in positions))
        model.add(col[i] == sum(usable[p][1] * at[i][p] for p in positions))
    for p in positions:
        for i in range(n):
            model.add_implication(at[i][p], used[p])
        # Cells in one tile never overlap.
        x_iv = [model.new_optional_fixed_size_interval_var(x[i], blocks[i].width, at[i][p], f"b{i}_cols_p{p}") for i in range(n)]
        y_iv = [model.new_optional_fixed_size_interval_var(y[i], blocks[i].height, at[i][p], f"b{i}_rows_p{p}") for i in range(n)]
        model.add_no_overlap_2d(x_iv, y_iv)
    traffic_terms, max_traffic = [], 0
    for a, b, elements in flows:
        dr = model.new_int_var(0, grid_rows, f"flow_{a}_{b}_rows")
        dc = model.new_int_var(0, grid_cols, f"flow_{a}_{b}_cols")
        model.add_abs_equality(dr, row[a] - row[b])
        model.add_abs_equality(dc, col[a] - col[b])
        traffic_terms.append(elements * (dr + dc))
        max_traffic += elements * (grid_rows + grid_cols)
    conflicts = []
    for i in range(n):
        for j in range(i + 1, n):
            conflicts.append(pair_conflict(model, blocks, i, j, at, x, y, positions))
    # Last tier: plans near the grid's origin (ties otherwise land anywhere).
    w_conflict = n * (grid_rows + grid_cols) + 1
    w_traffic = (len(conflicts) + 1) * w_conflict
    w_tiles = (max_traffic + 1) * w_traffic
    model.minimize(w_tiles * sum(used) + w_traffic * sum(traffic_terms) + w_conflict * sum(conflicts) + sum(row) + sum(col))
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    tiles: dict[int, list] = {}
    for i in range(n):
        p = next(p for p in positions if solver.boolean_value(at[i][p]))
        tiles.setdefault(p, []).append((i, (solver.value(y[i]), solver.value(x[i]))))
    order = sorted(tiles, key=lambda p: min(i for i, _ in tiles[p]))
    return {
        "tiles": [sorted(tiles[p]) for p in order],
        "positions": [usable[p] for p in order],
        "optimal": status == cp_model.OPTIMAL,
    }


def pair_conflict(model, blocks, i, j, at, x, y, positions):
    """A boolean that must be 1 when blocks i and j share a tile and are not diagonal."""
    a, b = blocks[i], blocks[j]
    same = model.new_bool_var(f"b{i}_b{j}_same_tile")
    for p in positions:
        model.add_bool_or([at[i][p].negated(), at[j][p].negated(), same])
    rows_apart, above = model.new_bool_var(f"b{i}_b{j}_rows_apart"), model.new_bool_var(f"b{i}_b{j}_above")
    model.add(y[i] + a.height <= y[j]).only_enforce_if([rows_apart, above])
    model.add(y[j] + b.height <= y[i]).only_enforce_if([rows_apart, above.negated()])
    cols_apart, left = model.new_bool_var(f"b{i}_b{j}_cols_apart"), model.new_bool_var(f"b{i}_b{j}_left")
    model.add(x[i] + a.width <= x[j]).only_enforce_if([cols_apart, left])
    model.add(x[j] + b.width <= x[i]).only_enforce_if([cols_apart, left.negated()])
    conflict = model.new_bool_var(f"b{i}_b{j}_serialised")
    # Sharing a tile without being apart in both rows and columns serialises the pair.
    model.add_bool_or([rows_apart, conflict]).only_enforce_if(same)
    model.add_bool_or([cols_apart, conflict]).only_enforce_if(same)
    return conflict
