"""A compiled (numba) per-example float SGD loop: the limit of per-example training here.

The same maths as runtime/training/float_sgd.py's FloatChain.step (float32, per example, analog
bias as the weight matrix's last row, softmax cross-entropy, ΔW = −η·xᵀδ) for chains
whose hidden activations are sigmoid, tanh, relu or identity, written as loops numba
compiles; train_bench.py times it next to the chip and the numpy loop.
"""

from __future__ import annotations

import numba
import numpy as np

CODES = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


@numba.njit(fastmath=False, cache=True)
def _epoch(features, labels, order, lr, matrices, with_one, codes):
    n_layers = len(matrices)
    lr32 = np.float32(lr)
    for e in range(order.size):
        x = features[order[e]]
        inputs = []
        outs = []
        h = x
        for l in range(n_layers):
            w = matrices[l]
            k = w.shape[0]
            xa = np.empty(k, dtype=np.float32)
            xa[: h.size] = h
            if with_one[l]:
                xa[k - 1] = np.float32(1.0)
            z = np.zeros(w.shape[1], dtype=np.float32)
            for r in range(k):
                if xa[r] != 0:
                    z += xa[r] * w[r]
            hl = np.empty_like(z)
            for j in range(z.size):
                v = z[j]
                c = codes[l] if l < n_layers - 1 else 0
                if c == 1:
                    v = max(v, np.float32(0.0))
                elif c == 2:
                    v = np.float32(0.5) * (np.float32(1.0) + np.tanh(v * np.float32(0.5)))
                elif c == 3:
                    v = np.tanh(v)
                hl[j] = v
            inputs.append(xa)
            outs.append(hl)
            h = hl
        logits = outs[n_layers - 1]
        top = logits.max()
        ex = np.exp(logits - top)
        delta = (ex / ex.sum()).astype(np.float32)
        delta[labels[order[e]]] -= np.float32(1.0)
        for l in range(n_layers - 1, -1, -1):
            w = matrices[l]
            prev = delta
            if l > 0:
                k = w.shape[0] - (1 if with_one[l] else 0)
                prev = np.empty(k, dtype=np.float32)
                h_prev = outs[l - 1]
                for r in range(k):
                    back = np.float32(0.0)
                    for j in range(delta.size):
                        back += w[r, j] * delta[j]
                    c = codes[l - 1]
                    if c == 1:
                        g = np.float32(1.0) if h_prev[r] > 0 else np.float32(0.0)
                    elif c == 2:
                        g = h_prev[r] * (np.float32(1.0) - h_prev[r])
                    elif c == 3:
                        g = np.float32(1.0) - h_prev[r] * h_prev[r]
                    else:
                        g = np.float32(1.0)
                    prev[r] = back * g
            xa = inputs[l]
            for r in range(w.shape[0]):
                a = lr32 * xa[r]
                if a != 0:
                    row = w[r]
                    for j in range(delta.size):
                        row[j] -= a * delta[j]
            delta = prev


class NumbaFloatChain:
    """The float chain's matrices (bias row last where the chip's bias is analog), trained
    example by example in one compiled call per run of examples."""

    def __init__(self, entries: list, matrices: list):
        self.matrices = tuple(np.array(m, dtype=np.float32) for m in matrices)
        self.with_one = np.array([e["bias"] == "analog" for e in entries])
        self.codes = np.array([CODES.get(e["activation"]["op"], 0) for e in entries], dtype=np.int64)

    def train(self, features: np.ndarray, labels: np.ndarray, order: np.ndarray, lr: float) -> None:
        _epoch(features, labels.astype(np.int64), np.asarray(order, dtype=np.int64), float(lr), self.matrices, self.with_one, self.codes)
