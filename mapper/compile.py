"""The compiler driver: ONNX file + target spec → placed tile program."""

from __future__ import annotations

from pathlib import Path

from analogc.errors import AnalogcError
from analogc.mapper.emit import emit_program
from analogc.mapper.frontend import load_layer_graph
from analogc.mapper.onnx_load import ONNXRUNTIME_MIN_OPSET
from analogc.mapper.partition import partition
from analogc.mapper.placers import place
from analogc.mapper.replicate import check_mode
from analogc.mapper.replicate_place import annotate_copies, place_replicated
from analogc.mapper.strip_weights import strip_weights
from analogc.runtime.chip.host import make_session
from analogc.runtime.format.original_model import checkable_original
from analogc.runtime.format.program import Program, load_program
from analogc.runtime.format.program_check import RANGE_LIMITS, is_range


def compile_model(model_path: str | Path, spec, placer: str = "cpsat", time_limit: float = 5.0, seed: int = 0, replicate: str = "none",
                  fold_batchnorm: bool = False) -> Program:
    """Frontend, partition, place, emit; errors are AnalogcErrors naming the model file.
    `replicate` (none, throughput, accuracy): copies of layers on spare tiles
    (mapper/replicate.py); a plan that gains no copy is the plan without replication.
    `fold_batchnorm`: absorb an inference BatchNormalization after a layer into its weights
    (default: it stays a host segment, as the contract says)."""
    check_mode(replicate)
    layer_graph, model, self_contained = load_layer_graph(model_path, fold_batchnorm)
    layers = layer_graph.dense_layers
    try:
        blocks = partition(layers, spec)
        placement = None
        if replicate != "none":
            reads = {d.name: d.reads_per_example for d in layers}
            placement = place_replicated(blocks, layers, spec, replicate, reads, time_limit=time_limit, seed=seed)
        if placement is None:
            placement = place(blocks, layers, spec, placer=placer, time_limit=time_limit, seed=seed)
    except AnalogcError as exc:
        raise naming(exc, model_path) from None
    if placement.blocks is not None:
        blocks = placement.blocks
    original, stripped = strip_weights(model, layers, layer_graph.initializers)
    if not stripped and self_contained:
        original = Path(model_path).read_bytes()  # the file's own bytes, exactly
    program = emit_program(layer_graph, blocks, placement, spec, model, Path(model_path).stem, original, stripped)
    annotate_copies(program.meta, placement)
    if fold_batchnorm:
        program.meta["model"]["batchnorm_folded"] = True
    if layer_graph.opset_converted_from is not None:
        program.meta["model"]["opset_converted"] = {"from": layer_graph.opset_converted_from, "to": ONNXRUNTIME_MIN_OPSET}
    check_ranges(program, model_path)
    return program


def naming(exc: AnalogcError, origin) -> AnalogcError:
    """The error with the model file's name in front (placement speaks of the target)."""
    text = str(exc)
    return exc if text.startswith(f"{origin}:") else AnalogcError(f"{origin}: {text}")


def check_ranges(program: Program, origin) -> None:
    """Weights far from 1 (finite in float32) would run as NaN on the simulated periphery:
    refused here with the limits that the runtime's program check applies."""
    lo, hi = RANGE_LIMITS
    for layer in program.layers:
        for key in ("w_max", "adc_range"):
            if key in layer and not is_range(layer[key]):
                raise AnalogcError(
                    f"{origin}: layer {layer['name']!r} has weights of range {layer[key]:.3g} ({key}), outside the "
                    f"{lo:g} to {hi:g} that the simulated chip computes with (float32); rescale the layer"
                )


def check_written_program(path: Path, origin, program: Program) -> None:
    """The file compile is about to rename into place passes the loader's own checks, and
    onnxruntime loads its reference model and every host segment: compile never leaves
    a program that `plan` or `run` would refuse. The arrays are the ones just written
    (`program.arrays`): the loader checks each .npy header of the file against them
    instead of reading hundreds of MB back; the reference model is loaded with its
    stripped weights as typed inputs (their data are those arrays)."""
    try:
        written = load_program(path, arrays=program.arrays)
        for name, member in sorted(written.members.items()):
            if name == "original.onnx":
                member = checkable_original(written)
            if name.endswith(".onnx"):
                make_session(member, f"its member {name}")
    except AnalogcError as exc:
        raise AnalogcError(f"{origin}: compiled, but the program would not load, so it is not written ({exc})") from None
