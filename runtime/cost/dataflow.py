"""Data flow between blocks on the tile mesh, and which blocks of a tile must take turns.

Shared by the mapper (placement objective, plan picture) and the runtime (cost model),
so both count the same traffic. Blocks and layers are any objects with the attributes
used here (`id`, `layer`, `rows`, `cols`; `name`, `input`, `output`, `shape`);
`BlockView`/`LayerView` wrap a tile program's JSON entries.

Two flows are counted on a 2-D mesh with Manhattan routing: (1) a producer block's
output columns travel to every consumer block whose weight rows read them, when one
Dense layer feeds another directly; (2) the partial sums of a row-split layer travel
to the tile of the first-row block holding the same columns, which adds them. Data
entering from or leaving to the host is not tile-to-tile traffic and is not counted.

Replicated layers (`copies` > 1, blocks numbered by `copy`): partial sums stay inside
their copy. With `replicate = "accuracy"` every copy reads the whole input, the heads of
copies 1.. send their outputs to copy 0's heads, which average them (a "partial" flow:
the receiving tile adds), and only copy 0 sends the layer's output on. With
`"throughput"` copies read different positions (position p goes to copy p mod copies),
so a producer copy a feeds a consumer copy b only if some position is in both, i.e.
a ≡ b (mod gcd of the copy counts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import gcd

from analogc.runtime.format.replicas import positions_of_copy


@dataclass(frozen=True)
class BlockView:
    """A program block as the flow functions read it (rows are array rows)."""

    id: int
    layer: str
    rows: tuple
    cols: tuple
    tile: tuple = (0, 0)
    offset: tuple = (0, 0)
    copy: int = 0

    @property
    def rect(self) -> tuple:
        """(r0, c0, r1, c1) inside its tile."""
        r, c = self.offset
        return (r, c, r + self.rows[1] - self.rows[0], c + self.cols[1] - self.cols[0])


@dataclass(frozen=True)
class LayerView:
    name: str
    input: str
    output: str
    shape: tuple
    copies: int = 1
    replicate: str = "none"
    rows_per_input: int = 1  # array rows per input feature: a conv's prod(kernel), 1 for a dense layer
    reads_per_example: int = 1


def rows_per_input(layer) -> int:
    return int(getattr(layer, "rows_per_input", 1))


def reads_of(layer) -> int:
    return int(getattr(layer, "reads_per_example", 1))


def copy_reads(layer, copy: int) -> int:
    """Vectors one copy of a layer reads per example: all of them, or with throughput
    copies its share of the positions (position p goes to copy p mod copies)."""
    reads, copies = reads_of(layer), int(getattr(layer, "copies", 1))
    if getattr(layer, "replicate", "none") != "throughput" or copies <= 1:
        return reads
    return positions_of_copy(reads, copies, copy)


def one_read_views(layers: list) -> list[LayerView]:
    """The layers as views under which every flow carries the elements of one read (of
    each copy): the cost model counts flows per read and multiplies by the reads."""
    return [replace(v, reads_per_example=v.copies if v.replicate == "throughput" else 1) for v in layers]


def program_views(program) -> tuple[list[BlockView], list[LayerView]]:
    """The blocks and layers of a tile program as flow-function views."""
    blocks = [
        BlockView(b["id"], b["layer"], tuple(b["rows"]), tuple(b["cols"]), tuple(b["tile"]), tuple(b["offset"]), b.get("copy", 0))
        for b in program.blocks
    ]
    layers = [
        LayerView(l["name"], l["input"], l["output"], tuple(l["shape"]), l.get("copies", 1), l.get("replicate", "none"),
                  conv_rows_per_input(l), int(l.get("reads_per_example", 1)))
        for l in program.layers
    ]
    return blocks, layers


def conv_rows_per_input(layer: dict) -> int:
    conv = layer.get("conv") if layer.get("kind") == "conv" else None
    size = 1
    for k in (conv or {}).get("kernel", []):
        size *= int(k)
    return size


def hops(a, b) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def overlap(a: tuple, b: tuple) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def dense_edges(layers: list) -> list[tuple[str, str]]:
    """(producer, consumer) pairs of layers where one reads the other's output directly."""
    by_output = {d.output: d.name for d in layers}
    return [(by_output[d.input], d.name) for d in layers if d.input in by_output]


def block_flows(blocks: list, layers: list) -> list[tuple[int, int, int]]:
    """(source block id, destination block id, elements per example) of every flow: a
    layer that reads several vectors per example (a conv's patches) sends that many."""
    return [(a, b, e) for a, b, e, _ in labelled_flows(blocks, layers)]


def labelled_flows(blocks: list, layers: list) -> list[tuple[int, int, int, str]]:
    """block_flows with each flow's kind: "output" (producer -> consumer) or "partial"."""
    by_layer: dict[str, list] = {}
    for block in blocks:
        by_layer.setdefault(block.layer, []).append(block)
    of = {d.name: d for d in layers}
    mode = {d.name: (getattr(d, "replicate", "none"), getattr(d, "copies", 1)) for d in layers}
    flows = []
    for producer, consumer in dense_edges(layers):
        k, size = of[consumer].shape[0], rows_per_input(of[consumer])
        for src in by_layer.get(producer, []):
            if src.rows[0] != 0 or (mode[producer][0] == "accuracy" and src.copy != 0):
                continue  # the reduced (and averaged) column lives on copy 0's first row block
            for dst in by_layer.get(consumer, []):
                features = (dst.rows[0] // size, -(-min(dst.rows[1], k) // size))  # a conv's rows are channels × kernel
                elements = overlap(src.cols, features)
                if elements and positions_meet(mode[producer], src.copy, mode[consumer], dst.copy):
                    flows.append((src.id, dst.id, elements * share(of[producer], src.copy, mode[consumer], mode[producer]), "output"))
    for name, layer_blocks in by_layer.items():
        heads = [b for b in layer_blocks if b.rows[0] == 0]
        for block in layer_blocks:
            averaged = block.rows[0] == 0 and block.copy != 0 and mode.get(name, ("none", 1))[0] == "accuracy"
            if block.rows[0] == 0 and not averaged:
                continue
            for head in heads:
                if head.copy != (0 if averaged else block.copy):
                    continue
                elements = overlap(block.cols, head.cols) * (copy_reads(of[name], block.copy) if name in of else 1)
                if elements:
                    flows.append((block.id, head.id, elements, "partial"))
    return flows


def share(producer_layer, copy: int, consumer: tuple, producer: tuple) -> int:
    """Vectors of a producer copy's output that one consumer copy it meets receives per
    example: the copy's reads, split evenly (rounded up) over the throughput copies of the
    consumer that read its positions."""
    reads = copy_reads(producer_layer, copy)
    if consumer[0] != "throughput" or consumer[1] <= 1:
        return reads
    meeting = consumer[1] // gcd(producer[1], consumer[1]) if producer[0] == "throughput" else consumer[1]
    return -(-reads // meeting)


def positions_meet(producer: tuple, a: int, consumer: tuple, b: int) -> bool:
    """Whether producer copy a computes positions that consumer copy b reads; each side
    is (replicate mode, copies). Only throughput copies split positions."""
    if producer[0] != "throughput" or consumer[0] != "throughput":
        return True
    return (a - b) % gcd(producer[1], consumer[1]) == 0


def backward_flows(blocks: list, layers: list) -> list[tuple[int, int, int, str]]:
    """The transpose read's flows: (1) the error of a consumer's input rows, reduced on
    the tile of its first-column block, travels back to every producer block whose
    columns made those inputs; (2) column-split blocks send partial row sums to that
    first-column block. Bias rows carry no error and are not sent."""
    by_layer: dict[str, list] = {}
    for block in blocks:
        by_layer.setdefault(block.layer, []).append(block)
    k_of = {d.name: d.shape[0] for d in layers}
    flows = []
    for producer, consumer in dense_edges(layers):
        k = k_of[consumer]
        for src in by_layer.get(consumer, []):
            if src.cols[0] != 0:
                continue
            for dst in by_layer.get(producer, []):
                elements = overlap((src.rows[0], min(src.rows[1], k)), dst.cols)
                if elements:
                    flows.append((src.id, dst.id, elements, "output"))
    for name, layer_blocks in by_layer.items():
        k = k_of.get(name, 0)
        heads = [b for b in layer_blocks if b.cols[0] == 0]
        for block in layer_blocks:
            if block.cols[0] == 0:
                continue
            for head in heads:
                elements = overlap((block.rows[0], min(block.rows[1], k)), head.rows)
                if elements:
                    flows.append((block.id, head.id, elements, "partial"))
    return flows


def traffic(blocks: list, tiles: dict, layers: list) -> int:
    """Total elements × hops per example for block → tile assignment `tiles[id]`."""
    return sum(elements * hops(tiles[a], tiles[b]) for a, b, elements in block_flows(blocks, layers))


def share_lines(a: tuple, b: tuple) -> bool:
    """Rectangles (r0, c0, r1, c1) in one tile that share rows (drivers) or columns (ADCs)
    and so cannot be read in the same step."""
    return min(a[2], b[2]) > max(a[0], b[0]) or min(a[3], b[3]) > max(a[1], b[1])


def tile_steps(rects: list) -> int:
    """Sequential steps to read every rectangle of one tile once: a greedy colouring
    (largest first, deterministic) of the graph of rectangles that share lines."""
    import networkx as nx  # heavy: networkx (0.2 s), loaded only when read steps are counted

    graph = nx.Graph()
    graph.add_nodes_from(range(len(rects)))
    graph.add_edges_from((i, j) for i in range(len(rects)) for j in range(i + 1, len(rects)) if share_lines(rects[i], rects[j]))
    if not rects:
        return 0
    colours = nx.coloring.greedy_color(graph, strategy="largest_first")
    return 1 + max(colours.values())
