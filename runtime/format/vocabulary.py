"""The words a tile program may use, defined once for the writer, the checker and the runtime.

The program format names things the rest of the runtime implements: activation functions
(chip/activations.py), padding modes of a convolution (chip/im2col.py) and the arrays of a
trained layer's device state (physics/layer_devices.py). The names live here, at the
bottom, so the checker validates a program without importing what runs it, and the
implementations are tested against these lists.
"""

from __future__ import annotations

import numpy as np

ACTIVATION_NAMES = (
    "identity", "relu", "sigmoid", "tanh", "leaky_relu", "silu", "gelu", "gelu_tanh", "elu", "selu",
    "softplus", "softsign", "hard_sigmoid", "softmax", "log_softmax",
)

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")  # ONNX Conv's auto_pad values

# A trained layer's device arrays, stored as device/<layer>/<field> in arrays.npz.
DEVICE_FIELDS = {
    "g_plus": np.float64,
    "g_minus": np.float64,
    "nu_plus": np.float32,
    "nu_minus": np.float32,
    "faults_plus": np.int8,
    "faults_minus": np.int8,
    "v": np.float32,
    "dv_up": np.float32,
    "dv_down": np.float32,
    "read_gain": np.float32,
    "cap_base": np.float32,
}
FAULT_NONE, FAULT_STUCK_HIGH, FAULT_DEAD = 0, 1, 2  # the codes in faults_plus / faults_minus
