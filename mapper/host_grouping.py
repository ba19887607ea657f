"""Grouping the host nodes between layers into host segments (standalone ONNX models).

Segments are built in execution order, and each one's output types (inferred on the
segment when the whole model's inference could not tell them) and each layer's output
type are recorded as they are made: a later segment reading them has typed, shaped inputs.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from analogc.mapper.host_segment import build_segment_model, node_reads
from analogc.mapper.layer_graph import Dense, HostSegment, output_positions, symbolic_dims
from analogc.mapper.model_facts import Context


def group_host_segments(items: list, ctx: Context, inputs: list, outputs: list) -> list:
    """Consecutive host nodes become one segment; keep order so the result is acyclic."""
    # A segment ends just before a layer or at the end, and outputs what anything after
    # it reads: that set is copied at those positions only (at every node, it made
    # grouping quadratic in the number of nodes: 2 s of a 10,000-node graph's compile).
    ends = {p - 1 for p, item in enumerate(items) if isinstance(item, Dense)} | {len(items) - 1}
    reads_after: dict[int, set] = {}
    later: set = {o.name for o in outputs}
    for position in range(len(items) - 1, -1, -1):
        if position in ends:
            reads_after[position] = set(later)
        item = items[position]
        later |= {item.input} if isinstance(item, Dense) else node_reads(item)
    steps, run = [], []
    for position, item in enumerate(items):
        if isinstance(item, Dense):
            if run:
                steps.append(make_segment(run, reads_after[position - 1], ctx, len(steps)))
                run = []
            steps.append(item)
            declare_layer_output(item, ctx)
        else:
            run.append(item)
    if run:
        steps.append(make_segment(run, reads_after[len(items) - 1], ctx, len(steps)))
    return steps


def make_segment(nodes: list, needed_later: set, ctx: Context, number: int) -> HostSegment:
    produced, seg_inputs = set(), []
    for node in nodes:
        for tensor in [*node.input, *sorted(node_reads(node) - set(node.input))]:
            if tensor and tensor not in produced and tensor not in ctx.constants and tensor not in seg_inputs:
                seg_inputs.append(tensor)
        produced.update(o for o in node.output if o)
    seg_outputs = [o for node in nodes for o in node.output if o and o in needed_later]
    name = f"host{number}"
    while name in ctx.layer_names:  # an ONNX node may already be called "host0"
        name = f"{name}_"
    model = build_segment_model(nodes, seg_inputs, seg_outputs, ctx.constants, ctx.value_types, ctx.model, name, ctx.origin)
    for output in model.graph.output:
        ctx.value_types[output.name] = output.type
    labels = [node.name or node.op_type for node in nodes]
    return HostSegment(name, seg_inputs, seg_outputs, model, labels)


def declare_layer_output(dense: Dense, ctx: Context) -> None:
    """The layer's output: its input's shape with the last axis N (a convolution's:
    [batch, N, output positions...]), in the input's type (the layer's dtype when that
    is unknown), unless inference already knew it."""
    known = ctx.value_types.get(dense.output)
    if known is not None and known.tensor_type.elem_type and known.tensor_type.HasField("shape"):
        return
    elem_type = ctx.elem_type(dense.input) or helper.np_dtype_to_tensor_dtype(np.dtype(dense.dtype))
    dims = symbolic_dims(ctx.value_types.get(dense.input))  # (a batch symbol stays one)
    shape = None
    if dims and dense.conv is None:
        shape = dims[:-1] + [dense.shape[1]]
    elif dims and dense.conv is not None:
        positions = output_positions(dims[2:], dense.conv)
        shape = None if positions is None else [dims[0], dense.shape[1], *positions]
    ctx.value_types[dense.output] = helper.make_tensor_type_proto(elem_type, shape=shape)
