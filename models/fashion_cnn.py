"""A LeNet-like CNN on Fashion-MNIST, trained with plain numpy (used by make_models.py).

    input [N,1,28,28] → Conv 1→8 5×5 pads 2 → Relu → MaxPool 2×2 → Conv 8→16 5×5 → Relu
    → MaxPool 2×2 → Flatten (400) → Gemm 400→64 (transB=1) → Relu → Gemm 64→10 → logits

Minibatch (64) momentum SGD (0.9, lr 0.02, weight decay 1e-4) on softmax cross-entropy,
convolutions as im2col matrix products (stride 1), gradients written by hand. Its own
small im2col, not analogc's: the model must not depend on the code it is used to test.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

F32 = np.float32
SHAPES = {"c1": (8, 1, 5, 5), "c2": (16, 8, 5, 5), "f1": (64, 400), "f2": (10, 64)}


def patches(x: np.ndarray, k: int) -> np.ndarray:
    """[N, C, H, W] (already padded) → [N, OH·OW, C·k·k] rows, taps in (c, dy, dx) order."""
    n, c, h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    taps = np.stack([x[:, :, dy : dy + oh, dx : dx + ow] for dy in range(k) for dx in range(k)], axis=2)  # N,C,k²,OH,OW
    return taps.reshape(n, c * k * k, oh * ow).transpose(0, 2, 1)


def unpatch(d_rows: np.ndarray, shape: tuple, k: int) -> np.ndarray:
    """The adjoint of `patches`: row gradients [N, OH·OW, C·k·k] summed back to [N, C, H, W]."""
    n, c, h, w = shape
    oh, ow = h - k + 1, w - k + 1
    taps = d_rows.transpose(0, 2, 1).reshape(n, c, k * k, oh, ow)
    out = np.zeros(shape, dtype=F32)
    for t in range(k * k):
        dy, dx = divmod(t, k)
        out[:, :, dy : dy + oh, dx : dx + ow] += taps[:, :, t]
    return out


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple:
    """Stride-1 convolution of a padded input; returns (output [N,O,OH,OW], rows)."""
    n, _, h, wd = x.shape
    o, _, k, _ = w.shape
    rows = patches(x, k)
    y = rows @ w.reshape(o, -1).T + b
    return y.transpose(0, 2, 1).reshape(n, o, h - k + 1, wd - k + 1), rows


def pool(a: np.ndarray) -> tuple:
    """2×2 max pooling; returns (pooled, one-hot mask of each window's max)."""
    n, c, h, w = a.shape
    windows = a.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    mask = np.arange(4) == windows.argmax(axis=-1)[..., None]
    return windows.max(axis=-1), mask


def unpool(d: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n, c, h2, w2, _ = mask.shape
    return (mask * d[..., None]).reshape(n, c, h2, w2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * h2, 2 * w2)


def forward(p: dict, x: np.ndarray) -> tuple:
    """Logits and everything the backward pass needs."""
    a1, r1 = conv(np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))), p["c1"], p["c1b"])
    a1 = np.maximum(a1, 0)
    p1, m1 = pool(a1)
    a2, r2 = conv(p1, p["c2"], p["c2b"])
    a2 = np.maximum(a2, 0)
    p2, m2 = pool(a2)
    feats = p2.reshape(len(x), -1)
    h = np.maximum(feats @ p["f1"].T + p["f1b"], 0)
    return h @ p["f2"].T + p["f2b"], (a1, r1, m1, p1, a2, r2, m2, feats, h)


def gradients(p: dict, x: np.ndarray, d_logits: np.ndarray, cache: tuple) -> dict:
    a1, r1, m1, p1, a2, r2, m2, feats, h = cache
    n = len(x)
    d_h = (d_logits @ p["f2"]) * (h > 0)
    d_feats = d_h @ p["f1"]
    d_a2 = unpool(d_feats.reshape(n, 16, 5, 5), m2) * (a2 > 0)
    d_a2_rows = d_a2.reshape(n, 16, -1).transpose(0, 2, 1)  # [N, positions, O]
    d_p1 = unpatch(d_a2_rows @ p["c2"].reshape(16, -1), p1.shape, 5)
    d_a1 = unpool(d_p1, m1) * (a1 > 0)
    d_a1_rows = d_a1.reshape(n, 8, -1).transpose(0, 2, 1)
    return {
        "f2": d_logits.T @ h, "f2b": d_logits.sum(0), "f1": d_h.T @ feats, "f1b": d_h.sum(0),
        "c2": np.einsum("npo,npk->ok", d_a2_rows, r2).reshape(SHAPES["c2"]), "c2b": d_a2_rows.sum((0, 1)),
        "c1": np.einsum("npo,npk->ok", d_a1_rows, r1).reshape(SHAPES["c1"]), "c1b": d_a1_rows.sum((0, 1)),
    }


def train(x: np.ndarray, y: np.ndarray, momentum_cls, he, softmax, one_hot, epochs: int = 3, seed: int = 4) -> dict:
    """x [N,1,28,28] in [0, 1]; the optimiser and helpers come from make_models.py."""
    rng = np.random.default_rng(seed)
    p = {}
    for name, shape in SHAPES.items():
        p[name] = he(rng, int(np.prod(shape[1:])), shape)
        p[f"{name}b"] = np.zeros(shape[0], F32)
    opt = momentum_cls(p, lr=0.02, decay=1e-4)
    t = one_hot(y)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            logits, cache = forward(p, x[idx])
            d_logits = ((softmax(logits) - t[idx]) / F32(len(idx))).astype(F32)
            opt.step({k: v.astype(F32, copy=False) for k, v in gradients(p, x[idx], d_logits, cache).items()})
    return p


def export(p: dict, make_model, batch: str) -> onnx.ModelProto:
    """The ONNX graph of `forward`; weights as initializers named for their layer."""
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"], name="conv1", kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("MaxPool", ["relu1_out"], ["pool1_out"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1_out", "conv2.weight", "conv2.bias"], ["conv2_out"], name="conv2", kernel_shape=[5, 5]),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("MaxPool", ["relu2_out"], ["pool2_out"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool2_out"], ["flat_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", "fc1.weight", "fc1.bias"], ["fc1_out"], name="fc1", transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu3_out"], name="relu3"),
        helper.make_node("Gemm", ["relu3_out", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1),
    ]
    inits = {"conv1.weight": p["c1"], "conv1.bias": p["c1b"], "conv2.weight": p["c2"], "conv2.bias": p["c2b"],
             "fc1.weight": p["f1"], "fc1.bias": p["f1b"], "fc2.weight": p["f2"], "fc2.bias": p["f2b"]}
    return make_model("fashion_cnn", nodes, inits, [batch, 1, 28, 28], "logits", [batch, 10],
                      "LeNet-like CNN (Conv 8 5x5, Conv 16 5x5, FC 400-64-10) on Fashion-MNIST")
