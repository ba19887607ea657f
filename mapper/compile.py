"""The compiler driver: ONNX file + target spec → placed tile program."""

from __future__ import annotations

from pathlib import Path

from analogc.mapper.emit import emit_program
from analogc.mapper.frontend import load_layer_graph
from analogc.mapper.partition import partition
from analogc.mapper.place import place
from analogc.runtime.program import Program


def compile_model(model_path: str | Path, spec, placer: str = "cpsat", time_limit: float = 5.0, seed: int = 0) -> Program:
    """Frontend, partition, place, emit; errors are AnalogcErrors naming the cause."""
    layer_graph, model, self_contained = load_layer_graph(model_path)
    layers = layer_graph.dense_layers
    blocks = partition(layers, spec)
    placement = place(blocks, layers, spec, placer=placer, time_limit=time_limit, seed=seed)
    if placement.blocks is not None:
        blocks = placement.blocks
    original = Path(model_path).read_bytes() if self_contained else model.SerializeToString()
    return emit_program(layer_graph, blocks, placement, spec, model, Path(model_path).stem, original)
