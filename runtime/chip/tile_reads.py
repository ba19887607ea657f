"""A layer's tile reads (the matrix products) as one onnxruntime session.

Every block of a layer reads the layer's DAC outputs x[:, rows] through its cells'
effective weights, and, with read noise, the squared inputs through the cells' read-noise
variances: two products per block, which are most of the simulator's time. They run in
onnxruntime because its MLAS GEMM packs a constant right-hand matrix once, when the
session is made, and was about 20% faster than numpy's OpenBLAS on these shapes here (a
256 x 512 x 250 product: 180 µs against 226 µs); one session per layer also turns a
layer's products into one call. The sessions are rebuilt whenever the weights change
(`Chip.set_time`); the matrices stay float32 and the products are plain float32 GEMMs, so
the ideal chip still matches the reference to float32 tolerance.

A row-split layer's blocks read different rows of its input. The session takes the input
as its row segments (`row_bounds`), which the chip's DAC writes each in place
(`dac_kernels.dac_layer` with `bounds`), instead of the whole input cut by Slice nodes:
those copied x and x_sq for every block, and the Fashion-MNIST model's products took
1.09 ms a batch with them against 0.87 ms without (same bits; 2026-12-05).

The sessions' worker threads do not spin between calls (`SPIN`). Each session has its own
pool, so with spinning every layer's worker kept a core busy after its call, against the
next layer's session and the ADC kernel: on the 2-core bench machine the Fashion-MNIST
model ran at about 40k examples/s with spinning and 110k without (bench/infer_bench.py's
loop, 2026-12-03); the small digits models were unchanged within the machine's noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from analogc.runtime.chip.host import make_session, run_session

OPSET = 17
SPIN = False  # whether the sessions' threads spin between calls (see the module docstring)


@dataclass(frozen=True)
class BlockMatrices:
    """One block of a layer: its rows of the layer's array (r0, r1), its effective weights
    [r1 − r0, C] and its read-noise variances of the same shape (or None)."""

    block_id: int
    rows: tuple[int, int]
    weights: np.ndarray
    variance: np.ndarray | None


def row_bounds(array_rows: int, blocks: list[BlockMatrices]) -> tuple[int, ...]:
    """The layer's rows cut at every block's first and last row: 0 < … < array_rows. Each
    segment between two bounds is one input of the reads (the DAC writes each in place)."""
    return tuple(sorted({0, array_rows, *(r for b in blocks for r in b.rows)}))


def segment_name(source: str, r0: int, r1: int) -> str:
    return f"{source}_{r0}_{r1}"


def read_graph(name: str, array_rows: int, blocks: list[BlockMatrices]) -> onnx.ModelProto:
    """x and x_sq (when a block has variances), as their row segments (`row_bounds`):
    x_<r0>_<r1> [batch, r1 − r0] -> y_<id> (and v_<id>). A block that spans several
    segments reads them joined (Concat); the plans so far cut the rows of a layer the
    same way for all its blocks, so each block reads one segment as it is."""
    has_variance = any(b.variance is not None for b in blocks)
    sources = ["x", "x_sq"] if has_variance else ["x"]
    bounds = row_bounds(array_rows, blocks)
    segments = list(zip(bounds[:-1], bounds[1:]))
    inputs = [helper.make_tensor_value_info(segment_name(s, r0, r1), TensorProto.FLOAT, ["batch", r1 - r0]) for s in sources for r0, r1 in segments]
    nodes, initializers, outputs = [], [], []
    for b in blocks:
        r0, r1 = b.rows
        for source, matrix, out in (("x", b.weights, f"y_{b.block_id}"), ("x_sq", b.variance, f"v_{b.block_id}")):
            if matrix is None:
                continue
            parts = [segment_name(source, a, z) for a, z in segments if r0 <= a and z <= r1]
            operand = parts[0]
            if len(parts) > 1:
                operand = f"{source}_{b.block_id}"
                nodes.append(helper.make_node("Concat", parts, [operand], axis=1))
            initializers.append(numpy_helper.from_array(np.ascontiguousarray(matrix, dtype=np.float32), f"{out}_matrix"))
            nodes.append(helper.make_node("MatMul", [operand, f"{out}_matrix"], [out]))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", matrix.shape[1]]))
    graph = helper.make_graph(nodes, f"reads_{name}", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


class LayerReads:
    """The products of every block of one layer, in one onnxruntime call."""

    def __init__(self, name: str, array_rows: int, blocks: list[BlockMatrices], spin: bool = SPIN):
        self.name = name
        self.has_variance = any(b.variance is not None for b in blocks)
        self.outputs = [(b.block_id, b.variance is not None) for b in blocks]
        self.bounds = row_bounds(array_rows, blocks)
        self.names = {s: [segment_name(s, r0, r1) for r0, r1 in zip(self.bounds[:-1], self.bounds[1:])] for s in ("x", "x_sq")}
        model = read_graph(name, array_rows, blocks).SerializeToString()
        self.session = make_session(model, f"tile reads of layer {name}", spin=spin)

    def __call__(self, x, x_sq) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        """{block id: (x[:, rows] @ weights, x_sq[:, rows] @ variance or None)}. x (and
        x_sq) is the layer's [batch, array_rows] input, or the tuple of its row segments
        (`row_bounds`) as the DAC wrote them (`dac_kernels.dac_layer` with these bounds)."""
        feeds = self.segment_feeds("x", x)
        if self.has_variance:
            feeds.update(self.segment_feeds("x_sq", x_sq))
        results = iter(run_session(self.session, feeds, f"tile reads of layer {self.name}"))
        return {bid: (next(results), next(results) if noisy else None) for bid, noisy in self.outputs}

    def segment_feeds(self, source: str, x) -> dict:
        names = self.names[source]
        if not isinstance(x, tuple):  # the whole input: cut it here
            x = tuple(x[:, r0:r1] for r0, r1 in zip(self.bounds[:-1], self.bounds[1:]))
        return {name: np.ascontiguousarray(part) for name, part in zip(names, x, strict=True)}
