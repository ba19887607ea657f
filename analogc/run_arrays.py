"""`analogc run --input X.npy --output Y.npy`: the user's arrays checked against the
model's inputs, and the chip's outputs written as .npy or .npz (atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analogc.atomic import atomic_path, check_writable_path
from analogc.errors import AnalogcError
from analogc.npy_read import read_npy_or_npz


def read_input_arrays(path: Path, program) -> dict:
    """--input: one .npy for a one-input model, or a .npz keyed by input names."""
    inputs = program.meta["model"]["inputs"]
    if not path.is_file():
        raise AnalogcError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    if not inputs:
        raise AnalogcError(f"{path}: the model has no inputs to feed (its outputs are constants); nothing to run")
    loaded = read_npy_or_npz(path)
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise AnalogcError(f"{path}: the model has {len(inputs)} inputs; give a .npz with arrays named {', '.join(i['name'] for i in inputs)}")
        arrays = {inputs[0]["name"]: loaded}
    else:
        missing = [i["name"] for i in inputs if i["name"] not in loaded]
        if missing:
            raise AnalogcError(f"{path}: no array for model {'input' if len(missing) == 1 else 'inputs'} {', '.join(missing)}")
        arrays = {i["name"]: loaded[i["name"]] for i in inputs}
    feeds, batch = {}, None
    for info in inputs:
        feeds[info["name"]] = check_input_array(arrays[info["name"]], info, path)
        n = len(feeds[info["name"]])
        if batch is not None and n != batch:
            raise AnalogcError(f"{path}: inputs disagree on the number of examples ({batch} vs {n})")
        batch = n
    return feeds


def check_input_array(x: np.ndarray, info: dict, path: Path) -> np.ndarray:
    shape = info["shape"]
    expected = tuple("N" if d is None else d for d in (shape or []))
    if shape is not None and (x.ndim != len(shape) or any(d is not None and i > 0 and d != s for i, (d, s) in enumerate(zip(shape, x.shape)))):
        raise AnalogcError(f"{path}: array of shape {x.shape} does not fit model input {info['name']!r} of shape {expected}")
    if x.ndim == 0:
        raise AnalogcError(f"{path}: input {info['name']!r} must have a batch dimension")
    dtype = np.dtype(info["dtype"]) if info["dtype"] != "unknown" else x.dtype
    if x.dtype.kind not in "biuf" or (dtype.kind == "f") != (x.dtype.kind == "f"):
        raise AnalogcError(f"{path}: input {info['name']!r} is {x.dtype}, the model expects {dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise AnalogcError(f"{path}: input {info['name']!r} holds NaN or Inf")
    with np.errstate(over="ignore"):  # a value past the type's range is refused below
        cast = x.astype(dtype, copy=False)
    if cast.dtype.kind == "f" and cast.dtype.itemsize < x.dtype.itemsize and not np.all(np.isfinite(cast)):
        raise AnalogcError(f"{path}: input {info['name']!r} holds values beyond the range of {dtype}, the model's input type")
    return cast


def check_output_path(path: Path, input_path: Path | None = None) -> None:
    if path.suffix not in (".npy", ".npz"):
        raise AnalogcError(f"{path}: --output must end in .npy or .npz")
    if input_path is not None and path.exists() and input_path.exists() and path.samefile(input_path):
        raise AnalogcError(f"{path}: --output is the --input file; writing it would replace the inputs: give another name")
    check_writable_path(path)


def write_outputs(path: Path, program, outputs: list) -> list[dict]:
    """The outputs as arrays in a .npz (every one that has an array form: a ZipMap's
    probabilities become NAME [N, classes] plus NAME.labels [classes]) or the first in
    a .npy. Returns the outputs left out, each with the reason, for the report."""
    names = [o["name"] for o in program.meta["model"]["outputs"]]
    tensors, left_out = {}, []
    for name, value in zip(names, outputs):
        arrays, why = output_arrays(name, value)
        tensors.update(arrays)
        if why:
            left_out.append({"name": name, "why": why})
    if path.suffix == ".npy" and not (isinstance(outputs[0], np.ndarray) and names[0] in tensors):
        raise AnalogcError(f"{path}: output {names[0]!r} is not a tensor (e.g. a ZipMap sequence); use --output FILE.npz, "
                           "which holds it as arrays")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            if path.suffix == ".npz":
                np.savez(handle, **tensors)
            else:
                np.save(handle, tensors[names[0]], allow_pickle=False)
    return left_out if path.suffix == ".npz" else []


def output_arrays(name: str, value) -> tuple[dict, str | None]:
    """({key: array}, None) for an output that has an array form, ({}, reason) if not.
    A sequence of maps with the same keys (ZipMap: one {class: probability} per example)
    is a [N, classes] array of the values plus the keys, in the maps' order."""
    if isinstance(value, np.ndarray):
        if value.dtype != object:
            return {name: value}, None
        if all(isinstance(v, str) for v in value.flat):  # onnxruntime's string tensors (class labels)
            return {name: value.astype(np.str_)}, None
        return {}, "a tensor of Python objects"
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        keys = list(value[0]) if value else []
        if all(list(v) == keys for v in value):
            labels = np.asarray(keys)
            if labels.dtype.kind in "iuU" or not keys:
                rows = np.asarray([[v[k] for k in keys] for v in value], dtype=np.float32).reshape(len(value), len(keys))
                return {name: rows, f"{name}.labels": labels}, None
        return {}, "a sequence of maps whose keys differ between examples"
    return {}, f"a {type(value).__name__}, not a tensor"
