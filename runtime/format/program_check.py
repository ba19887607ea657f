"""Structural checks of a loaded tile program, so that a file whose checksums were
recomputed after editing still fails with a clear error instead of a crash."""

from __future__ import annotations

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime.format.replicas import check_copies
from analogc.runtime.format.spec import spec_from_dict
from analogc.runtime.format.vocabulary import ACTIVATION_NAMES as ACTIVATIONS
from analogc.runtime.format.vocabulary import AUTO_PADS, FAULT_DEAD, FAULT_NONE, FAULT_STUCK_HIGH
from analogc.runtime.format.vocabulary import DEVICE_FIELDS as FIELDS

# Tuples, not sets: membership must not hash a value that may be a list or dict.
OPS = ("host", "load", "mvm", "store")
DTYPES = ("float16", "float32", "float64")
KINDS = ("dense", "conv")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_count(value) -> bool:
    return is_int(value) and 0 <= value < 2**62


def is_pair(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(is_int(v) for v in value)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


# A layer's range (w_max, adc_range) in weight units: the periphery computes in float32 in
# these units, and the read-noise variance (~range²) leaves float32 outside this (NaN out).
RANGE_LIMITS = (1e-15, 1e15)


def is_range(value) -> bool:
    return is_number(value) and RANGE_LIMITS[0] <= value <= RANGE_LIMITS[1]


def known_dtype(name: str) -> bool:
    if name == "unknown":
        return True
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def check_types(meta: dict, fail) -> None:
    """Every field the runtime and the plan read has the type they expect."""
    model = meta["model"]
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        fail("model must be an object with a name")
    for key in ("inputs", "outputs"):
        entries = model.get(key)
        if not isinstance(entries, list) or (key == "outputs" and not entries):
            fail(f"model {key} must be a list")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                fail(f"model {key} entry {str(entry)[:60]} has no name")
            if not isinstance(entry.get("dtype"), str) or not known_dtype(entry["dtype"]):
                fail(f"model {key} entry {entry['name']!r} has no valid dtype")
            if "shape" not in entry:  # (None means unknown; a missing key is a damaged file)
                fail(f"model {key} entry {entry['name']!r} has no shape")
            shape = entry["shape"]
            if shape is not None and (not isinstance(shape, list) or not all(d is None or (is_int(d) and d >= 0) for d in shape)):
                fail(f"model {key} entry {entry['name']!r} has a bad shape {str(shape)[:60]}")
            axis = entry.get("batch_axis", 0)
            if axis != 0 and not (is_int(axis) and shape is not None and 0 < axis < len(shape)):
                fail(f"model {key} entry {entry['name']!r} has a bad batch_axis {str(axis)[:30]}")
    constants = model.get("constant_outputs", [])
    if not isinstance(constants, list) or not all(isinstance(c, str) for c in constants):
        fail("model constant_outputs must be a list of names")
    for layer in meta["layers"]:
        if not isinstance(layer, dict) or not all(isinstance(layer.get(k), str) for k in ("name", "input", "output")):
            fail(f"layer entry {str(layer)[:80]} lacks a name, input or output")
        if not is_pair(layer.get("shape")) or min(layer["shape"]) <= 0:
            fail(f"layer {layer['name']!r} lacks a [K, N] shape")
        if layer.get("bias") not in ("analog", "digital", "none"):
            fail(f"layer {layer['name']!r} has bias {str(layer.get('bias'))[:30]!r}")
        act = layer.get("activation")
        if not isinstance(act, dict) or act.get("op") not in ACTIVATIONS or not all(is_number(v) for k, v in act.items() if k != "op"):
            fail(f"layer {layer['name']!r} has an unknown activation {str(act)[:60]}")
        if layer.get("kind", "dense") not in KINDS:
            fail(f"layer {layer['name']!r} has kind {str(layer.get('kind'))[:30]!r} (kinds: {', '.join(KINDS)})")
        if layer.get("kind") == "conv":
            check_conv(layer, fail)
        if "reads_per_example" in layer and not (is_count(layer["reads_per_example"]) and layer["reads_per_example"] >= 1):
            fail(f"layer {layer['name']!r} has a bad reads_per_example (a count ≥ 1)")
        if layer.get("reads_per_example_exact", True) is not True and layer.get("reads_per_example_exact") is not False:
            fail(f"layer {layer['name']!r} has a bad reads_per_example_exact (true or false)")
        if layer.get("dtype") not in DTYPES:
            fail(f"layer {layer['name']!r} has dtype {str(layer.get('dtype'))[:30]!r}")
        for key in ("w_max", "adc_range"):
            if key in layer and not is_range(layer[key]):
                fail(f"layer {layer['name']!r} has a bad {key} (a number in [{RANGE_LIMITS[0]:g}, {RANGE_LIMITS[1]:g}])")
        # What `plan` shows about the layer's split (recomputed from the blocks when absent):
        if "array_shape" in layer and not is_pair(layer["array_shape"]):
            fail(f"layer {layer['name']!r} has a bad array_shape")
        if not all(is_int(layer[k]) for k in ("blocks", "tiles") if k in layer):
            fail(f"layer {layer['name']!r} has a bad count of blocks or tiles")
        if not all(isinstance(layer[k], bool) for k in ("row_split", "col_split") if k in layer):
            fail(f"layer {layer['name']!r} has a bad row_split or col_split")
    for block in meta["blocks"]:
        if not isinstance(block, dict) or not is_int(block.get("id")) or not isinstance(block.get("layer"), str):
            fail(f"block entry {str(block)[:80]} is malformed")
        if not all(is_pair(block.get(k)) for k in ("rows", "cols", "tile", "offset")):
            fail(f"block {block['id']} has malformed rows, cols, tile or offset")
    for segment in meta.get("host_segments", []):
        if not isinstance(segment, dict) or not isinstance(segment.get("name"), str) or not isinstance(segment.get("member"), str):
            fail(f"host segment entry {str(segment)[:80]} is malformed")
        for key in ("inputs", "outputs", "onnx_nodes"):
            if not isinstance(segment.get(key), list) or not all(isinstance(t, str) for t in segment[key]):
                fail(f"host segment {segment['name']!r} has malformed {key}")
    notes = meta.get("host_notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, dict) and all(isinstance(n.get(k), str) for k in ("node", "op", "reason")) for n in notes):
        fail("host_notes must be a list of {node, op, reason}")
    placement = meta.get("placement", {})
    if not isinstance(placement, dict) or not all(is_pair(placement.get(k)) for k in ("grid", "tile")):
        fail("placement lacks its grid and tile sizes")
    if not isinstance(placement.get("placer", ""), str) or not isinstance(placement.get("details", {}), dict):
        fail("placement has a bad placer name or details")
    if not all(is_int(placement.get(k)) for k in ("tiles_used", "lower_bound_tiles")) or not is_number(placement.get("utilization")):
        fail("placement lacks tiles_used, lower_bound_tiles or utilization")
    solver = placement.get("solver")
    if not isinstance(solver, dict) or not isinstance(solver.get("status"), str) or not all(is_number(solver.get(k)) for k in ("objective", "best_bound", "seconds")):
        fail("placement lacks a solver report")
    if not is_int(placement.get("traffic")) or not (placement.get("traffic_greedy") is None or is_int(placement["traffic_greedy"])):
        fail("placement lacks its traffic figures")


def check_conv(layer: dict, fail) -> None:
    """A conv layer's geometry: what `im2col` needs, consistent with the weight's K rows."""
    conv = layer.get("conv")
    if not isinstance(conv, dict):
        fail(f"conv layer {layer['name']!r} has no geometry")
    kernel, rank = conv.get("kernel"), len(conv.get("kernel") or [])
    lists_ok = all(isinstance(conv.get(k), list) and all(is_count(v) for v in conv[k]) for k in ("kernel", "strides", "dilations", "pads"))
    if not lists_ok or rank == 0 or min(kernel + conv["strides"] + conv["dilations"]) < 1:
        fail(f"conv layer {layer['name']!r} has a bad kernel, strides, dilations or pads")
    if len(conv["strides"]) != rank or len(conv["dilations"]) != rank or len(conv["pads"]) != 2 * rank:
        fail(f"conv layer {layer['name']!r}: strides, dilations and pads do not match its {rank}-D kernel")
    if conv.get("auto_pad") not in AUTO_PADS or not is_count(conv.get("group")) or conv["group"] < 1 or not is_count(conv.get("channels")):
        fail(f"conv layer {layer['name']!r} has a bad auto_pad, group or channel count")
    if conv["channels"] * int(np.prod(kernel)) != layer["shape"][0]:
        fail(f"conv layer {layer['name']!r}: {conv['channels']} channels x kernel {kernel} is not its {layer['shape'][0]} weight rows")


def check_dataflow(meta: dict, fail) -> None:
    """Executing the instructions in order, every tensor is produced before it is read."""
    available = {i["name"] for i in meta["model"]["inputs"]} | set(meta["model"].get("constant_outputs", []))
    layers = {layer["name"]: layer for layer in meta["layers"]}
    segments = {s["name"]: s for s in meta.get("host_segments", [])}
    block_layer = {b["id"]: b["layer"] for b in meta["blocks"]}
    loaded = None  # the executor keeps one layer's input and partial sums at a time
    for instruction in meta["instructions"]["inference"]:
        op = instruction["op"]
        if op == "mvm" and block_layer[instruction["block"]] != loaded:
            fail(f"block {instruction['block']} is read while layer {loaded!r} is loaded, not {block_layer[instruction['block']]!r}")
        if op == "store" and instruction["layer"] != loaded:
            fail(f"layer {instruction['layer']!r} is stored without being loaded")
        loaded = instruction["layer"] if op == "load" else None if op == "store" else loaded
        if op == "host":
            segment = segments[instruction["segment"]]
            missing = [t for t in segment["inputs"] if t not in available]
            if missing:
                fail(f"host segment {segment['name']!r} reads {missing[0]!r} before anything produces it")
            available.update(segment["outputs"])
        elif op == "load" and layers[instruction["layer"]]["input"] not in available:
            fail(f"layer {instruction['layer']!r} reads {layers[instruction['layer']]['input']!r} before anything produces it")
        elif op == "store":
            available.add(layers[instruction["layer"]]["output"])
    missing = [o["name"] for o in meta["model"]["outputs"] if o["name"] not in available]
    if missing:
        fail(f"model output {missing[0]!r} is never produced")


def check_host_member(segment: dict, data: bytes, fail) -> None:
    """A host segment must be a valid ONNX model: `plan` and the cost model parse it,
    and onnxruntime would refuse it only when `run` starts it."""
    import onnx  # heavy: onnx (0.5 s), only for programs with host segments

    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except Exception as exc:  # protobuf's DecodeError, the checker's ValidationError, ...
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        fail(f"host segment {segment['name']!r} is not a valid ONNX model ({text})")


def all_finite(values: np.ndarray) -> bool:
    """No NaN or Inf, without isfinite's boolean array (for a 100 M-weight layer, 100 MB
    freshly allocated: 5x the time of the check): min and max propagate NaN, and an
    Inf is one of them."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        return bool(np.all(np.isfinite(values)))
    return values.size == 0 or bool(np.isfinite(values.min()) and np.isfinite(values.max()))


def check_program(meta: dict, arrays: dict, members: dict, origin: str) -> None:
    """Every reference resolves and every block fits its layer, its tile and the grid."""

    def fail(what: str):
        raise AnalogcError(f"{origin}: inconsistent tile program: {what}")

    spec = spec_from_dict(meta["target"], origin=f"{origin}: target")
    if not isinstance(meta["layers"], list) or not isinstance(meta["blocks"], list):
        fail("layers and blocks must be lists")
    if not isinstance(meta.get("host_segments", []), list):
        fail("host_segments must be a list")
    check_types(meta, fail)
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
        if layer.get("bias") in ("analog", "digital") and (arrays[f"bias/{name}"].shape != (n,) or arrays[f"bias/{name}"].dtype.kind != "f"):
            fail(f"bias of layer {name!r} is {arrays[f'bias/{name}'].dtype} {arrays[f'bias/{name}'].shape}, expected float ({n},)")
        for what in ("weight", "bias"):
            values = arrays.get(f"{what}/{name}")
            if values is not None and values.dtype.kind == "f" and not all_finite(values):
                fail(f"{what} of layer {name!r} holds NaN or Inf")
        layers[name] = (k + (1 if layer.get("bias") == "analog" else 0), n)
    grid, tile = (spec.chip.grid_rows, spec.chip.grid_cols), (spec.chip.tile_rows, spec.chip.tile_cols)
    if tuple(meta["placement"]["grid"]) != grid or tuple(meta["placement"]["tile"]) != tile:
        fail(f"placement grid {meta['placement']['grid']} / tile {meta['placement']['tile']} disagree with the target's {list(grid)} / {list(tile)}")
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
        check_host_member(segment, members[segment["member"]], fail)
        segments[segment["name"]] = segment
    if not isinstance(meta["instructions"], dict) or not isinstance(meta["instructions"].get("inference"), list):
        fail("no list of inference instructions")
    for instruction in meta["instructions"]["inference"]:
        op = instruction.get("op") if isinstance(instruction, dict) else None
        if op not in OPS or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in instruction.values()):
            fail(f"unknown instruction {str(instruction)[:60]}")
        if op == "host" and instruction.get("segment") not in segments:
            fail(f"instruction runs unknown host segment {instruction.get('segment')!r}")
        if op in ("load", "store") and instruction.get("layer") not in layers:
            fail(f"instruction names unknown layer {instruction.get('layer')!r}")
        if op == "mvm" and instruction.get("block") not in ids:
            fail(f"instruction reads unknown block {instruction.get('block')!r}")
    check_dataflow(meta, fail)
    check_copies(meta, fail)
    for layer in meta["layers"]:
        check_device_state(layer, layers[layer["name"]], arrays, spec.pcm.g_max, fail)


def check_device_state(layer: dict, shape: tuple, arrays: dict, g_max: float, fail) -> None:
    """A trained layer's device arrays: all there, the layer's array shape, sane values."""
    name = layer["name"]
    present = [f for f in FIELDS if f"device/{name}/{f}" in arrays]
    if not present and "device" not in layer:
        return
    if len(present) != len(FIELDS):
        missing = next(f for f in FIELDS if f not in present)
        fail(f"layer {name!r} has device state without its {missing!r} array")
    device = layer.get("device")
    if not isinstance(device, dict) or device.get("sign") not in (1, -1, 1.0, -1.0) or not all(is_count(device.get(k, 0)) for k in ("examples_since_transfer", "pulses_since_transfer")):
        fail(f"layer {name!r} has device arrays but no valid device entry (sign ±1, examples_since_transfer, pulses_since_transfer)")
    if not is_range(layer.get("w_max")):
        fail(f"layer {name!r} has device state but no valid w_max")
    for field, dtype in FIELDS.items():
        value = arrays[f"device/{name}/{field}"]
        if value.shape != shape or value.dtype != np.dtype(dtype):
            fail(f"device array {field!r} of layer {name!r} is {value.dtype} {value.shape}, expected {np.dtype(dtype)} {shape}")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            fail(f"device array {field!r} of layer {name!r} holds NaN or Inf")
    problem = device_value_problem(name, lambda field: arrays[f"device/{name}/{field}"], g_max)
    if problem:
        fail(problem)


def device_value_problem(name: str, get, g_max: float) -> str | None:
    """What is wrong with a layer's device values (`get(field)` gives an array), or None:
    one rule for trained programs and training checkpoints alike."""
    for field in ("g_plus", "g_minus", "nu_plus", "nu_minus", "dv_up", "dv_down"):  # ν < 0 would grow G with time
        if np.any(get(field) < 0):
            return f"device array {field!r} of layer {name!r} has negative values"
    for field in ("g_plus", "g_minus"):  # every write clips at g_max; beyond it, reads overflow
        if np.any(get(field) > g_max):
            return f"device array {field!r} of layer {name!r} has conductances above g_max ({g_max:g} µS)"
    for field in ("faults_plus", "faults_minus"):
        if not np.all(np.isin(get(field), (FAULT_NONE, FAULT_STUCK_HIGH, FAULT_DEAD))):
            return f"device array {field!r} of layer {name!r} has unknown fault codes"
    return None
