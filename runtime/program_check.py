"""Structural checks of a loaded tile program, so that a file whose checksums were
recomputed after editing still fails with a clear error instead of a crash."""

from __future__ import annotations

from analogc.errors import AnalogcError
from analogc.runtime.spec import spec_from_dict

OPS = {"host", "load", "mvm", "store"}


def check_program(meta: dict, arrays: dict, members: dict, origin: str) -> None:
    """Every reference resolves and every block fits its layer, its tile and the grid."""

    def fail(what: str):
        raise AnalogcError(f"{origin}: inconsistent tile program: {what}")

    spec = spec_from_dict(meta["target"], origin=f"{origin}: target")
    if not isinstance(meta["layers"], list) or not isinstance(meta["blocks"], list):
        fail("layers and blocks must be lists")
    layers = {}
    for layer in meta["layers"]:
        try:
            name, (k, n) = layer["name"], layer["shape"]
            weight = arrays[f"weight/{name}"]
        except (KeyError, TypeError, ValueError):
            fail(f"layer entry {str(layer)[:80]} lacks a name, a [K, N] shape or its weights")
        if weight.shape != (k, n) or weight.dtype.kind != "f":
            fail(f"weights of layer {name!r} are {weight.dtype} {weight.shape}, the layer says ({k}, {n})")
        if layer.get("bias") in ("analog", "digital") and arrays.get(f"bias/{name}", None) is None:
            fail(f"layer {name!r} has a bias but no bias array")
        if layer.get("bias") in ("analog", "digital") and arrays[f"bias/{name}"].shape != (n,):
            fail(f"bias of layer {name!r} has shape {arrays[f'bias/{name}'].shape}, expected ({n},)")
        layers[name] = (k + (1 if layer.get("bias") == "analog" else 0), n)
    grid, tile = (spec.chip.grid_rows, spec.chip.grid_cols), (spec.chip.tile_rows, spec.chip.tile_cols)
    ids = set()
    for block in meta["blocks"]:
        try:
            bid, name = block["id"], block["layer"]
            (r0, r1), (c0, c1) = block["rows"], block["cols"]
            (tr, tc), (o_r, o_c) = block["tile"], block["offset"]
        except (KeyError, TypeError, ValueError):
            fail(f"block entry {str(block)[:80]} is malformed")
        if name not in layers:
            fail(f"block {bid} names unknown layer {name!r}")
        rows, cols = layers[name]
        if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
            fail(f"block {bid} covers rows [{r0}, {r1}) cols [{c0}, {c1}) outside layer {name!r}")
        if not (0 <= tr < grid[0] and 0 <= tc < grid[1]):
            fail(f"block {bid} sits on tile [{tr}, {tc}] outside the {grid[0]}x{grid[1]} grid")
        if not (0 <= o_r and o_r + r1 - r0 <= tile[0] and 0 <= o_c and o_c + c1 - c0 <= tile[1]):
            fail(f"block {bid} does not fit inside its tile at offset [{o_r}, {o_c}]")
        ids.add(bid)
    if len(ids) != len(meta["blocks"]):
        fail("block ids are not unique")
    segments = {}
    for segment in meta.get("host_segments", []):
        if segment.get("member") not in members:
            fail(f"host segment {segment.get('name')!r} has no ONNX member")
        segments[segment["name"]] = segment
    for instruction in meta["instructions"].get("inference", []) if isinstance(meta["instructions"], dict) else fail("no instructions"):
        op = instruction.get("op") if isinstance(instruction, dict) else None
        if op not in OPS:
            fail(f"unknown instruction {str(instruction)[:60]}")
        if op == "host" and instruction.get("segment") not in segments:
            fail(f"instruction runs unknown host segment {instruction.get('segment')!r}")
        if op in ("load", "store") and instruction.get("layer") not in layers:
            fail(f"instruction names unknown layer {instruction.get('layer')!r}")
        if op == "mvm" and instruction.get("block") not in ids:
            fail(f"instruction reads unknown block {instruction.get('block')!r}")
