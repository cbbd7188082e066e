"""The record of a training graph: the graph autodiff builds and what its values mean.

The code generator reads it to bind the training step's values to the host's buffers:
which value is each parameter's gradient, its optimizer state and its update, and which
batch statistics move each batchnorm's moving averages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Graph


@dataclass
class TrainingGraph:
    graph: Graph
    param_grads: dict[str, str]                 # trainable parameter -> its gradient value
    updates: dict[str, list[str]]               # parameter -> [new value, new states...]
    states: dict[str, list[str]]                # parameter -> optimizer state values
    # (moving mean param, moving variance param, batch mean, batch variance, momentum)
    bn_stats: list[tuple] = field(default_factory=list)
    rule: str = ""                              # the update rule (UPDATE_RULES)
    hyper: dict = field(default_factory=dict)   # the optimizer's hyperparameters
    labels_shape: tuple = ()                    # per sample
