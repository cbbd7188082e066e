"""dense: a fully connected layer on flat input, kernel (in, out), as tf.keras Dense."""

from __future__ import annotations

from ..attrs import Activation, Attr, Bool, Int
from ..graph import TensorType
from . import COMPLEX, OpDef, ParamSpec, ShapeError, register


def _infer(attrs, ins):
    x = ins[0]
    if len(x.shape) != 1:
        raise ShapeError(f"expects a flat input but receives {x}",
                         "add flatten() or a global pooling layer before it")
    return TensorType((attrs["units"],))


def _params(attrs, x):
    return [ParamSpec("kernel", (x.shape[0], attrs["units"]), "glorot_uniform",
                      fans=(x.shape[0], attrs["units"]))]


register(OpDef(
    "dense", COMPLEX, _infer, inputs=("x", "w"),
    flops=lambda attrs, ins, out: 2 * ins[0].numel * out.numel,
    dsl=True, keras_name="dense", layer_options=("use_bias", "activation"),
    attrs=(
        Attr("units", Int(), positional=True, doc="number of outputs"),
        Attr("activation", Activation(), ("linear", None)),
        Attr("use_bias", Bool(), True),
    ),
    params=_params, template="dense", reducers=("row",),
    doc="fully connected layer, kernel (in, out) (tf.keras Dense)"))
