"""Train the three example networks on CPU and export them as ONNX.

Makes, in the output folder (default: this `models/` folder):

* `digits_mlp.onnx`   64-32-10 ReLU MLP on scikit-learn's 8x8 digits (Gemm, transB=1)
* `fashion_mlp.onnx`  784-250-125-10 sigmoid MLP on Fashion-MNIST (MatMul+Add, Softmax),
                      the shape of the MNIST network of Ambrogio et al. (Nature 2018),
                      trained with per-example SGD (3 epochs, lr 0.05/0.02/0.01)
* `digits_conv.onnx`  Conv(1->8, 3x3) -> Relu -> MaxPool 2x2 -> Flatten -> Gemm on digits
* `fashion_cnn.onnx`  LeNet-like CNN (two 5x5 Convs, FC 400-64-10) on Fashion-MNIST
                      (models/fashion_cnn.py), minibatch momentum SGD, 2 epochs
* `accuracies.json`   onnxruntime test accuracy of each model

Training is plain numpy (softmax cross-entropy, hand-written gradients); the ONNX
graphs are built directly with `onnx.helper`, so the files are fully controlled and
byte-identical from run to run on the same machine. Data come from `analogc.data`
(Fashion-MNIST from the Debian package `dataset-fashion-mnist`).

Run from the repository root:

    .venv/bin/python models/make_models.py [--out DIR]
"""

from __future__ import annotations

import os

# One BLAS thread: the per-example SGD loop is faster that way and the float sums are
# done in a fixed order, so the weights (and the .onnx bytes) do not vary run to run.
# This must happen before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from analogc.data import load_dataset  # noqa: E402

import fashion_cnn  # noqa: E402 (this folder's module: the script runs as models/make_models.py)

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; every onnxruntime >= 1.13 loads it
PRODUCER = "analogc-models"
PRODUCER_VERSION = "1"
BATCH = "N"
F32 = np.float32
FASHION_LRS = [0.05, 0.02, 0.01]  # one epoch each; a decaying rate gains ~1 point


# ----------------------------------------------------------------------------- maths


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings."""
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(F32, copy=False)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def one_hot(y: np.ndarray, classes: int = 10) -> np.ndarray:
    """Integer labels to float32 one-hot rows."""
    out = np.zeros((len(y), classes), dtype=F32)
    out[np.arange(len(y)), y] = 1.0
    return out


def glorot(rng: np.random.Generator, fan_in: int, fan_out: int, shape: tuple) -> np.ndarray:
    """Glorot/Xavier-uniform initial weights of the given shape."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(F32)


def he(rng: np.random.Generator, fan_in: int, shape: tuple) -> np.ndarray:
    """He-normal initial weights (for ReLU layers) of the given shape."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(F32)


def minibatches(rng: np.random.Generator, n: int, size: int):
    """Yield index arrays of a fresh random permutation, `size` at a time."""
    order = rng.permutation(n)
    for start in range(0, n, size):
        yield order[start : start + size]


class Momentum:
    """SGD with momentum over a dict of float32 parameters, updated in place."""

    def __init__(self, params: dict, lr: float, momentum: float = 0.9, decay: float = 0.0):
        self.params, self.lr, self.momentum, self.decay = params, lr, momentum, decay
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict) -> None:
        """Apply one update (weight decay on matrices/kernels only, not biases)."""
        for key, grad in grads.items():
            if self.decay and self.params[key].ndim > 1:
                grad = grad + F32(self.decay) * self.params[key]
            v = self.velocity[key]
            v *= F32(self.momentum)
            v -= F32(self.lr) * grad
            self.params[key] += v


# ------------------------------------------------------------------- digits MLP


def mlp_forward(p: dict, x: np.ndarray) -> tuple:
    """64-32-10 ReLU MLP, weights stored [out, in]; returns (logits, hidden)."""
    h = np.maximum(x @ p["w1"].T + p["b1"], 0.0)
    return h @ p["w2"].T + p["b2"], h


def train_digits_mlp(x: np.ndarray, y: np.ndarray, seed: int = 1) -> dict:
    """Minibatch (32) momentum SGD, 60 epochs, small weight decay."""
    rng = np.random.default_rng(seed)
    p = {
        "w1": he(rng, 64, (32, 64)),
        "b1": np.zeros(32, F32),
        "w2": glorot(rng, 32, 10, (10, 32)),
        "b2": np.zeros(10, F32),
    }
    opt = Momentum(p, lr=0.05, decay=1e-4)
    t = one_hot(y)
    for _ in range(60):
        for idx in minibatches(rng, len(x), 32):
            xb, tb = x[idx], t[idx]
            logits, h = mlp_forward(p, xb)
            d2 = (softmax(logits) - tb) / F32(len(idx))
            d1 = (d2 @ p["w2"]) * (h > 0)
            opt.step({"w2": d2.T @ h, "b2": d2.sum(0), "w1": d1.T @ xb, "b1": d1.sum(0)})
    return p


def export_digits_mlp(p: dict) -> onnx.ModelProto:
    """Gemm(transB=1) -> Relu -> Gemm(transB=1), input [N,64], output logits [N,10]."""
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1_out"],
                         name="fc1", transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("Gemm", ["relu1_out", "fc2.weight", "fc2.bias"], ["logits"],
                         name="fc2", transB=1),
    ]
    inits = {"fc1.weight": p["w1"], "fc1.bias": p["b1"], "fc2.weight": p["w2"], "fc2.bias": p["b2"]}
    return make_model("digits_mlp", nodes, inits, [BATCH, 64], "logits", [BATCH, 10],
                      "64-32-10 ReLU MLP on 8x8 digits")


# ------------------------------------------------------------------ fashion MLP


def fashion_forward(p: dict, x: np.ndarray) -> np.ndarray:
    """784-250-125-10 sigmoid MLP, weights stored [in, out]; returns class probabilities."""
    h1 = sigmoid(x @ p["w1"] + p["b1"])
    h2 = sigmoid(h1 @ p["w2"] + p["b2"])
    return softmax(h2 @ p["w3"] + p["b3"])


def train_fashion_mlp(x: np.ndarray, y: np.ndarray, lrs: list, seed: int = 2) -> dict:
    """Per-example (batch size 1) plain SGD on softmax cross-entropy, as on the chip.

    One epoch per entry of `lrs`, each with that learning rate.
    """
    rng = np.random.default_rng(seed)
    w1 = glorot(rng, 784, 250, (784, 250))
    w2 = glorot(rng, 250, 125, (250, 125))
    w3 = glorot(rng, 125, 10, (125, 10))
    b1, b2, b3 = np.zeros(250, F32), np.zeros(125, F32), np.zeros(10, F32)
    for lr in lrs:
        lr32 = F32(lr)
        for i in rng.permutation(len(x)):
            xi = x[i]
            h1 = sigmoid(xi @ w1 + b1)
            h2 = sigmoid(h1 @ w2 + b2)
            z = h2 @ w3 + b3
            e = np.exp(z - z.max())
            d3 = e / e.sum()
            d3[y[i]] -= 1.0
            d2 = (w3 @ d3) * h2 * (1.0 - h2)
            d1 = (w2 @ d2) * h1 * (1.0 - h1)
            d3 *= lr32
            d2 *= lr32
            d1 *= lr32
            w3 -= np.outer(h2, d3)
            b3 -= d3
            w2 -= np.outer(h1, d2)
            b2 -= d2
            nz = np.flatnonzero(xi)  # background pixels are 0: their rows get no update
            w1[nz] -= np.outer(xi[nz], d1)
            b1 -= d1
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3}


def export_fashion_mlp(p: dict) -> onnx.ModelProto:
    """(MatMul+Add -> Sigmoid) x2, MatMul+Add -> Softmax; input [N,784], output probs."""
    nodes = []
    prev = "input"
    for k, act in ((1, "Sigmoid"), (2, "Sigmoid"), (3, "Softmax")):
        nodes += [
            helper.make_node("MatMul", [prev, f"fc{k}.weight"], [f"fc{k}_mm"], name=f"fc{k}_matmul"),
            helper.make_node("Add", [f"fc{k}_mm", f"fc{k}.bias"], [f"fc{k}_out"], name=f"fc{k}_add"),
        ]
        out = "probs" if act == "Softmax" else f"act{k}_out"
        attrs = {"axis": -1} if act == "Softmax" else {}
        nodes.append(helper.make_node(act, [f"fc{k}_out"], [out], name=f"act{k}", **attrs))
        prev = out
    inits = {f"fc{k}.{n}": p[f"{n[0]}{k}"] for k in (1, 2, 3) for n in ("weight", "bias")}
    return make_model("fashion_mlp", nodes, inits, [BATCH, 784], "probs", [BATCH, 10],
                      "784-250-125-10 sigmoid MLP on Fashion-MNIST, per-example SGD")


# ------------------------------------------------------------------ digits conv


def im2col(x: np.ndarray) -> np.ndarray:
    """[N,8,8] images to [N,64,9] 3x3 patches (zero padding 1), kernel taps row-major."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    taps = [padded[:, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)]
    return np.stack(taps, axis=-1).reshape(len(x), 64, 9)


def conv_forward(p: dict, cols: np.ndarray) -> tuple:
    """Conv -> Relu -> MaxPool 2x2 -> Flatten (ONNX C,H,W order) -> Gemm.

    Returns (logits, relu output [N,64,8] in (h*w, c) layout, flattened features).
    """
    n = len(cols)
    a = np.maximum(cols @ p["wc"].reshape(8, 9).T + p["bc"], 0.0)  # [N, 64, 8]
    pooled = a.reshape(n, 4, 2, 4, 2, 8).max(axis=(2, 4))  # [N, 4, 4, 8]
    feats = pooled.transpose(0, 3, 1, 2).reshape(n, 128)  # ONNX Flatten of [N, 8, 4, 4]
    return feats @ p["wf"].T + p["bf"], a, feats


def train_digits_conv(x: np.ndarray, y: np.ndarray, seed: int = 3) -> dict:
    """Minibatch (32) momentum SGD, 40 epochs, small weight decay, im2col convolution."""
    rng = np.random.default_rng(seed)
    p = {
        "wc": he(rng, 9, (8, 1, 3, 3)),
        "bc": np.zeros(8, F32),
        "wf": glorot(rng, 128, 10, (10, 128)),
        "bf": np.zeros(10, F32),
    }
    opt = Momentum(p, lr=0.05, decay=1e-4)
    cols_all, t = im2col(x), one_hot(y)
    for _ in range(40):
        for idx in minibatches(rng, len(x), 32):
            cols, tb, n = cols_all[idx], t[idx], len(idx)
            logits, a, feats = conv_forward(p, cols)
            d_logits = (softmax(logits) - tb) / F32(n)
            d_feats = d_logits @ p["wf"]
            # undo Flatten / transpose, then route each pooled gradient to its window's max
            d_pooled = d_feats.reshape(n, 8, 4, 4).transpose(0, 2, 3, 1)  # [N,4,4,8]
            windows = a.reshape(n, 4, 2, 4, 2, 8).transpose(0, 1, 3, 5, 2, 4).reshape(n, 4, 4, 8, 4)
            mask = np.arange(4) == windows.argmax(axis=-1)[..., None]
            d_win = mask * d_pooled[..., None]  # [N,4,4,8,4] over (dy,dx)
            d_a = d_win.reshape(n, 4, 4, 8, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, 64, 8)
            d_a *= a > 0
            d_wc = np.einsum("npk,npc->ck", cols, d_a).reshape(8, 1, 3, 3)
            opt.step({"wf": d_logits.T @ feats, "bf": d_logits.sum(0),
                      "wc": d_wc.astype(F32), "bc": d_a.sum((0, 1))})
    return p


def export_digits_conv(p: dict) -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm(transB=1); input [N,1,8,8]."""
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv_out"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
        helper.make_node("MaxPool", ["relu_out"], ["pool_out"], name="pool",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool_out"], ["flat_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["logits"], name="fc",
                         transB=1),
    ]
    inits = {"conv.weight": p["wc"], "conv.bias": p["bc"], "fc.weight": p["wf"], "fc.bias": p["bf"]}
    return make_model("digits_conv", nodes, inits, [BATCH, 1, 8, 8], "logits", [BATCH, 10],
                      "Conv 1->8 3x3 + ReLU + MaxPool 2x2 features, FC 128->10, on 8x8 digits")


# ------------------------------------------------------------------------ ONNX


def make_model(name: str, nodes: list, inits: dict, in_shape: list, out_name: str,
               out_shape: list, doc: str) -> onnx.ModelProto:
    """Wrap nodes and float32 initializers into a checked opset-17 model."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(v, dtype=F32), k)
                     for k, v in inits.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: Path) -> None:
    """Write the serialized model (no timestamps: same weights, same bytes)."""
    path.write_bytes(model.SerializeToString())


def ort_predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Run the saved model with onnxruntime on CPU; returns its single output."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def evaluate(path: Path, x: np.ndarray, y: np.ndarray, reference: np.ndarray,
             dataset: str) -> dict:
    """onnxruntime test accuracy; also check the outputs match the numpy forward pass."""
    out = ort_predict(path, x)
    if not np.allclose(out, reference, atol=1e-4, rtol=1e-4):
        raise SystemExit(f"{path.name}: onnxruntime disagrees with the numpy forward pass "
                         f"(max |diff| {np.abs(out - reference).max():.3g})")
    acc = float((out.argmax(axis=1) == y).mean())
    return {"dataset": dataset, "test_accuracy": round(acc, 4), "examples": int(len(y))}


# ------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    """Command line: --out DIR, and the Fashion-MNIST SGD schedule."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output folder (default: the models/ folder of this script)")
    ap.add_argument("--fashion-lrs", type=lambda s: [float(v) for v in s.split(",")],
                    default=FASHION_LRS, metavar="LR,LR,...",
                    help="fashion_mlp: one per-example SGD epoch per learning rate "
                         f"(default {','.join(map(str, FASHION_LRS))})")
    ap.add_argument("--cnn-epochs", type=int, default=2, help="fashion_cnn: minibatch SGD epochs (default 2)")
    return ap.parse_args()


def main() -> None:
    """Train, export, check with onnxruntime, and write accuracies.json."""
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {}

    digits = load_dataset("digits")
    xtr, xte = digits.x_train.reshape(-1, 64), digits.x_test.reshape(-1, 64)

    t0 = time.perf_counter()
    p = train_digits_mlp(xtr, digits.y_train)
    path = args.out / "digits_mlp.onnx"
    save(export_digits_mlp(p), path)
    results[path.name] = evaluate(path, xte, digits.y_test, mlp_forward(p, xte)[0], "digits")
    report(path, results[path.name], time.perf_counter() - t0)

    t0 = time.perf_counter()
    p = train_digits_conv(digits.x_train, digits.y_train)
    path = args.out / "digits_conv.onnx"
    save(export_digits_conv(p), path)
    reference = conv_forward(p, im2col(digits.x_test))[0]
    results[path.name] = evaluate(path, digits.x_test.reshape(-1, 1, 8, 8), digits.y_test,
                                  reference, "digits")
    report(path, results[path.name], time.perf_counter() - t0)

    t0 = time.perf_counter()
    fashion = load_dataset("fashion-mnist")
    xtr, xte = fashion.x_train.reshape(-1, 784), fashion.x_test.reshape(-1, 784)
    p = train_fashion_mlp(xtr, fashion.y_train, args.fashion_lrs)
    path = args.out / "fashion_mlp.onnx"
    save(export_fashion_mlp(p), path)
    results[path.name] = evaluate(path, xte, fashion.y_test, fashion_forward(p, xte),
                                  "fashion-mnist")
    report(path, results[path.name], time.perf_counter() - t0)

    t0 = time.perf_counter()
    x_images = fashion.x_train.reshape(-1, 1, 28, 28)
    p = fashion_cnn.train(x_images, fashion.y_train, Momentum, he, softmax, one_hot, epochs=args.cnn_epochs)
    path = args.out / "fashion_cnn.onnx"
    save(fashion_cnn.export(p, make_model, BATCH), path)
    x_test = fashion.x_test.reshape(-1, 1, 28, 28)
    reference = np.concatenate([fashion_cnn.forward(p, x_test[i : i + 1000])[0] for i in range(0, len(x_test), 1000)])
    results[path.name] = evaluate(path, x_test, fashion.y_test, reference, "fashion-mnist")
    report(path, results[path.name], time.perf_counter() - t0)

    acc_path = args.out / "accuracies.json"
    acc_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {acc_path} in {time.perf_counter() - start:.1f} s total")


def report(path: Path, result: dict, seconds: float) -> None:
    """One line per model: file, size, accuracy, time."""
    print(f"{path.name:18s} {path.stat().st_size / 1024:7.1f} KiB  "
          f"test accuracy {result['test_accuracy']:.4f} on {result['examples']} "
          f"{result['dataset']} examples  ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
