"""Placement of a replicated plan: copy counts (replicate.py), packing, grid positions.

Packing: throughput copies go on tile diagonals (the layout the copy choice counts on,
see replicate.py); accuracy copies too when they fit so, else first-fit. Grid positions
are then chosen as for every plan (`cpsat_place.place_tiles`: CP-SAT on
Σ flow · Manhattan distance, with the copy-aware flows of runtime/cost/dataflow.py).
When replication gains nothing (every copy count is 1), `place_replicated` returns
None and the compiler places the plan as without replication.
"""

from __future__ import annotations

import time

from analogc.errors import AnalogcError
from analogc.mapper.cpsat_place import greedy_baseline_traffic, place_tiles
from analogc.mapper.partition import Block
from analogc.mapper.place import Placement, first_fit_pack, lower_bound_tiles, usable_or_error
from analogc.mapper.replicate import MAX_ACCURACY_COPIES, bottleneck, demands_of, diagonal_capacity, throughput_copies
from analogc.mapper.traffic import block_flows, traffic
from analogc.runtime.cost.dataflow import LayerView


def copied_blocks(blocks: list, layers: list, copies: dict) -> list[Block]:
    """Every block once per copy of its layer, numbered in order of (layer, copy, block)."""
    out = []
    for dense in layers:
        own = [b for b in blocks if b.layer == dense.name]
        for copy in range(copies[dense.name]):
            base = len(out)
            out.extend(Block(base + k, b.layer, b.rows, b.cols, copy) for k, b in enumerate(own))
    return out


def layer_views(layers: list, mode: str, copies: dict) -> list[LayerView]:
    return [LayerView(d.name, d.input, d.output, tuple(d.shape), copies[d.name], mode) for d in layers]


def diagonal_packing(blocks: list, tile_rows: int, tile_cols: int) -> tuple[list, dict]:
    """Tiles (lists of block ids) and offsets: the copies of each block, in copy order,
    `diagonal_capacity` per tile, copy q of a tile at (q·h, q·w)."""
    same: dict[tuple, list] = {}
    for b in blocks:
        same.setdefault((b.layer, b.rows, b.cols), []).append(b)
    groups, offset = [], {}
    for members in same.values():
        per_tile = diagonal_capacity(members[0].height, members[0].width, tile_rows, tile_cols)
        for start in range(0, len(members), per_tile):
            chunk = members[start : start + per_tile]
            groups.append([b.id for b in chunk])
            offset.update({b.id: (q * b.height, q * b.width) for q, b in enumerate(chunk)})
    return groups, offset


def accuracy_packing(blocks: list, layers: list, tile_rows: int, tile_cols: int, usable: int) -> tuple[int, list, list, dict] | None:
    """The largest k ≤ MAX_ACCURACY_COPIES for which k copies of every block fit the
    usable tiles: on tile diagonals (copies read in parallel) when that layout fits,
    else first-fit (copies that share a tile's rows or columns read in turn).
    Returns (k, blocks, tile groups, offsets); None when not even k = 2 fits."""
    cells = sum(b.cells for b in blocks)
    by_area = usable * tile_rows * tile_cols // cells if cells else MAX_ACCURACY_COPIES  # no packing beats the cell count
    for k in range(min(MAX_ACCURACY_COPIES, by_area), 1, -1):
        copied = copied_blocks(blocks, layers, {d.name: k for d in layers})
        groups, offset = diagonal_packing(copied, tile_rows, tile_cols)
        if len(groups) <= usable:
            return k, copied, groups, offset
        slot_of, offset, needed = first_fit_pack(copied, tile_rows, tile_cols)
        if needed <= usable:
            groups = [[] for _ in range(needed)]
            for b in copied:
                groups[slot_of[b.id]].append(b.id)
            return k, copied, groups, offset
    return None


def place_replicated(blocks: list, layers: list, spec, mode: str, reads: dict, time_limit: float = 5.0, seed: int = 0) -> Placement | None:
    """A Placement (with its own block list, copies numbered) for `mode`, or None when
    no layer gets a second copy."""
    start = time.perf_counter()
    usable = usable_or_error(spec)
    tile_rows, tile_cols = spec.chip.tile_rows, spec.chip.tile_cols
    demands = demands_of(layers, blocks, reads)
    details: dict = {"replicate": mode, "reads": {d.name: d.reads for d in demands}}
    if mode == "throughput":
        copies = throughput_copies(demands, tile_rows, tile_cols, len(usable))
        if copies is None or all(c == 1 for c in copies.values()):
            return None
        copied = copied_blocks(blocks, layers, copies)
        groups, offset = diagonal_packing(copied, tile_rows, tile_cols)
        details["copies_proven_optimal"] = True  # the exact search of replicate.py, on the diagonal layout
        details["bottleneck_reads_per_example"] = bottleneck(demands, copies)
        details["bottleneck_reads_per_example_unreplicated"] = bottleneck(demands, dict.fromkeys(copies, 1))
    elif mode == "accuracy":
        packed = accuracy_packing(blocks, layers, tile_rows, tile_cols, len(usable))
        if packed is None:
            return None
        k, copied, groups, offset = packed
        copies = {d.name: k for d in layers}
    else:
        raise AnalogcError(f"unknown replication mode {mode!r}")
    details["copies"] = copies
    views = layer_views(layers, mode, copies)
    positions = place_tiles(groups, block_flows(copied, views), usable, spec, 0.5 * time_limit, seed)
    tile_of = {bid: tuple(positions["position"][g]) for g, members in enumerate(groups) for bid in members}
    bound = lower_bound_tiles(copied, spec)
    return Placement(
        tile_of,
        offset,
        placer=f"replicate-{mode}",
        status="OPTIMAL" if len(groups) == bound else "FEASIBLE",
        objective=float(len(groups)),
        best_bound=float(bound),
        seconds=time.perf_counter() - start,
        blocks=copied,
        extra={
            **details,
            "traffic": traffic(copied, tile_of, views),
            "traffic_greedy": greedy_baseline_traffic(copied, views, spec, usable),
            "traffic_proven_optimal": positions["optimal"],
            "positions_status": positions["status"],
        },
    )


def annotate_copies(meta: dict, placement: Placement | None) -> None:
    """Write the replication into the program's JSON: `replicate` and `copies` on every
    layer, `copy` on every block. A plan without replication is left as it was."""
    if placement is None or "copies" not in placement.extra:
        return
    copies, mode = placement.extra["copies"], placement.extra["replicate"]
    for layer in meta["layers"]:
        layer["replicate"], layer["copies"] = mode, int(copies[layer["name"]])
    by_id = {b.id: b for b in placement.blocks}
    for entry in meta["blocks"]:
        entry["copy"] = by_id[entry["id"]].copy
