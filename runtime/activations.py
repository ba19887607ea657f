"""Digital activations next to the tile outputs, over the last axis where it matters."""

from __future__ import annotations

import numpy as np


def relu(y, **_):
    return np.maximum(y, 0)


def sigmoid(y, **_):
    # 1/(1+e^-y) written with tanh: no overflow for large |y|, and one fast ufunc; the
    # operations of 0.5·(1 + tanh(0.5·y)) in one new buffer instead of three.
    out = np.asarray(np.multiply(y, 0.5))  # a 0-d input gives a scalar: make it an array
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def tanh(y, **_):
    return np.tanh(y)


def identity(y, **_):
    return y


def leaky_relu(y, alpha=0.01, **_):
    return np.where(y >= 0, y, y * np.asarray(alpha, dtype=y.dtype))


def softmax(y, **_):
    shifted = y - y.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(y, **_):
    shifted = y - y.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


ACTIVATIONS = {
    "identity": identity,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "leaky_relu": leaky_relu,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


def apply_activation(y: np.ndarray, spec: dict) -> np.ndarray:
    """`spec` is the program's {"op": name, **params}."""
    params = {k: v for k, v in spec.items() if k != "op"}
    return ACTIVATIONS[spec["op"]](y, **params)
