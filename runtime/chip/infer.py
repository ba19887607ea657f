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


def single_input(program) -> dict:
    inputs = program.meta["model"]["inputs"]
    if len(inputs) != 1:
        names = ", ".join(i["name"] for i in inputs)
        raise AnalogcError(f"--data needs a model with one input; this one has {len(inputs)} ({names}): use --input X.npz")
    if not inputs[0]["shape"]:
        raise AnalogcError(f"model input {inputs[0]['name']!r} has no batch dimension; use --input")
    return inputs[0]


def run_batched(run_fn, feeds: dict, batch: int, pad: bool = False, progress=None) -> list[np.ndarray]:
    """Call run_fn(feeds_slice) -> list of outputs over batches of `batch` rows.

    With `pad`, a short last batch is padded with zeros to `batch` rows and trimmed after.
    """
    n = len(next(iter(feeds.values())))
    chunks: list[list] = []
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        part = {}
        for name, value in feeds.items():
            piece = value[start:stop]
            if pad and stop - start < batch:
                zeros = np.zeros((batch - (stop - start), *piece.shape[1:]), dtype=piece.dtype)
                piece = np.concatenate([piece, zeros])
            part[name] = piece
        outputs = run_fn(part)
        chunks.append([trim(o, stop - start) for o in outputs])
        if progress is not None:
            progress(stop - start)
    return [join([c[i] for c in chunks]) for i in range(len(chunks[0]))] if chunks else []


def trim(output, rows: int):
    """The first `rows` examples of a batch output (a tensor, or a sequence such as ZipMap's)."""
    if isinstance(output, np.ndarray):
        return output[:rows] if output.ndim else output
    return list(output)[:rows]


def join(parts: list):
    """Batch outputs joined along the batch axis; sequences are concatenated as lists."""
    if all(isinstance(p, np.ndarray) and p.ndim for p in parts):
        return np.concatenate(parts)
    if all(isinstance(p, np.ndarray) for p in parts):
        return parts[0]  # a scalar output: the same for every batch
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
