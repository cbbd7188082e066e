"""The op table: every op is declared once, here and in the family modules beside it.

An :class:`OpDef` holds everything about an op -- its DSL attributes (for ops written in
model files), the parameters a layer of it creates, its shape rule, its FLOP count, its
fusion category and capabilities, the scalar expression of elementwise ops, its training
form and gradient rule, and the template that renders it. Adding an op means adding one
entry (plus its templates and a test row): the front end, the passes and the code
generator read these fields and never test an op's name.

Fusion categories (the vocabulary of TVM's FuseOps):

* ``elementwise``  one output element from the same element of each input (relu, add)
* ``broadcast``    like elementwise, but some inputs are indexed by the channel only
                   (bias_add, inference batchnorm)
* ``injective``    each output element is a function of some input elements (flatten)
* ``reduction``    output elements reduce over input elements (pooling, softmax)
* ``complex``      conv2d, dense: may take elementwise/broadcast work on its output (and
                   a reduction its template computes in its epilogue: `takes`), never
                   chains into another complex op
* ``opaque``       fuses with nothing
"""

from __future__ import annotations

from .table import (  # noqa: F401
    BACKWARD,
    BROADCAST,
    CATEGORIES,
    CHANNELS,
    COMPLEX,
    ELEMENTWISE,
    FORWARD,
    INJECTIVE,
    LOSS,
    OPAQUE,
    OPS,
    REDUCTION,
    ROW,
    UPDATE,
    WINDOW,
    OpDef,
    Packing,
    ParamSpec,
    ShapeError,
    Window,
    activation_ops,
    dsl_ops,
    get,
    register,
)

# A fused node: the nodes it replaced are in its `body`.
register(OpDef("fused", OPAQUE, lambda attrs, ins: None, inputs=(),
               doc="a kernel group formed by fusion"))

# Importing the families fills the table.
from . import activations, conv, dense, norm, pool, structural, training  # noqa: E402,F401
