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


def read_graph(name: str, array_rows: int, blocks: list[BlockMatrices]) -> onnx.ModelProto:
    """x [batch, array_rows] (and x_sq, when a block has variances) -> y_<id> (and v_<id>)."""
    has_variance = any(b.variance is not None for b in blocks)
    sources = ["x", "x_sq"] if has_variance else ["x"]
    inputs = [helper.make_tensor_value_info(s, TensorProto.FLOAT, ["batch", array_rows]) for s in sources]
    nodes, initializers, outputs = [], [], []
    for b in blocks:
        r0, r1 = b.rows
        for source, matrix, out in (("x", b.weights, f"y_{b.block_id}"), ("x_sq", b.variance, f"v_{b.block_id}")):
            if matrix is None:
                continue
            operand = source
            if (r0, r1) != (0, array_rows):
                operand = f"{source}_{b.block_id}"
                bounds = [f"{operand}_{k}" for k in ("start", "end", "axis")]
                initializers += [numpy_helper.from_array(np.array([v], dtype=np.int64), n) for n, v in zip(bounds, (r0, r1, 1))]
                nodes.append(helper.make_node("Slice", [source, *bounds], [operand]))
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
        model = read_graph(name, array_rows, blocks).SerializeToString()
        self.session = make_session(model, f"tile reads of layer {name}", spin=spin)

    def __call__(self, x: np.ndarray, x_sq: np.ndarray | None) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        """{block id: (x[:, rows] @ weights, x_sq[:, rows] @ variance or None)}."""
        feeds = {"x": np.ascontiguousarray(x)}
        if self.has_variance:
            feeds["x_sq"] = np.ascontiguousarray(x_sq)
        results = iter(run_session(self.session, feeds, f"tile reads of layer {self.name}"))
        return {bid: (next(results), next(results) if noisy else None) for bid, noisy in self.outputs}
