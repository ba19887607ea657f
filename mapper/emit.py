"""Emit the tile program: layers, blocks, placement, instruction stream, weights, host ONNX."""

from __future__ import annotations

import numpy as np
import onnx

import analogc
from analogc.mapper.layer_graph import ModelBatch, symbolic_dims
from analogc.mapper.partition import array_shape, bias_on_array
from analogc.mapper.place import lower_bound_tiles
from analogc.mapper.weight_range import parts_stats, parts_w_max
from analogc.runtime.format.program import Program


def layer_entry(dense, spec) -> dict:
    rows, cols = array_shape(dense, spec)
    if dense.bias is None:
        bias = "none"
    else:
        bias = "analog" if bias_on_array(True, spec) else "digital"
    return {
        "name": dense.name,
        "kind": dense.kind,
        "reads_per_example": dense.reads_per_example,
        **({} if dense.reads_per_example_exact else {"reads_per_example_exact": False}),
        "input": dense.input,
        "output": dense.output,
        "shape": list(dense.shape),
        "array_shape": [rows, cols],
        "bias": bias,
        "activation": {"op": dense.activation, **dense.activation_params},
        "dtype": dense.dtype,
        "onnx_nodes": list(dense.onnx_nodes),
        **weight_scale(dense, spec),
        **({"conv": dense.conv.to_json()} if dense.conv is not None else {}),
    }


def weight_scale(dense, spec) -> dict:
    """The layer's weight range w_max over the array matrix (weights and analog bias; the
    spec's rule, mapper/weight_range.py). The µS per weight unit is not stored: the
    runtime derives it from w_max and the program's target (`us_per_weight`)."""
    with_bias = dense.bias is not None and bias_on_array(True, spec)
    # In memory order (a view, also for Gemm's transposed weights): no |w| copy of a
    # layer of 100 M weights is made (weight_range.parts_w_max).
    parts = [np.ravel(np.asarray(dense.weight), order="K")]
    if with_bias:
        parts.append(np.asarray(dense.bias).ravel())
    return parts_scale(parts, spec)


def magnitude_scale(magnitudes: np.ndarray, spec) -> dict:
    """w_max and (with `periphery.adc_range = "quantile"`) the ADC's
    range, for a layer whose array holds weights of these magnitudes."""
    return parts_scale([np.asarray(magnitudes).ravel()], spec)


def parts_scale(parts: list, spec) -> dict:
    stats = parts_stats(parts)
    w_max = parts_w_max(parts, spec, stats=stats)
    scale = {"w_max": w_max}
    if spec.periphery.adc_range == "quantile":
        scale["adc_range"] = parts_w_max(parts, spec, rule="quantile", stats=stats)
    return scale


def emit_program(layer_graph, blocks, placement, spec, source_model: onnx.ModelProto, model_name: str, original: bytes,
                 stripped: list | None = None) -> Program:
    """Everything the runtime needs, and nothing it must look up in the mapper."""
    layers = layer_graph.dense_layers
    tiles_of = {}
    for block in blocks:
        tiles_of.setdefault(block.layer, set()).add(tuple(placement.tile[block.id]))
    layer_entries = []
    for dense in layers:
        entry = layer_entry(dense, spec)
        entry["blocks"] = sum(1 for b in blocks if b.layer == dense.name)
        entry["tiles"] = len(tiles_of.get(dense.name, ()))
        entry["row_split"] = len({b.rows for b in blocks if b.layer == dense.name}) > 1
        entry["col_split"] = len({b.cols for b in blocks if b.layer == dense.name}) > 1
        layer_entries.append(entry)
    block_entries = [
        {
            "id": b.id,
            "layer": b.layer,
            "rows": list(b.rows),
            "cols": list(b.cols),
            "tile": list(placement.tile[b.id]),
            "offset": list(placement.offset[b.id]),
        }
        for b in blocks
    ]
    instructions, members, segments = [], {}, []
    for step in layer_graph.steps:
        if hasattr(step, "weight"):
            instructions.append({"op": "load", "layer": step.name})
            instructions.extend({"op": "mvm", "block": b.id} for b in blocks if b.layer == step.name)
            instructions.append({"op": "store", "layer": step.name})
        else:
            member = f"host/{step.name}.onnx"
            members[member] = step.model.SerializeToString()
            segments.append(
                {"name": step.name, "member": member, "inputs": step.inputs, "outputs": step.outputs, "onnx_nodes": step.onnx_nodes}
            )
            instructions.append({"op": "host", "segment": step.name})
    members["original.onnx"] = original
    arrays = {}
    for dense in layers:
        arrays[f"weight/{dense.name}"] = dense.weight.astype(np.float32, copy=False)
        if dense.bias is not None:
            arrays[f"bias/{dense.name}"] = dense.bias.astype(np.float32, copy=False)
    for name, value in layer_graph.constant_outputs.items():
        arrays[f"constant/{name}"] = np.asarray(value)
    used_cells = sum(b.cells for b in blocks)
    tiles_used = placement.tiles_used
    meta = {
        "analogc_version": analogc.__version__,
        "model": {
            "name": model_name,
            "inputs": input_entries(layer_graph, source_model),
            "outputs": [t.to_json() for t in layer_graph.outputs],
            "constant_outputs": sorted(layer_graph.constant_outputs),
            "opset": next((i.version for i in source_model.opset_import if i.domain in ("", "ai.onnx")), None),
            **({"stripped_initializers": stripped} if stripped else {}),  # kept once, in the arrays (strip_weights.py)
        },
        "target": spec.to_dict(),
        "layers": layer_entries,
        "host_segments": segments,
        "host_notes": list(layer_graph.host_notes),
        "blocks": block_entries,
        "placement": {
            "placer": placement.placer,
            "grid": [spec.chip.grid_rows, spec.chip.grid_cols],
            "tile": [spec.chip.tile_rows, spec.chip.tile_cols],
            "tiles_used": tiles_used,
            "lower_bound_tiles": lower_bound_tiles(blocks, spec),
            "utilization": used_cells / (tiles_used * spec.cells_per_tile) if tiles_used else 0.0,
            "solver": {
                "status": placement.status,
                "objective": placement.objective,
                "best_bound": placement.best_bound,
                "seconds": round(placement.seconds, 6),
            },
            "details": {k: v for k, v in placement.extra.items() if k not in ("traffic", "traffic_greedy")},
            "traffic": placement.extra.get("traffic", 0),
            "traffic_greedy": placement.extra.get("traffic_greedy", placement.extra.get("traffic", 0)),
        },
        "instructions": {"inference": instructions},
    }
    return Program(meta, arrays, members)


def input_entries(layer_graph, source_model: onnx.ModelProto) -> list[dict]:
    """The model's inputs; one whose batch symbol is not on axis 0 (a time-major
    [T, N, K] sequence with symbolic T and N) says where it is (`batch_axis`): `run`
    cannot cut its examples along axis 0, which would cut the sequences."""
    declared = {v.name: symbolic_dims(v.type) for v in source_model.graph.input}
    batch = layer_graph.batch or ModelBatch()
    entries = []
    for tensor in layer_graph.inputs:
        entry = tensor.to_json()
        dims = declared.get(tensor.name) or []
        axis = next((i for i, d in enumerate(dims) if isinstance(d, str) and d in batch.names), None)
        if axis:
            entry["batch_axis"] = axis
        entries.append(entry)
    return entries
