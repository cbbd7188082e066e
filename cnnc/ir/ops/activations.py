"""Activations. Elementwise ones are a scalar expression each; softmax reduces a row.

Expressions are Python over scalars of the module's float type: `x` is the input,
attributes appear by name, `ZERO`/`ONE` and `DTYPE(...)` are typed constants and `math`
functions keep float32 in Numba. The code generator splices them into any kernel's
epilogue, so a new activation fuses everywhere without new fusion code: adding one is
adding a row to ACTIVATION_TABLE (and its torch reference to the tests' table).

Each activation's gradient is an elementwise op too, `dy` times the derivative written
in terms of what the forward saved: the output `y` (relu, sigmoid, tanh) or the input `x`
(the others, whose derivative is not a function of y alone).
"""

from __future__ import annotations

from ..attrs import Activation, Attr, Float
from .table import BACKWARD, ELEMENTWISE, REDUCTION, ROW, OpDef, register

# float32 constants of the expressions below
_HALF, _SQRT_HALF, _INV_SQRT_2PI, _SIXTH = (
    "DTYPE(0.5)", "DTYPE(0.7071067811865476)", "DTYPE(0.3989422804014327)",
    "DTYPE(0.16666666666666666)")

# name: (forward expression, gradient expression, what the gradient reads: "y" or "x",
#        the function's parameters with tf.keras's defaults)
ACTIVATION_TABLE = {
    "relu": ("max(x, ZERO)", "dy if y > ZERO else ZERO", "y", ()),
    "sigmoid": ("ONE / (ONE + math.exp(-x))", "dy * y * (ONE - y)", "y", ()),
    "tanh": ("math.tanh(x)", "dy * (ONE - y * y)", "y", ()),
    "linear": ("x", "dy", "x", ()),
    "elu": ("x if x > ZERO else alpha * math.expm1(x)",
            "dy if x > ZERO else dy * alpha * math.exp(x)", "x",
            (Attr("alpha", Float(), 1.0, doc="scale of the negative part"),)),
    "leaky_relu": ("x if x > ZERO else alpha * x", "dy if x > ZERO else dy * alpha", "x",
                   (Attr("alpha", Float(), 0.3, doc="slope of the negative part"),)),
    # x * Phi(x) with the exact normal CDF (tf.keras's gelu, approximate=False)
    "gelu": (f"{_HALF} * x * (ONE + math.erf(x * {_SQRT_HALF}))",
             f"dy * ({_HALF} * (ONE + math.erf(x * {_SQRT_HALF})) + x * {_INV_SQRT_2PI} * "
             f"math.exp(-{_HALF} * x * x))", "x", ()),
    # x * sigmoid(x) (tf.keras's silu, also called swish)
    "silu": ("x / (ONE + math.exp(-x))",
             "dy * (ONE + x * (ONE - ONE / (ONE + math.exp(-x)))) / (ONE + math.exp(-x))",
             "x", ()),
    # Keras 3's hard sigmoid: 0 below -3, 1 above 3, x / 6 + 1/2 between
    "hard_sigmoid": (f"min(max(x * {_SIXTH} + {_HALF}, ZERO), ONE)",
                     f"dy * {_SIXTH} if x > DTYPE(-3.0) and x < DTYPE(3.0) else ZERO", "x",
                     ()),
}
TAGS = {"leaky_relu": "lrelu"}   # shorter names in kernel function names
# The loss kinds (from probabilities) an activation at the end of a model joins as their
# stable logits form when the `loss` rule is on: sigmoid + binary cross-entropy.
LOGITS = {"sigmoid": {"bce": "sigmoid_bce"}}


def _same(attrs, ins):
    return ins[0]


def _activation_grad(ctx, node, dy):
    saved = node.output if ACTIVATION_TABLE[node.op][2] == "y" else node.inputs[0]
    return [ctx.emit(f"{node.op}_grad", [dy, saved], node.attrs)]


def _identity(ctx, node, ins):
    """linear computes nothing: the training graph reads its input instead."""
    return ins[0]


def _register(name: str) -> None:
    fwd, bwd, saved, params = ACTIVATION_TABLE[name]
    linear = name == "linear"
    register(
        OpDef(name, ELEMENTWISE, _same, expr=fwd, template="elementwise", view=linear,
              activation=True, attrs=params, tag=TAGS.get(name, ""),
              logits_losses=LOGITS.get(name, {}),
              identity_at_inference=linear, train=_identity if linear else None,
              flops=lambda a, i, o: o.numel,
              grad=(lambda ctx, node, dy: [dy]) if linear else _activation_grad,
              doc=f"{name} activation"),
        OpDef(f"{name}_grad", ELEMENTWISE, _same, inputs=("dy", saved), expr=bwd,
              template="elementwise", flops=lambda a, i, o: 2 * o.numel, direction=BACKWARD,
              doc=f"gradient of {name}, from dy and the saved {saved}"))


def _softmax_grad(ctx, node, dy):
    """Saves y: dx = y * (dy - sum(dy * y)) over each row."""
    return [ctx.emit("softmax_grad", [dy, node.output])]


# Registered in the order the language reference lists the activations.
for _name in ("relu", "sigmoid", "tanh"):
    _register(_name)
register(
    OpDef("softmax", REDUCTION, _same, template="softmax", reduction=ROW, activation=True,
          grad=_softmax_grad, flops=lambda a, i, o: 3 * o.numel, distribution=True,
          logits_losses={"cce": "softmax_xent", "sparse_cce": "sparse_softmax_xent"},
          doc="softmax over the last axis, computed stably (max subtracted)"),
    OpDef("softmax_grad", REDUCTION, _same, inputs=("dy", "y"), template="softmax_grad",
          epilogue=False, flops=lambda a, i, o: 4 * o.numel, direction=BACKWARD,
          doc="gradient of softmax"),
)
for _name in ("linear", "elu", "leaky_relu", "gelu", "silu", "hard_sigmoid"):
    _register(_name)
# `activation(fn)` in a model file: lowers to the op named by fn.
register(OpDef(
    "activation", ELEMENTWISE, _same, dsl=True, keras_name="activation", example="relu",
    attrs=(Attr("fn", Activation(), positional=True, doc="the activation"),
           Attr("alpha", Float(), None, doc="the activation's alpha (leaky_relu, elu)")),
    doc="applies an activation function"))
