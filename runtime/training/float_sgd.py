"""Plain float training of the same chain: the software baseline of `train --baseline`.

The same network, initial weights, per-example SGD, example order and learning rate as
the chip, in float32 numpy with no device in the way: what the paper compares against.
It is also the "plain numpy float loop" the training bench times the chip against.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from analogc.runtime.chip.activations import GELU_TANH_C, PARAMETERS, apply_activation

F32 = np.float32


def activation_grad(op: dict, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """d activation / d z at z (h is the activation's output)."""
    name = op["op"]
    if name == "sigmoid":
        return h * (F32(1) - h)
    if name == "tanh":
        return F32(1) - h * h
    if name == "relu":
        return (z > 0).astype(F32)
    params = {**PARAMETERS.get(name, {}), **op}  # (after the common ones: this runs per example and layer)
    if name == "leaky_relu":
        return np.where(z > 0, F32(1), F32(params["alpha"])).astype(F32)
    if name in ("elu", "selu"):  # below 0, h = γ·α(eᶻ − 1), so dh/dz = h + γ·α
        gamma, alpha = F32(params.get("gamma", 1.0)), F32(params["alpha"])
        return np.where(z > 0, gamma, h + gamma * alpha).astype(F32)
    if name == "silu":  # d(z·σ(z))/dz = σ + z·σ(1 − σ)
        s = apply_activation(z, {"op": "sigmoid"})
        return (s * (F32(1) + z * (F32(1) - s))).astype(F32)
    if name == "gelu":  # Φ(z) + z·φ(z)
        z64 = z.astype(np.float64)
        return (0.5 * (1 + erf(z64 / np.sqrt(2))) + z64 * np.exp(-0.5 * z64 * z64) / np.sqrt(2 * np.pi)).astype(F32)
    if name == "gelu_tanh":
        z64 = z.astype(np.float64)
        t = np.tanh(GELU_TANH_C * (z64 + 0.044715 * z64**3))
        return (0.5 * (1 + t) + 0.5 * z64 * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * z64 * z64)).astype(F32)
    if name == "softplus":
        return (F32(1) - np.exp(-h)).astype(F32)  # σ(z) = 1 − e^(−softplus(z))
    if name == "softsign":
        return (F32(1) / np.square(F32(1) + np.abs(z))).astype(F32)
    if name == "hard_sigmoid":
        inside = (h > 0) & (h < 1)
        return np.where(inside, F32(params["alpha"]), F32(0)).astype(F32)
    return np.ones_like(z)


ONE = np.ones(1, dtype=F32)


def append_one(h: np.ndarray) -> np.ndarray:
    """h with the constant-1 bias input after it (np.append's result, without its ravel:
    a sixth of its time on one example's activations)."""
    return np.concatenate((h, ONE))


def softmax_cross_entropy(logits: np.ndarray, label: int) -> tuple[float, bool, np.ndarray]:
    """(loss, correct?, dloss/dlogits) for one example."""
    shifted = logits - logits.max()
    e = np.exp(shifted)
    total = e.sum()
    p = (e / total).astype(F32)
    loss = float(np.log(total) - shifted[label])
    delta = p.copy()
    delta[label] -= F32(1)
    return loss, int(np.argmax(logits)) == label, delta


class FloatChain:
    """The chain in float: `matrices[l]` is K(+1) x N (bias row last when the layer's
    bias is analog on the chip, which is the same maths), `biases[l]` a separate bias."""

    def __init__(self, entries: list, matrices: list, biases: list):
        self.entries = entries
        self.matrices = [np.array(m, dtype=F32) for m in matrices]
        self.biases = [None if b is None else np.array(b, dtype=F32) for b in biases]
        self.with_one = [e["bias"] == "analog" for e in entries]

    def forward(self, x: np.ndarray) -> tuple[list, list, np.ndarray]:
        inputs, zs, h = [], [], x
        for l, entry in enumerate(self.entries):
            xa = append_one(h) if self.with_one[l] else h
            z = xa @ self.matrices[l]
            if self.biases[l] is not None:
                z = z + self.biases[l]
            inputs.append(xa)
            zs.append(z)
            h = apply_activation(z, entry["activation"]) if l < len(self.entries) - 1 else z
        return inputs, zs, zs[-1]

    def step(self, x: np.ndarray, label: int, lr: float) -> tuple[float, bool]:
        inputs, zs, logits = self.forward(x)
        loss, correct, delta = softmax_cross_entropy(logits, label)
        lr32 = F32(lr)
        for l in range(len(self.entries) - 1, -1, -1):
            if l > 0:
                k = self.entries[l]["shape"][0]
                back = self.matrices[l][:k] @ delta
                h_prev = inputs[l][:k]
                delta_prev = back * activation_grad(self.entries[l - 1]["activation"], zs[l - 1], h_prev)
            self.matrices[l] -= lr32 * np.outer(inputs[l], delta)
            if self.biases[l] is not None:
                self.biases[l] -= lr32 * delta
            if l > 0:
                delta = delta_prev.astype(F32)
        return loss, correct

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices for a batch of chain inputs."""
        h = x.astype(F32)
        for l, entry in enumerate(self.entries):
            if self.with_one[l]:
                h = np.hstack([h, np.ones((len(h), 1), dtype=F32)])
            z = h @ self.matrices[l]
            if self.biases[l] is not None:
                z = z + self.biases[l]
            h = apply_activation(z, entry["activation"]) if l < len(self.entries) - 1 else z
        return np.argmax(h, axis=1)
