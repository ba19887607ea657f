"""Read-pass operation counts with each layer's own number of reads and copies.

The per-vector table of runtime/cost/opcounts.py counts one vector through every block; that
is exact when every block reads every vector of its layer. Replicated layers break it:
a throughput copy reads only its positions, a flow between copies carries only the
positions both read, and a throughput layer's read steps are per round (its copies
read side by side). Here every count is a per-vector count times its own multiplicity,
worked out from how many examples each layer read with how many positions:

- a block of copy q: the vectors copy q reads (all of them except for throughput);
- a layer's digital work: all its vectors (accuracy copies add one division per output);
- read steps: rounds × the slowest tile's steps for one read of every block of the
  layer there (all copies); rounds = examples · ceil(positions / copies) for
  throughput, the vectors otherwise;
- a flow from producer copy a to consumer copy b: the positions both read;
- hop steps: rounds × the layer's longest flow of each kind (words + hops − 1).

For a program without copies these are the per-vector table's counts times the vectors
(tests/runtime/test_replica_counts.py checks that).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from analogc.runtime.cost.dataflow import hops, labelled_flows, one_read_views, program_views, tile_steps
from analogc.runtime.cost.periphery_ops import ACTIVATION_OPS
from analogc.runtime.format.replicas import copies_of, mode_of, positions_of_copy, rounds


@lru_cache(maxsize=4096)
def shared_positions(positions: int, producer: tuple, a: int, consumer: tuple, b: int) -> int:
    """Positions of one example read by both producer copy a and consumer copy b; each
    side is (mode, copies), and only throughput copies read a share of the positions."""
    p = np.arange(positions)
    mine = np.ones(positions, dtype=bool)
    for (mode, copies), copy in ((producer, a), (consumer, b)):
        if mode == "throughput":
            mine &= p % copies == copy
    return int(mine.sum())


def read_counts(program, phase: str, examples: dict, counts) -> None:
    """Add to `counts` (an OpCounts) the read pass `phase` (inference or forward) when
    layer L read `examples[L]` = {positions per example: examples}."""
    blocks, views = program_views(program)
    layers = {layer["name"]: layer for layer in program.layers}
    side = {name: (mode_of(layer), copies_of(layer)) for name, layer in layers.items()}

    def vectors(name: str, copy: int | None = None) -> int:
        mode, copies = side[name]
        if copy is not None and mode == "throughput":
            return sum(e * positions_of_copy(t, copies, copy) for t, e in examples.get(name, {}).items())
        return sum(e * t for t, e in examples.get(name, {}).items())

    def round_count(name: str) -> int:
        mode, copies = side[name]
        if mode == "throughput":
            return sum(e * rounds(t, copies) for t, e in examples.get(name, {}).items())
        return vectors(name)

    for block in blocks:
        n = vectors(block.layer, block.copy)
        rows, cols = block.rows[1] - block.rows[0], block.cols[1] - block.cols[0]
        counts.add(phase, block.layer, block.tile, macs=rows * cols * n, dac_conversions=rows * n, adc_conversions=cols * n)
    rects: dict = {}
    for block in blocks:
        rects.setdefault(block.layer, {}).setdefault(block.tile, []).append(block.rect)
    for name, layer in layers.items():
        k, n_out = layer["shape"]
        array_rows = k + (1 if layer["bias"] == "analog" else 0)
        digital = 2 * array_rows + n_out + (n_out if layer["bias"] == "digital" else 0) + n_out * ACTIVATION_OPS[layer["activation"]["op"]]
        digital += n_out if side[name][0] == "accuracy" else 0
        steps = max((tile_steps(r) for r in rects.get(name, {}).values()), default=0)
        counts.add(phase, name, None, digital_ops=digital * vectors(name), read_steps=steps * round_count(name))
    by_id = {b.id: b for b in blocks}
    longest: dict = {}
    for src_id, dst_id, elements, kind in labelled_flows(blocks, one_read_views(views)):
        src, dst = by_id[src_id], by_id[dst_id]
        if kind == "partial":
            n = vectors(src.layer, src.copy)
            counts.add(phase, src.layer, dst.tile, digital_ops=elements * n)
        else:
            n = sum(e * shared_positions(t, side[src.layer], src.copy, side[dst.layer], dst.copy) for t, e in examples.get(dst.layer, {}).items())
        distance = hops(src.tile, dst.tile)
        if distance and n:
            counts.add(phase, src.layer, src.tile, words_moved=elements * n, word_hops=elements * distance * n)
            key = (src.layer, kind)
            longest[key] = max(longest.get(key, 0), elements + distance - 1)
    for (name, _), steps in sorted(longest.items()):
        counts.add(phase, name, None, hop_steps=steps * round_count(name))


def needs_own_counts(program) -> bool:
    """Whether a layer has copies (the per-vector table counts every block per vector)."""
    return any(copies_of(layer) > 1 for layer in program.layers)
