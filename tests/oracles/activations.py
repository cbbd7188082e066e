"""PyTorch's version of every cnnc activation: the one table of references both oracles
(torch_ref's functions and torch_module's layers) read. A row per activation, built from
the node's attributes; inputs are NCHW (or flat), so softmax runs over dim 1.

tests/ops/test_activations.py fails for an activation of cnnc's op table with no row here.
"""

from __future__ import annotations

from torch import nn

TORCH_ACTIVATIONS = {
    "relu": lambda attrs: nn.ReLU(),
    "sigmoid": lambda attrs: nn.Sigmoid(),
    "tanh": lambda attrs: nn.Tanh(),
    "softmax": lambda attrs: nn.Softmax(dim=1),          # the channels: dim 1 in NCHW
    "linear": lambda attrs: nn.Identity(),
    "elu": lambda attrs: nn.ELU(alpha=attrs["alpha"]),
    "leaky_relu": lambda attrs: nn.LeakyReLU(negative_slope=attrs["alpha"]),
    "gelu": lambda attrs: nn.GELU(approximate="none"),
    "silu": lambda attrs: nn.SiLU(),
    "hard_sigmoid": lambda attrs: nn.Hardsigmoid(),      # relu6(x + 3) / 6, as Keras 3
}
