"""Digital activations next to the tile outputs, over the last axis where it matters."""

from __future__ import annotations

import numpy as np


SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214050292968750  # ONNX's defaults (float32)
# Each parametric activation's parameters and their defaults, named as ONNX's attributes
# (the frontend stores every one it reads; export writes them back under these names).
PARAMETERS = {
    "leaky_relu": {"alpha": 0.01},
    "elu": {"alpha": 1.0},
    "selu": {"alpha": SELU_ALPHA, "gamma": SELU_GAMMA},
    "hard_sigmoid": {"alpha": 0.2, "beta": 0.5},
}


# The activations that take `out`: the same operations, written into out (which may be y).
# The chip's store writes over its own accumulator: fc1's scale and sigmoid (256 x 250)
# took 145 µs with a new buffer and 55 µs over the old one, and the Fashion-MNIST chip
# ran 4% faster (same bits; 2026-12-05).
OVERWRITES = {"identity", "relu", "sigmoid", "tanh", "softmax"}


def relu(y, out=None, **_):
    return np.maximum(y, 0, out=out)


def sigmoid(y, out=None, **_):
    # 1/(1+e^-y) written with tanh: no overflow for large |y|, and one fast ufunc; the
    # operations of 0.5·(1 + tanh(0.5·y)) in one buffer (a new one, or out) instead of three.
    out = np.asarray(np.multiply(y, 0.5, out=out))  # a 0-d input gives a scalar: make it an array
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def tanh(y, out=None, **_):
    return np.tanh(y, out=out)


def silu(y, **_):
    """x·σ(x) (SiLU, swish): exporters write it as Sigmoid and Mul."""
    return y * sigmoid(y)


def gelu(y, **_):
    """x·Φ(x), Φ the standard normal CDF (ONNX's Gelu; torch writes it as Div, Erf, Add, Mul, Mul)."""
    from scipy.special import erf  # (0.25 s to import; compile loads this module, only Gelu needs it)

    return (0.5 * y * (1 + erf(y / np.sqrt(2)))).astype(y.dtype, copy=False)


GELU_TANH_C = np.sqrt(2 / np.pi)


def gelu_tanh(y, **_):
    """ONNX's Gelu with approximate = "tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return (0.5 * y * (1 + np.tanh(GELU_TANH_C * (y + 0.044715 * y**3)))).astype(y.dtype, copy=False)


def identity(y, out=None, **_):
    if out is not None and out is not y:
        out[...] = y
        return out
    return y


def leaky_relu(y, alpha, **_):
    return np.where(y >= 0, y, y * np.asarray(alpha, dtype=y.dtype))


def elu(y, alpha, **_):
    return np.where(y > 0, y, np.asarray(alpha, dtype=y.dtype) * np.expm1(np.minimum(y, 0)))


def selu(y, alpha, gamma, **_):
    return np.asarray(gamma, dtype=y.dtype) * elu(y, alpha)


def softplus(y, **_):
    return np.logaddexp(np.asarray(0, dtype=y.dtype), y)


def softsign(y, **_):
    return y / (1 + np.abs(y))


def hard_sigmoid(y, alpha, beta, **_):
    return np.clip(np.asarray(alpha, dtype=y.dtype) * y + np.asarray(beta, dtype=y.dtype), 0, 1)


def softmax(y, out=None, **_):
    if out is None:
        shifted = y - y.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)
    shifted = np.subtract(y, y.max(axis=-1, keepdims=True), out=out)
    e = np.exp(shifted, out=shifted)
    return np.divide(e, e.sum(axis=-1, keepdims=True), out=e)


def log_softmax(y, **_):
    shifted = y - y.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


ACTIVATIONS = {
    "identity": identity,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "leaky_relu": leaky_relu,
    "silu": silu,
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "elu": elu,
    "selu": selu,
    "softplus": softplus,
    "softsign": softsign,
    "hard_sigmoid": hard_sigmoid,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


def apply_activation(y: np.ndarray, spec: dict, overwrite: bool = False) -> np.ndarray:
    """`spec` is the program's {"op": name, **params}; a parameter it lacks takes ONNX's
    default. With `overwrite` (y is the caller's own buffer, which it no longer needs)
    an activation in OVERWRITES writes its result over a floating-point y: the same bits."""
    params = {**PARAMETERS.get(spec["op"], {}), **{k: v for k, v in spec.items() if k != "op"}}
    if overwrite and spec["op"] in OVERWRITES and isinstance(y, np.ndarray) and y.ndim and y.dtype.kind == "f" and y.flags.writeable:
        params["out"] = y
    return ACTIVATIONS[spec["op"]](y, **params)

