"""Losses and optimizer updates: the ops a training graph ends with, and their tables.

Losses (one op each, template `loss`): a train block's loss computes its kind from the
model's output -- probabilities clipped to [1e-7, 1 - 1e-7] as tf.keras does -- and the
`loss` fusion rule turns a softmax or sigmoid before it into the stable logits form
(log-sum-exp, gradient p - y; see passes/fuse_loss.py). Each outputs the batch's summed
loss, its summed accuracy and the gradient of the batch-mean loss with respect to its
input.

Optimizers follow tf.keras: the hyperparameters and their defaults, and the update rule
each setting of them selects. Per-step scalars (learning rate, Adam's bias corrections)
come from the host. An update writes its parameter and state in place; the `updates`
fusion rule runs all updates of a step as one kernel over the flat parameter buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..attrs import Attr, Bool, Float
from ..graph import TensorType
from .table import LOSS, OPAQUE, UPDATE, OpDef, register


@dataclass(frozen=True)
class Loss:
    """A loss as a train block names it (tf.keras's name)."""

    name: str
    kind: str                        # the loss op's kind, from the model's output
    sparse: bool = False             # labels are class indices, not rows
    needs_distribution: bool = False  # the model must end with a distribution (softmax)


LOSSES = {loss.name: loss for loss in (
    Loss("categorical_crossentropy", "cce", needs_distribution=True),
    Loss("sparse_categorical_crossentropy", "sparse_cce", sparse=True,
         needs_distribution=True),
    Loss("binary_crossentropy", "bce"),
    Loss("mse", "mse"),
)}


def _loss_infer(attrs, ins):
    return TensorType((1,), batched=False)


register(OpDef("loss", OPAQUE, _loss_infer, inputs=("z", "labels"),
               flops=lambda a, i, o: 6 * i[0].numel, template="loss", direction=LOSS,
               stem=lambda attrs: attrs["kind"],
               doc="a loss (attr kind) with its accuracy and gradient; outputs loss, "
                   "correct, dz"))


@dataclass(frozen=True)
class Optimizer:
    """An optimizer as a train block names it: tf.keras's hyperparameters with their
    defaults, and which update rule (of UPDATE_RULES) a setting of them selects."""

    name: str
    hyper: tuple[Attr, ...]
    rule: Callable[[dict], str]


def _lr(default):
    return Attr("learning_rate", Float(0.0, None, min_open=True), default, positional=True)


def _eps():
    return Attr("epsilon", Float(0.0, None, min_open=True), 1e-7)


OPTIMIZERS = {opt.name: opt for opt in (
    Optimizer("sgd", (_lr(0.01), Attr("momentum", Float(0.0, 1.0), 0.0),
                      Attr("nesterov", Bool(), False)),
              lambda h: "sgd" if h["momentum"] == 0 else
              "sgd_nesterov" if h["nesterov"] else "sgd_momentum"),
    Optimizer("adam", (_lr(0.001), Attr("beta_1", Float(0.0, 1.0, max_open=True), 0.9),
                       Attr("beta_2", Float(0.0, 1.0, max_open=True), 0.999), _eps()),
              lambda h: "adam"),
    Optimizer("adadelta", (_lr(0.001), Attr("rho", Float(0.0, 1.0, max_open=True), 0.95),
                           _eps()),
              lambda h: "adadelta"),
    Optimizer("rmsprop", (_lr(0.001), Attr("rho", Float(0.0, 1.0, max_open=True), 0.9),
                          Attr("momentum", Float(0.0, 1.0), 0.0), _eps()),
              lambda h: "rmsprop_momentum" if h["momentum"] else "rmsprop"),
)}

# rule: (state slots, update statements in order; `g` the gradient, `p` the parameter,
# states by name, per-step scalars in UPPER case, hyperparameters by their Keras names)
UPDATE_RULES = {
    "sgd": ((), ("p = p - LR * g",)),
    "sgd_momentum": (("velocity",), (
        "velocity = momentum * velocity - LR * g",
        "p = p + velocity",)),
    "sgd_nesterov": (("velocity",), (
        "velocity = momentum * velocity - LR * g",
        "p = p + momentum * velocity - LR * g",)),
    "adam": (("m", "v"), (
        "m = m + (g - m) * (ONE - beta_1)",
        "v = v + (g * g - v) * (ONE - beta_2)",
        "p = p - ALPHA * m / (math.sqrt(v) + epsilon)",)),
    "adadelta": (("accum_grad", "accum_var"), (
        "accum_grad = rho * accum_grad + (ONE - rho) * g * g",
        "delta = math.sqrt(accum_var + epsilon) / math.sqrt(accum_grad + epsilon) * g",
        "accum_var = rho * accum_var + (ONE - rho) * delta * delta",
        "p = p - LR * delta",)),
    "rmsprop": (("ms",), (
        "ms = rho * ms + (ONE - rho) * g * g",
        "p = p - LR * g / (math.sqrt(ms) + epsilon)",)),
    "rmsprop_momentum": (("ms", "mom"), (
        "ms = rho * ms + (ONE - rho) * g * g",
        "mom = momentum * mom + LR * g / (math.sqrt(ms) + epsilon)",
        "p = p - mom",)),
}

register(OpDef("update", OPAQUE, lambda attrs, ins: ins[0], inputs=("p", "g"),
               flops=lambda a, i, o: 0, template="update", direction=UPDATE, horizontal=True,
               stem=lambda attrs: attrs["rule"],
               doc="an optimizer update of one parameter (attr rule) and its state, in place"))
