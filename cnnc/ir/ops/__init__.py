"""The op table: every op is declared once, here and in the family modules beside it.

An :class:`OpDef` holds everything about an op: its DSL attributes (for ops written in model
files), the parameters a layer of it creates, its shape rule, its FLOP count, its fusion
category, the scalar expression of elementwise ops, its gradient rule and the name of the
templates that render it. Adding an op means adding one entry (plus templates and tests);
the passes look only at categories and the code generator only at templates and
expressions.

Fusion categories (the vocabulary of TVM's FuseOps):

* ``elementwise``  one output element from the same element of each input (relu, add)
* ``broadcast``    like elementwise, but some inputs are indexed by the channel only
                   (bias_add, inference batchnorm)
* ``injective``    each output element is a function of some input elements (flatten)
* ``reduction``    output elements reduce over input elements (pooling, softmax)
* ``complex``      conv2d, dense: may take elementwise/broadcast work on its output (and
                   a pool or a row reduction where its template allows), never chains into
                   another complex op
* ``opaque``       fuses with nothing
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..attrs import Attr
from ..graph import Attrs, TensorType

ELEMENTWISE, BROADCAST, INJECTIVE, REDUCTION, COMPLEX, OPAQUE = (
    "elementwise", "broadcast", "injective", "reduction", "complex", "opaque")
CATEGORIES = (ELEMENTWISE, BROADCAST, INJECTIVE, REDUCTION, COMPLEX, OPAQUE)


class ShapeError(Exception):
    """An op cannot apply to its input shapes; carries a message and an optional hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class ParamSpec:
    """A parameter a layer creates, e.g. ('kernel', (3, 3, 1, 32), 'glorot_uniform')."""

    name: str
    shape: tuple[int, ...]
    init: str
    trainable: bool = True
    fans: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class OpDef:
    name: str
    category: str
    infer: Callable[[Attrs, list[TensorType]], TensorType]
    inputs: tuple[str, ...] = ("x",)
    flops: Callable[[Attrs, list[TensorType], TensorType], int] = \
        lambda attrs, ins, out: out.numel
    # --- how the op is written in model files (dsl ops only) ---
    dsl: bool = False
    attrs: tuple[Attr, ...] = ()
    keras_name: str = ""
    layer_options: tuple[str, ...] = ()      # 'use_bias' and/or 'activation'
    params: Callable[[Attrs, TensorType], list[ParamSpec]] | None = None
    # --- code generation ---
    expr: str | None = None          # scalar expression (elementwise/broadcast ops)
    channel_inputs: tuple[str, ...] = ()   # broadcast ops: inputs indexed by channel only
    template: str | None = None      # kernel template name (same for every target)
    view: bool = False               # no kernel: the output is a view of the input
    reducers: tuple[str, ...] = ()   # complex ops: reductions their template can take as an
                                     # epilogue ("window" pooling, "row" softmax)
    epilogue: bool = True            # its template can apply elementwise work to its output
    row: bool = False                # a reduction over the last axis keeping the shape
    window: bool = False             # a window reduction (pooling)
    # --- training ---
    grad: Callable | None = None     # gradient rule, see cnnc.train.autodiff
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def attr(self, name: str) -> Attr:
        for a in self.attrs:
            if a.name == name:
                return a
        raise KeyError(name)


OPS: dict[str, OpDef] = {}


def register(*ops: OpDef) -> None:
    for op in ops:
        assert op.name not in OPS, op.name
        assert op.category in CATEGORIES, op
        OPS[op.name] = op


def get(name: str) -> OpDef:
    return OPS[name]


def dsl_ops() -> dict[str, OpDef]:
    return {name: op for name, op in OPS.items() if op.dsl}


# A fused node: the nodes it replaced are in its `body`.
register(OpDef("fused", OPAQUE, lambda attrs, ins: None, inputs=(),
               doc="a kernel group formed by fusion"))

# Importing the families fills the table.
from . import activations, conv, dense, norm, pool, structural, training  # noqa: E402,F401
