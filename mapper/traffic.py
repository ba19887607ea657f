"""Inter-tile traffic of a placement, in activation elements × mesh hops per example.

Two flows are counted on a 2-D mesh with Manhattan routing: (1) a producer block's
output columns travel to every consumer block whose weight rows read them, when one
Dense layer feeds another directly; (2) the partial sums of a row-split layer travel
to the tile of the first-row block holding the same columns, which adds them. Data entering from or leaving to
the host is not tile-to-tile traffic and is not counted.
"""

from __future__ import annotations


def hops(a, b) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def overlap(a: tuple, b: tuple) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def dense_edges(layers: list) -> list[tuple[str, str]]:
    """(producer, consumer) pairs of layers where one reads the other's output directly."""
    by_output = {d.output: d.name for d in layers}
    return [(by_output[d.input], d.name) for d in layers if d.input in by_output]


def block_flows(blocks: list, layers: list) -> list[tuple[int, int, int]]:
    """(source block id, destination block id, elements per example) of every flow."""
    by_layer: dict[str, list] = {}
    for block in blocks:
        by_layer.setdefault(block.layer, []).append(block)
    k_of = {d.name: d.shape[0] for d in layers}
    flows = []
    for producer, consumer in dense_edges(layers):
        for src in by_layer.get(producer, []):
            if src.rows[0] != 0:
                continue  # the reduced column lives on the first row block's tile
            for dst in by_layer.get(consumer, []):
                elements = overlap(src.cols, (dst.rows[0], min(dst.rows[1], k_of[consumer])))
                if elements:
                    flows.append((src.id, dst.id, elements))
    for layer_blocks in by_layer.values():
        heads = [b for b in layer_blocks if b.rows[0] == 0]
        for block in layer_blocks:
            if block.rows[0] == 0:
                continue
            for head in heads:
                elements = overlap(block.cols, head.cols)
                if elements:
                    flows.append((block.id, head.id, elements))
    return flows


def traffic(blocks: list, tiles: dict, layers: list) -> int:
    """Total elements × hops per example for block → tile assignment `tiles[id]`."""
    return sum(elements * hops(tiles[a], tiles[b]) for a, b, elements in block_flows(blocks, layers))
