"""Losses and optimizer updates: the ops a training graph ends with.

Losses (one op each, template `loss`): from logits when the model ends with the matching
activation (softmax for the cross-entropies, sigmoid for binary cross-entropy: a stable
log-sum-exp, gradient p - y), else from probabilities clipped to [1e-7, 1 - 1e-7] as
tf.keras does. Each outputs the batch's summed loss, its summed accuracy and the
gradient of the batch-mean loss with respect to its input.

Optimizer updates follow tf.keras's update rules; per-step scalars (learning rate, Adam's
bias corrections) come from the host. An update writes its parameter and state in
place; the `updates` fusion rule runs all updates of a step as one kernel over the flat
parameter buffer.
"""

from __future__ import annotations

from ..graph import TensorType
from . import OPAQUE, OpDef, register

LOSS_KINDS = ("softmax_xent", "sparse_softmax_xent", "cce", "sparse_cce", "sigmoid_bce",
              "bce", "mse")


def _loss_infer(attrs, ins):
    return TensorType((1,), batched=False)


register(OpDef("loss", OPAQUE, _loss_infer, inputs=("z", "labels"),
               flops=lambda a, i, o: 6 * i[0].numel, template="loss",
               doc="a loss (attr kind) with its accuracy and gradient; outputs loss, "
                   "correct, dz"))

# name: (state slots, update expressions in order; `g` the gradient, `p` the parameter,
# states by name, per-step scalars in UPPER case, hyperparameters by their Keras names)
OPTIMIZERS = {
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
               flops=lambda a, i, o: 0, template="update",
               doc="an optimizer update of one parameter (attr rule) and its state, in place"))
