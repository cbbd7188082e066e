"""Activations. Elementwise ones are a scalar expression each; softmax reduces a row.

Expressions are Python over scalars of the module's float type: `x` is the input,
attributes appear by name, `ZERO`/`ONE` are typed constants and `math` functions keep
float32 in Numba. The code generator splices them into any kernel's epilogue, so a new
activation fuses everywhere without new fusion code.

Each activation's gradient is an elementwise op too, `dy` times the derivative written
in terms of what the forward saved: the output `y` (relu, sigmoid, tanh) or the input `x`
(elu, leaky_relu, whose slope for negative inputs is not recoverable from y alone).
"""

from __future__ import annotations

from ..attrs import ACTIVATIONS, Activation, Attr, Float
from . import ELEMENTWISE, REDUCTION, OpDef, register


def _same(attrs, ins):
    return ins[0]


# name: (forward expression, gradient expression, what the gradient reads: "y" or "x")
ACTIVATION_TABLE = {
    "relu": ("max(x, ZERO)", "dy if y > ZERO else ZERO", "y"),
    "sigmoid": ("ONE / (ONE + math.exp(-x))", "dy * y * (ONE - y)", "y"),
    "tanh": ("math.tanh(x)", "dy * (ONE - y * y)", "y"),
    "elu": ("x if x > ZERO else alpha * math.expm1(x)",
            "dy if x > ZERO else dy * alpha * math.exp(x)", "x"),
    "leaky_relu": ("x if x > ZERO else alpha * x", "dy if x > ZERO else dy * alpha", "x"),
    "linear": ("x", "dy", "x"),
}
EXPRS = {name: row[0] for name, row in ACTIVATION_TABLE.items()}


def _activation_grad(ctx, node, dy):
    saved = node.output if ACTIVATION_TABLE[node.op][2] == "y" else node.inputs[0]
    if node.op == "linear":
        return [dy]
    return [ctx.emit(f"{node.op}_grad", [dy, saved], node.attrs)]


for _name, (_fwd, _bwd, _saved) in ACTIVATION_TABLE.items():
    register(
        OpDef(_name, ELEMENTWISE, _same, expr=_fwd, template="elementwise",
              view=(_name == "linear"), flops=lambda a, i, o: o.numel, grad=_activation_grad,
              doc=f"{_name} activation"),
        OpDef(f"{_name}_grad", ELEMENTWISE, _same, inputs=("dy", _saved), expr=_bwd,
              template="elementwise", flops=lambda a, i, o: 2 * o.numel,
              doc=f"gradient of {_name}, from dy and the saved {_saved}"))


def _softmax_grad(ctx, node, dy):
    """Saves y: dx = y * (dy - sum(dy * y)) over each row."""
    return [ctx.emit("softmax_grad", [dy, node.output])]


register(
    OpDef("softmax", REDUCTION, _same, template="softmax", row=True, grad=_softmax_grad,
          flops=lambda a, i, o: 3 * o.numel,
          doc="softmax over the last axis, computed stably (max subtracted)"),
    OpDef("softmax_grad", REDUCTION, _same, inputs=("dy", "y"), template="softmax_grad",
          row=True, epilogue=False, flops=lambda a, i, o: 4 * o.numel, doc="gradient of softmax"),
)

# `activation(fn)` in a model file: lowers to the op named by fn.
register(OpDef(
    "activation", ELEMENTWISE, _same, dsl=True, keras_name="activation",
    attrs=(Attr("fn", Activation(), positional=True, doc="the activation"),
           Attr("alpha", Float(), None, doc="slope of leaky_relu / scale of elu")),
    doc="applies an activation function"))

assert set(EXPRS) | {"softmax"} == set(ACTIVATIONS)
