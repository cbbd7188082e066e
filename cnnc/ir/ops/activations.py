"""Activations. Elementwise ones are a scalar expression each; softmax reduces a row.

Expressions are Python over float32 scalars: `x` is the input, attributes appear by name,
`ZERO`/`ONE` are float32 constants and `math` functions keep float32 in Numba. The code
generator splices them into any kernel's epilogue, so a new activation fuses everywhere
without new fusion code.
"""

from __future__ import annotations

from ..attrs import ACTIVATIONS, Activation, Attr, Float
from . import ELEMENTWISE, REDUCTION, OpDef, register


def _same(attrs, ins):
    return ins[0]


EXPRS = {
    "relu": "max(x, ZERO)",
    "sigmoid": "ONE / (ONE + math.exp(-x))",
    "tanh": "math.tanh(x)",
    "elu": "x if x > ZERO else alpha * math.expm1(x)",
    "leaky_relu": "x if x > ZERO else alpha * x",
    "linear": "x",
}

for _name, _expr in EXPRS.items():
    register(OpDef(_name, ELEMENTWISE, _same, expr=_expr, template="elementwise",
                   view=(_name == "linear"), flops=lambda a, i, o: o.numel,
                   doc=f"{_name} activation"))

register(OpDef("softmax", REDUCTION, _same, template="softmax", row=True,
               flops=lambda a, i, o: 3 * o.numel,
               doc="softmax over the last axis, computed stably (max subtracted)"))

# `activation(fn)` in a model file: lowers to the op named by fn.
register(OpDef(
    "activation", ELEMENTWISE, _same, dsl=True, keras_name="activation",
    attrs=(Attr("fn", Activation(), positional=True, doc="the activation"),
           Attr("alpha", Float(), None, doc="slope of leaky_relu / scale of elu")),
    doc="applies an activation function"))

assert set(EXPRS) | {"softmax"} == set(ACTIVATIONS)
