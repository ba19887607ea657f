"""Convolutions on the tiles: the onnx package's real architectures, before and after.

For each "light" model the onnx package ships (backend/test/data/light: AlexNet, ZFNet,
VGG-19, ResNet-50, Inception v1 and v2, ShuffleNet, SqueezeNet, DenseNet-121; weights
are ConstantOfShape fills, the shapes are real), compiled twice on the default unit cell
with the grid enlarged to fit (a square about 30% above the lower bound of tiles):
- "before": the frontend without its Conv converter (what analogc mapped before Conv
  layers: Gemm/MatMul only);
- "after": with it.
Reported per model and mode: the share of the network's multiply-accumulates per example
that run on tiles (useful MACs: a grouped conv's zero blocks are not counted), tiles used
against the lower bound, the placement's status, and compile seconds (frontend,
partition, CP-SAT placement, emission; in memory). The network's MACs are counted from
the ONNX graph (shape inference): Conv, Gemm and MatMul.

    .venv/bin/python bench/conv_light_bench.py [--models resnet50,vgg19] [--time-limit 5]

Writes bench/results/conv_light.json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from analogc.mapper import compile_model
from analogc.mapper import frontend
from analogc.mapper.frontend import load_layer_graph
from analogc.mapper.partition import partition
from analogc.mapper.place import lower_bound_tiles
from analogc.runtime.format.spec import load_target

ROOT = Path(__file__).resolve().parents[1]
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def network_macs(path: Path) -> int:
    """Multiply-accumulates of one example (batch dim 1) in Conv, Gemm and MatMul nodes."""
    model = shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {}
    for v in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    sizes = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:  # ConstantOfShape weights: their shape is their input's value
        if node.op_type == "ConstantOfShape" and node.input[0] in sizes:
            init = next(t for t in model.graph.initializer if t.name == node.input[0])
            sizes[node.output[0]] = onnx.numpy_helper.to_array(init).tolist()
    total = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if not out:
            continue
        if node.op_type == "Conv":
            w = sizes.get(node.input[1]) or shapes.get(node.input[1])
            total += int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes.get(node.input[0])
            k = a[-1] if a else 0
            if node.op_type == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute):
                k = a[0]
            total += int(np.prod(out[1:])) * int(k)
    return total


def tile_macs(program) -> int:
    """Useful MACs per example of the analog layers (a grouped conv: its diagonal blocks)."""
    total = 0
    for layer in program.layers:
        k, n = layer["shape"]
        group = layer.get("conv", {}).get("group", 1)
        total += int(layer.get("reads_per_example", 1)) * k * n // group
    return total


def grid_for(path: Path, spec):
    """The spec with a square grid about 30% larger than the model's lower bound."""
    graph, _, _ = load_layer_graph(path)
    blocks = partition(graph.dense_layers, spec)
    side = max(2, math.ceil(math.sqrt(1.3 * lower_bound_tiles(blocks, spec) + 4)))
    return dataclasses.replace(spec, chip=dataclasses.replace(spec.chip, grid_rows=side, grid_cols=side))


def measure(path: Path, spec, time_limit: float) -> dict:
    spec = grid_for(path, spec)
    start = time.perf_counter()
    program = compile_model(path, spec, time_limit=time_limit)
    seconds = time.perf_counter() - start
    placement = program.meta["placement"]
    return {
        "grid": placement["grid"],
        "analog_layers": len(program.layers),
        "conv_layers": sum(1 for layer in program.layers if layer.get("kind") == "conv"),
        "host_reasons": len(program.meta.get("host_notes", [])),
        "blocks": len(program.blocks),
        "tiles_used": placement["tiles_used"],
        "lower_bound_tiles": placement["lower_bound_tiles"],
        "solver_status": placement["solver"]["status"],
        "tile_macs": tile_macs(program),
        "compile_s": round(seconds, 2),
    }


class without_conv:
    """The frontend as it was before Conv layers: its Conv converter taken out."""

    def __enter__(self):
        self.saved = frontend.CONVERTERS.pop(("", "Conv"))

    def __exit__(self, *exc):
        frontend.CONVERTERS[("", "Conv")] = self.saved
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: every light model)")
    parser.add_argument("--time-limit", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "conv_light.json"))
    args = parser.parse_args()
    spec = load_target(None)
    paths = sorted(LIGHT.glob("light_*.onnx"))
    if args.models:
        wanted = set(args.models.split(","))
        paths = [p for p in paths if p.stem.removeprefix("light_") in wanted]
    rows = []
    for path in paths:
        macs = network_macs(path)
        with without_conv():
            before = measure(path, spec, args.time_limit)
        after = measure(path, spec, args.time_limit)
        for mode in (before, after):
            mode["tile_mac_share"] = mode["tile_macs"] / macs if macs else 0.0
        rows.append({"model": path.stem.removeprefix("light_"), "network_macs": macs, "before": before, "after": after})
        print(f"{rows[-1]['model']:14s} MACs {macs / 1e6:8.1f} M | on tiles before {before['tile_mac_share']:6.1%} "
              f"after {after['tile_mac_share']:6.1%} | tiles {after['tiles_used']:4d} (bound {after['lower_bound_tiles']:4d}, "
              f"grid {after['grid'][0]}x{after['grid'][1]}, {after['solver_status']}) | compile {before['compile_s']:6.1f} s -> "
              f"{after['compile_s']:6.1f} s", flush=True)
    result = {
        "target": f"{spec.name} unit cell and tiles ({spec.chip.tile_rows}x{spec.chip.tile_cols}), grid enlarged per model",
        "time_limit_s": args.time_limit,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "models": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
