"""Digital periphery operations per output element of each activation, for exact counts.

Forward (ACTIVATION_OPS) and derivative (DERIVATIVE_OPS), keyed by the format's activation
names (format/vocabulary.py): what the cost model charges beside the tile reads.
"""

ACTIVATION_OPS = {"identity": 0, "relu": 1, "leaky_relu": 1, "sigmoid": 1, "tanh": 1, "silu": 2, "gelu": 4, "gelu_tanh": 6, "elu": 1, "selu": 1, "softplus": 1, "softsign": 1,
                  "hard_sigmoid": 1, "softmax": 3, "log_softmax": 3}
DERIVATIVE_OPS = {"identity": 0, "relu": 2, "leaky_relu": 2, "sigmoid": 2, "tanh": 2, "silu": 3, "gelu": 5, "gelu_tanh": 8, "elu": 2, "selu": 2, "softplus": 2, "softsign": 2,
                  "hard_sigmoid": 2, "softmax": 3, "log_softmax": 3}
