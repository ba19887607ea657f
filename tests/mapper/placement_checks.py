"""Invariants every placement must satisfy, checked by brute force on cell grids."""

from __future__ import annotations

import numpy as np


def check_placement(program) -> None:
    """Each array cell covered exactly once; blocks inside tiles, disjoint, on usable tiles."""
    placement = program.meta["placement"]
    grid_rows, grid_cols = placement["grid"]
    tile_rows, tile_cols = placement["tile"]
    faulty = {tuple(t) for t in program.meta["target"]["chip"]["faulty_tiles"]}
    coverage = {layer["name"]: np.zeros(layer["array_shape"], dtype=np.int32) for layer in program.layers}
    occupancy: dict[tuple, np.ndarray] = {}
    for block in program.blocks:
        (r0, r1), (c0, c1) = block["rows"], block["cols"]
        tile, (o_r, o_c) = tuple(block["tile"]), block["offset"]
        assert 0 <= tile[0] < grid_rows and 0 <= tile[1] < grid_cols, block
        assert tile not in faulty, block
        assert 0 <= o_r and o_r + (r1 - r0) <= tile_rows and 0 <= o_c and o_c + (c1 - c0) <= tile_cols, block
        coverage[block["layer"]][r0:r1, c0:c1] += 1
        cells = occupancy.setdefault(tile, np.zeros((tile_rows, tile_cols), dtype=np.int32))
        cells[o_r : o_r + r1 - r0, o_c : o_c + c1 - c0] += 1
    for name, cover in coverage.items():
        assert cover.min() == 1 and cover.max() == 1, f"layer {name} not covered exactly once"
    for tile, cells in occupancy.items():
        assert cells.max() <= 1, f"blocks overlap in tile {tile}"
    assert placement["tiles_used"] == len(occupancy)
    assert placement["lower_bound_tiles"] <= placement["tiles_used"]
