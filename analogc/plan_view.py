"""The allocation of a tile program as JSON (the contract's fields) and as text tables."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from analogc.runtime.cost.dataflow import share_lines, tile_steps
from analogc.runtime.cost.pricing import inference_estimate, summary_lines
from analogc.wording import count

MAX_REASONS_SHOWN = 10  # host reasons listed without -v (a ShuffleNet has dozens of depthwise convs)


def layer_split(program, layer: dict) -> dict:
    """How a layer is split: the fields emission stores, recomputed from the blocks when a
    (hand-made or older) program lacks them."""
    mine = [b for b in program.blocks if b["layer"] == layer["name"]]
    k, n = layer["shape"]
    derived = {
        "array_shape": [k + (1 if layer["bias"] == "analog" else 0), n],
        "blocks": len(mine),
        "tiles": len({tuple(b["tile"]) for b in mine}),
        "row_split": len({tuple(b["rows"]) for b in mine}) > 1,
        "col_split": len({tuple(b["cols"]) for b in mine}) > 1,
    }
    return {key: layer.get(key, value) for key, value in derived.items()}


def plan_json(program) -> dict:
    """The fields docs/formats.md promises for `compile --json` and `plan --json`."""
    placement = program.meta["placement"]
    k_of = {layer["name"]: layer["shape"][0] for layer in program.layers}
    solver = dict(placement["solver"])
    solver["proven_optimal"] = solver.get("status") == "OPTIMAL"
    return {
        "model": program.meta["model"]["name"],
        "target": program.meta["target"]["name"],
        "grid": placement["grid"],
        "tile": placement["tile"],
        "tiles_used": placement["tiles_used"],
        "lower_bound_tiles": placement["lower_bound_tiles"],
        "utilization": placement["utilization"],
        "placer": placement.get("placer", "unknown"),
        "solver": solver,
        "traffic": placement["traffic"],
        "traffic_greedy": placement.get("traffic_greedy"),
        "traffic_unit": "activation elements x mesh hops per example",
        "faulty_tiles": faulty_tiles(program),
        "placer_details": placement.get("details", {}),
        "layers": [
            {
                "name": layer["name"],
                "kind": layer.get("kind", "dense"),
                "reads_per_example": layer.get("reads_per_example", 1),
                "reads_per_example_exact": layer.get("reads_per_example_exact", True),
                **conv_fields(layer),
                "shape": layer["shape"],
                "array_shape": split["array_shape"],
                "bias": layer["bias"],
                "activation": layer["activation"]["op"],
                "blocks": split["blocks"],
                "tiles": split["tiles"],
                "copies": layer.get("copies", 1),
                "replicate": layer.get("replicate", "none"),
                "partial_sums_added_digitally": split["row_split"],
                "columns_concatenated": split["col_split"],
            }
            for layer, split in ((layer, layer_split(program, layer)) for layer in program.layers)
        ],
        "blocks": [block_json(block, k_of[block["layer"]]) for block in program.blocks],
        "host_segments": [
            {"name": s["name"], "inputs": s["inputs"], "outputs": s["outputs"], "onnx_nodes": s["onnx_nodes"]}
            for s in program.meta.get("host_segments", [])
        ],
        "host_reasons": list(program.meta.get("host_notes", [])),
        "tile_utilization": tile_utilization(program),
        "schedule": schedule_summary(program),
        "cost_estimate": cost_estimate(program),
        **({"opset_converted": program.meta["model"]["opset_converted"]} if "opset_converted" in program.meta["model"] else {}),
        "batchnorm_folded": bool(program.meta["model"].get("batchnorm_folded", False)),
    }


def conv_fields(layer: dict) -> dict:
    """A convolution's geometry (ONNX attributes; pads resolved when the input's size
    was known at compile time)."""
    conv = layer.get("conv")
    if not conv:
        return {}
    return {key: conv[key] for key in ("kernel", "strides", "pads", "dilations", "group", "auto_pad")}


def layer_kind_text(layer: dict) -> str:
    """"dense", or "conv 3x3 /2" (kernel, and strides when not all 1)."""
    if layer["kind"] != "conv":
        return layer["kind"]
    text = "conv " + "x".join(str(k) for k in layer["kernel"])
    if any(s != 1 for s in layer["strides"]):
        text += " /" + "x".join(str(s) for s in layer["strides"])
    return text


def faulty_tiles(program) -> list[list[int]]:
    """The spec's faulty tiles ([row, col], sorted): the placer never uses them."""
    return sorted([int(r), int(c)] for r, c in program.meta["target"]["chip"].get("faulty_tiles", []))


def cost_estimate(program) -> dict:
    """The static cost of one inference (exact counts, the program's [cost] table)."""
    return inference_estimate(program).to_json()


def schedule_summary(program) -> dict:
    """Blocks in one tile that share tile rows (drivers) or columns (ADCs) cannot run in
    the same step: per tile, a colouring of that conflict graph gives the steps needed."""
    by_tile: dict[tuple, list] = {}
    for block in program.blocks:
        r, c = block["offset"]
        rect = (r, c, r + block["rows"][1] - block["rows"][0], c + block["cols"][1] - block["cols"][0])
        by_tile.setdefault(tuple(block["tile"]), []).append(rect)
    steps, pairs = {}, 0
    for tile, rects in by_tile.items():
        pairs += sum(share_lines(a, b) for i, a in enumerate(rects) for b in rects[i + 1 :])
        steps[tile] = tile_steps(rects)
    return {
        "serialized_pairs": pairs,
        "max_steps_per_tile": max(steps.values(), default=0),
        "tiles_needing_more_than_one_step": sum(1 for v in steps.values() if v > 1),
    }


def block_json(block: dict, k: int) -> dict:
    """`rows` are weight rows [start, stop) of K (the contract); `array_rows` count the
    bias row too, and `bias_row` says whether this block holds it."""
    r0, r1 = block["rows"]
    return {
        "id": block["id"],
        "layer": block["layer"],
        "rows": [min(r0, k), min(r1, k)],
        "cols": block["cols"],
        "tile": block["tile"],
        "offset": block["offset"],
        "array_rows": [r0, r1],
        "bias_row": r1 > k,
        "copy": block.get("copy", 0),
    }


def tile_utilization(program) -> list[dict]:
    """Per used tile: blocks, cells used, fraction of the tile, layers present."""
    rows, cols = program.meta["placement"]["tile"]
    tiles: dict[tuple, dict] = {}
    for block in program.blocks:
        key = tuple(block["tile"])
        entry = tiles.setdefault(key, {"tile": list(key), "blocks": 0, "cells": 0, "layers": []})
        entry["blocks"] += 1
        entry["cells"] += (block["rows"][1] - block["rows"][0]) * (block["cols"][1] - block["cols"][0])
        if block["layer"] not in entry["layers"]:
            entry["layers"].append(block["layer"])
    for entry in tiles.values():
        entry["utilization"] = entry["cells"] / (rows * cols)
    return [tiles[k] for k in sorted(tiles)]


def print_plan(program, console: Console, verbose: bool = False) -> None:
    plan = plan_json(program)
    solver = plan["solver"]
    console.print(
        f"[bold]{escape(plan['model'])}[/] on [bold]{escape(plan['target'])}[/]: grid {plan['grid'][0]}x{plan['grid'][1]} tiles "
        f"of {plan['tile'][0]}x{plan['tile'][1]} cells",
        markup=True,
    )
    proven = "proven optimal" if solver["proven_optimal"] else "not proven optimal"
    console.print(
        f"tiles used {plan['tiles_used']} (lower bound {plan['lower_bound_tiles']}), "
        f"utilization {plan['utilization']:.1%}, placer {plan['placer']} ({solver['status']}, {proven}, "
        f"{solver['seconds']:.3f} s), traffic {plan['traffic']} elements·hops/example "
        f"(first-fit {plan['traffic_greedy']})"
    )
    if plan["faulty_tiles"]:
        listed = ", ".join(f"[{r}, {c}]" for r, c in plan["faulty_tiles"])
        console.print(f"{count(len(plan['faulty_tiles']), 'faulty tile')} (never used): {listed}", markup=False)
    if "opset_converted" in plan:
        converted = plan["opset_converted"]
        console.print(f"model upgraded from ONNX opset {converted['from']} to {converted['to']} (onnxruntime runs opset "
                      f"{converted['to']} and later); the reference and host segments use the upgraded model", markup=False)
    if plan["batchnorm_folded"]:
        console.print("BatchNormalization after a layer folded into its weights and bias (compile --fold-batchnorm)", markup=False)
    schedule = plan["schedule"]
    console.print(
        f"schedule: {count(schedule['serialized_pairs'], 'block pair')} {'shares' if schedule['serialized_pairs'] == 1 else 'share'} tile rows or columns; "
        f"at most {count(schedule['max_steps_per_tile'], 'sequential step')} in one tile"
    )
    details = plan["placer_details"]
    if "replicate" in details:
        line = f"replication: {details['replicate']}, copies " + ", ".join(f"{k} {v}" for k, v in details["copies"].items())
        if "bottleneck_reads_per_example" in details:
            line += (f"; slowest layer {details['bottleneck_reads_per_example']} read steps per example "
                     f"({details['bottleneck_reads_per_example_unreplicated']} without copies; copy counts proven optimal "
                     "with copies on tile diagonals)")
        console.print(line)
    console.print("cost estimate of one inference (exact counts, the spec's [cost] table; details: analogc cost):")
    for line in summary_lines(plan["cost_estimate"]):
        console.print(f"  {line}")
    table = Table(title="layers", title_justify="left")
    for column in ("layer", "kind", "K x N", "array rows x cols", "bias", "activation", "reads/example", "blocks", "tiles", "copies", "split"):
        table.add_column(column, justify="right" if column in ("blocks", "tiles", "reads/example", "copies") else "left")
    for layer in plan["layers"]:
        split = []
        if layer["partial_sums_added_digitally"]:
            split.append("rows (partial sums)")
        if layer["columns_concatenated"]:
            split.append("cols (concatenated)")
        table.add_row(
            layer["name"],
            layer_kind_text(layer),
            f"{layer['shape'][0]} x {layer['shape'][1]}",
            f"{layer['array_shape'][0]} x {layer['array_shape'][1]}",
            layer["bias"],
            layer["activation"],
            ("" if layer["reads_per_example_exact"] else "≥") + str(layer["reads_per_example"]),
            str(layer["blocks"]),
            str(layer["tiles"]),
            str(layer["copies"]) + ("" if layer["copies"] == 1 else f" ({layer['replicate']})"),
            " + ".join(split) or "-",
        )
    console.print(table)
    if not all(layer["reads_per_example_exact"] for layer in plan["layers"]):
        console.print("≥: a symbolic input dim sets the reads; counted as 1, so the cost estimate is per unit of it")
    tiles = Table(title="tiles", title_justify="left")
    for column in ("tile", "blocks", "cells", "utilization", "layers"):
        tiles.add_column(column)
    for entry in plan["tile_utilization"]:
        tiles.add_row(
            f"[{entry['tile'][0]}, {entry['tile'][1]}]",
            str(entry["blocks"]),
            str(entry["cells"]),
            f"{entry['utilization']:.1%}",
            ", ".join(entry["layers"]),
        )
    console.print(tiles)
    if verbose:
        blocks = Table(title="blocks", title_justify="left")
        for column in ("id", "layer", "rows", "cols", "tile", "offset"):
            blocks.add_column(column)
        for block in plan["blocks"]:
            blocks.add_row(
                str(block["id"]),
                block["layer"],
                f"[{block['array_rows'][0]}, {block['array_rows'][1]})" + (" +bias" if block["bias_row"] else ""),
                f"[{block['cols'][0]}, {block['cols'][1]})",
                str(block["tile"]),
                str(block["offset"]),
            )
        console.print(blocks)
    shown = plan["host_reasons"] if verbose else plan["host_reasons"][:MAX_REASONS_SHOWN]
    for note in shown:
        console.print(f"on the host: {note['op']} {note['node']}: {note['reason']}")
    if len(shown) < len(plan["host_reasons"]):
        console.print(f"... and {count(len(plan['host_reasons']) - len(shown), 'more node')} on the host (plan -v or --json lists them)")
    for segment in plan["host_segments"]:
        console.print(
            f"host segment {segment['name']} (onnxruntime): {count(len(segment['onnx_nodes']), 'node')} "
            f"[{', '.join(segment['onnx_nodes'][:6])}{', ...' if len(segment['onnx_nodes']) > 6 else ''}]",
            markup=False,  # node names such as torch's "/fc/Gemm" would read as rich markup tags
        )
