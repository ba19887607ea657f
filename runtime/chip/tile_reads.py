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

The read-noise variance products run in 8-bit integers (onnxruntime's
MatMulIntegerToFloat, VNNI or AVX2 kernels): the DAC writes the squared inputs as 7-bit
codes (`dac_kernels.square_codes`) and each block's variances are 7-bit codes per
column (`variance_codes`: code · column scale, the scale being the column's largest
variance / 127). The variance only sets the standard deviation of a read's noise; these
sums are 0.15% off the float ones on average and ~1% at worst (small inputs' squares
round to few codes), so the noise's σ is off by half that (measured on programmed layers
with ReLU inputs; tests/runtime/test_chip_drift.py bounds it). The float32 pair of products
took 0.69 ms a batch of 256 on the Fashion-MNIST model's first layer, the float
product and the integer one 0.49 ms (2026-12-06). 7 bits each side: on x86 without VNNI
the u8 x s8 kernel adds pairs of products in 16 bits, and 2 · 127 · 127 < 2¹⁵.

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
from analogc.runtime.physics.dac_kernels import SQUARE_LEVELS, square_gain

OPSET = 17
MICROSOFT_OPSET = 1  # com.microsoft, for MatMulIntegerToFloat
VARIANCE_LEVELS = 127  # a block's variances as codes 0 … 127 per column (see the module docstring)
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


def variance_codes(variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes int8 [rows, cols], scale float32 [cols]): variance ≈ codes · scale, each
    column's largest variance at code VARIANCE_LEVELS (a column without variance, or
    with one that is not finite, gets scale 1 and its finite values' codes)."""
    v = np.nan_to_num(np.asarray(variance, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    top = v.max(axis=0) if v.shape[0] else np.zeros(v.shape[1])
    scale = np.where(top > 0, top / VARIANCE_LEVELS, 1.0)
    codes = np.rint(v / scale).clip(0, VARIANCE_LEVELS).astype(np.int8)
    return codes, scale.astype(np.float32)


# The most rows one integer product sums: its int32 accumulator holds rows · 127 · 127.
# A block is at most a tile tall, and a target's tiles have at most 65,536 rows.
MAX_PRODUCT_ROWS = (2**31 - 1) // (SQUARE_LEVELS * VARIANCE_LEVELS)


def read_graph(name: str, array_rows: int, blocks: list[BlockMatrices], dac_range: float = 1.0) -> onnx.ModelProto:
    """x (float) and x_sq (uint8 square codes, when a block has variances), as their row
    segments (`row_bounds`): x_<r0>_<r1> [batch, r1 − r0] -> y_<id> = x @ weights (and
    v_<id> ≈ x² @ variance, from the codes, with x² = code / square_gain(dac_range)). A
    block that spans several segments reads them joined (Concat); the plans so far cut
    the rows of a layer the same way for all its blocks, so each block reads one
    segment as it is."""
    has_variance = any(b.variance is not None for b in blocks)
    sources = {"x": TensorProto.FLOAT, "x_sq": TensorProto.UINT8} if has_variance else {"x": TensorProto.FLOAT}
    bounds = row_bounds(array_rows, blocks)
    segments = list(zip(bounds[:-1], bounds[1:]))
    inputs = [helper.make_tensor_value_info(segment_name(s, r0, r1), t, ["batch", r1 - r0]) for s, t in sources.items() for r0, r1 in segments]
    nodes, initializers, outputs = [], [], []
    if has_variance:
        initializers.append(numpy_helper.from_array(np.array(1.0 / square_gain(dac_range), dtype=np.float32), "square_step"))
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
            if source == "x":
                initializers.append(numpy_helper.from_array(np.ascontiguousarray(matrix, dtype=np.float32), f"{out}_matrix"))
                nodes.append(helper.make_node("MatMul", [operand, f"{out}_matrix"], [out]))
            else:
                nodes.extend(variance_product(operand, matrix, out, initializers))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", matrix.shape[1]]))
    graph = helper.make_graph(nodes, f"reads_{name}", inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("com.microsoft", MICROSOFT_OPSET)] if has_variance else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def variance_product(operand: str, variance: np.ndarray, out: str, initializers: list) -> list:
    """The node for out ≈ x² @ variance from the square codes `operand`."""
    if variance.shape[0] > MAX_PRODUCT_ROWS:
        raise ValueError(f"a block of {variance.shape[0]} rows is taller than an integer variance product sums ({MAX_PRODUCT_ROWS})")
    codes, scale = variance_codes(variance)
    initializers.append(numpy_helper.from_array(codes, f"{out}_codes"))
    initializers.append(numpy_helper.from_array(scale, f"{out}_scale"))
    return [helper.make_node("MatMulIntegerToFloat", [operand, f"{out}_codes", "square_step", f"{out}_scale"], [out], domain="com.microsoft")]


class LayerReads:
    """The products of every block of one layer, in one onnxruntime call."""

    def __init__(self, name: str, array_rows: int, blocks: list[BlockMatrices], dac_range: float = 1.0, spin: bool = SPIN):
        self.name = name
        self.has_variance = any(b.variance is not None for b in blocks)
        self.outputs = [(b.block_id, b.variance is not None) for b in blocks]
        self.bounds = row_bounds(array_rows, blocks)
        self.names = {s: [segment_name(s, r0, r1) for r0, r1 in zip(self.bounds[:-1], self.bounds[1:])] for s in ("x", "x_sq")}
        model = read_graph(name, array_rows, blocks, dac_range).SerializeToString()
        self.session = make_session(model, f"tile reads of layer {name}", spin=spin)

    def __call__(self, x, x_sq) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        """{block id: (x[:, rows] @ weights, ≈ x²[:, rows] @ variance or None)}. x (and
        x_sq, its square codes) is the layer's [batch, array_rows] input, or the tuple of its row segments
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
