"""Inference over many examples: batching (fixed or symbolic batch dims) and accuracy.

The chip and the onnxruntime reference see the same batches. A model whose batch
dimension is fixed (say 1) is fed in batches of exactly that size, the last one padded
and trimmed, so any exporter's choice works.
"""

from __future__ import annotations

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime.chip.host import make_session, run_session
from analogc.runtime.format.original_model import original_bytes

DEFAULT_BATCH = 256


BATCH_BYTES_BUDGET = 1 << 30  # a symbolic batch is cut so that one batch's layer buffers stay below this


def batch_size_of(program, requested: int = DEFAULT_BATCH) -> tuple[int, bool]:
    """(batch size, fixed?): the model's fixed batch size, or `requested` when symbolic,
    fewer when one example's layer buffers are large (a conv layer reads every patch of
    an image: 256 ImageNet images would need gigabytes of patches)."""
    shape = program.meta["model"]["inputs"][0]["shape"]
    if shape and isinstance(shape[0], int) and shape[0] > 0:
        return shape[0], True
    return max(1, min(requested, BATCH_BYTES_BUDGET // max(layer_bytes_per_example(program), 1))), False


def layer_bytes_per_example(program) -> int:
    """Every layer's input, partial sums and output in float32 a few times over (DAC,
    noise, ADC), once per vector it reads (a conv's patches)."""
    return sum((layer["shape"][0] + 1 + 2 * layer["shape"][1]) * 4 * 3 * int(layer.get("reads_per_example", 1)) for layer in program.layers)


def batch_bytes(program, feeds: dict, batch: int) -> int:
    """A rough upper bound of the memory one batch takes: its inputs, and for every layer
    its input, partial sums and output in float32 a few times over (DAC, noise, ADC), once
    per vector it reads (a conv's patches)."""
    n = max(len(next(iter(feeds.values()))), 1)
    inputs = sum(v.nbytes for v in feeds.values()) // n
    return batch * (inputs + layer_bytes_per_example(program))


def examples_axis(program) -> int:
    """The axis of the inputs that holds the examples: 0, or the model's batch axis when
    its inputs put it elsewhere (a time-major [T, N, K] sequence: 1). Such inputs cannot
    be cut into batches along axis 0 (that would cut the sequences): they run at once."""
    return next((i["batch_axis"] for i in program.meta["model"]["inputs"] if i.get("batch_axis")), 0)


def single_input(program) -> dict:
    inputs = program.meta["model"]["inputs"]
    if len(inputs) != 1:
        names = ", ".join(i["name"] for i in inputs)
        raise AnalogcError(f"--data needs a model with one input; this one has {len(inputs)} ({names}): use --input X.npz")
    if not inputs[0]["shape"]:
        raise AnalogcError(f"model input {inputs[0]['name']!r} has no batch dimension; use --input")
    return inputs[0]


def run_batched(run_fn, feeds: dict, batch: int, pad: bool = False, progress=None, program=None) -> list:
    """Call run_fn(feeds_slice) -> list of outputs over batches of `batch` rows.

    With `pad`, a short last batch is padded with zeros to `batch` rows and trimmed after.
    An output holds the examples along its first axis when each batch gives m rows per
    example fed (m = 1 usually; an exporter's Reshape to [-1, 1] of [N, 3] gives 3): its
    batches are trimmed and joined. Any other output (a constant of the model always
    is; a shape that does not follow the batch) must be the same in every batch, and
    is that value; one that differs depends on how the examples were cut
    into batches and is refused. `program` names the outputs and tells the constants.
    """
    n = len(next(iter(feeds.values())))
    chunks: list[tuple[int, int, list]] = []  # (examples, rows fed, outputs)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        part = {}
        for name, value in feeds.items():
            piece = value[start:stop]
            if pad and stop - start < batch:
                zeros = np.zeros((batch - (stop - start), *piece.shape[1:]), dtype=piece.dtype)
                piece = np.concatenate([piece, zeros])
            part[name] = piece
        chunks.append((stop - start, len(next(iter(part.values()))), list(run_fn(part))))
        if progress is not None:
            progress(stop - start)
    if not chunks:
        return []
    names = [o["name"] for o in program.meta["model"]["outputs"]] if program is not None else []
    constant = set(program.meta["model"].get("constant_outputs", [])) if program is not None else set()
    out = []
    for i in range(len(chunks[0][2])):
        name = names[i] if i < len(names) else f"number {i + 1}"
        out.append(gather([(rows, fed, outputs[i]) for rows, fed, outputs in chunks], name in constant, name, pad))
    return out


def rows_per_example(output, fed: int) -> int | None:
    """m when the output has m·fed entries along its first axis (m ≥ 1), else None."""
    if isinstance(output, np.ndarray):
        if output.ndim == 0:
            return None
        length = output.shape[0]
    elif isinstance(output, (list, tuple)):
        length = len(output)
    else:
        return None
    return length // fed if fed > 0 and length >= fed and length % fed == 0 else None


def gather(parts: list, constant: bool, name: str, pad: bool):
    """One output over the batches: [(examples, rows fed, value)] -> its value for all
    examples (see run_batched)."""
    if not constant:
        ms = {rows_per_example(value, fed) for _, fed, value in parts}
        if len(ms) == 1 and None not in ms:
            (m,) = ms
            return join([trim(value, rows * m) for rows, _, value in parts])
    first = parts[0][2]
    for _, _, value in parts[1:]:
        if not same_output(first, value):
            shape = np.shape(first) if isinstance(first, np.ndarray) else f"a sequence of {len(first)}"
            fix = "the model's batch size is fixed" if pad else "run them in one batch (--batch-size)"
            raise AnalogcError(
                f"output {name!r} of the model (shape {shape} for {parts[0][1]} examples) does not hold the examples "
                f"along its first axis and differs from batch to batch: it depends on how the examples are batched; {fix}"
            )
    return first


def same_output(a, b) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    return type(a) is type(b) and a == b


def trim(output, rows: int):
    """The first `rows` entries of a batch output (a tensor, or a sequence such as ZipMap's)."""
    if isinstance(output, np.ndarray):
        return output[:rows] if output.ndim else output
    return list(output)[:rows]


def join(parts: list):
    """Batch outputs joined along the batch axis; sequences are concatenated as lists."""
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, np.ndarray) and p.ndim for p in parts):
        return np.concatenate(parts)
    return [item for part in parts for item in part]


class Reference:
    """onnxruntime on the original model stored in the program; for a trained program,
    on the model `export` writes (the original graph with the weights the chip holds)."""

    def __init__(self, program):
        if program.meta.get("training"):
            from analogc.runtime.chip.export import export_bytes  # heavy: onnx (0.5 s), only for a trained program

            self.session = make_session(export_bytes(program), "the trained model")
        else:
            self.session = make_session(original_bytes(program), "the original model")
        self.outputs = [o["name"] for o in program.meta["model"]["outputs"]]

    def __call__(self, feeds: dict) -> list[np.ndarray]:
        return run_session(self.session, feeds, "the original model")


def chip_runner(chip):
    names = [o["name"] for o in chip.program.meta["model"]["outputs"]]

    def run(feeds):
        out = chip.run(feeds)
        return [out[name] for name in names]

    return run


def predictions(outputs: list, n: int) -> np.ndarray | None:
    """Predicted classes from a model's outputs: the first integer output with one value
    per example (a label, as scikit-learn exports give), else the argmax of the first
    float output with several values per example (logits, probabilities, log-probs)."""
    tensors = [o for o in outputs if isinstance(o, np.ndarray) and o.ndim and len(o) == n]
    for o in tensors:
        if o.dtype.kind in "iu" and o.size == n:
            return o.reshape(n).astype(np.int64)
    for o in tensors:
        if o.dtype.kind == "f" and o.size // n > 1:
            return np.argmax(o.reshape(n, -1), axis=1)
    return None


def accuracy(outputs, labels: np.ndarray) -> float | None:
    """Top-1 accuracy; `outputs` is one score array or a model's list of outputs."""
    outputs = [outputs] if isinstance(outputs, np.ndarray) else outputs
    predicted = predictions(outputs, len(labels))
    return None if predicted is None else float(np.mean(predicted == labels))
