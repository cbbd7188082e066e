"""dense: a fully connected layer on flat input, kernel (in, out), as tf.keras Dense.

Gradient: dx = dy @ w.T and dw = x.T @ dy; dense saves its input x.
"""

from __future__ import annotations

from ..attrs import LINEAR, Activation, Attr, Bool, Int
from ..graph import TensorType
from .table import (
    BACKWARD,
    CHANNELS,
    COMPLEX,
    OPAQUE,
    ROW,
    OpDef,
    Packing,
    ParamSpec,
    ShapeError,
    register,
)


def _infer(attrs, ins):
    x = ins[0]
    if len(x.shape) != 1:
        raise ShapeError(f"expects a flat input but receives {x}",
                         "add flatten() or a global pooling layer before it")
    return TensorType((attrs["units"],))


def _params(attrs, x):
    return [ParamSpec("kernel", (x.shape[0], attrs["units"]), "glorot_uniform",
                      fans=(x.shape[0], attrs["units"]))]


def _grad(ctx, node, dy):
    """Saves x (for dw); reads w (for dx)."""
    x, w = node.inputs
    dx = ctx.emit("dense_grad_input", [dy, w], out_type=ctx.type(x)) if ctx.needs(x) else None
    dw = ctx.emit("dense_grad_weight", [x, dy], out_type=ctx.type(w))
    return [dx, dw]


register(
    OpDef(
        "dense", COMPLEX, _infer, inputs=("x", "w"),
        flops=lambda attrs, ins, out: 2 * ins[0].numel * out.numel,
        dsl=True, keras_name="dense", layer_options=("use_bias", "activation"),
        example="128", kernel_linear=True,
        attrs=(
            Attr("units", Int(), positional=True, doc="number of outputs"),
            Attr("activation", Activation(), LINEAR),
            Attr("use_bias", Bool(), True),
        ),
        # panels of the kernel's columns, each contiguous: the GEMM's packed operand
        packed=Packing("panels", "pack_panels"),
        params=_params, template="dense", takes=(ROW,), grad=_grad,
        doc="fully connected layer, kernel (in, out) (tf.keras Dense)"),
    # dy @ w.T: the dense kernel itself, with w.T (out, in) as its kernel (packed in panels
    # of w's rows by pack_kernels where the target packs).
    OpDef("dense_grad_input", COMPLEX, lambda attrs, ins: TensorType((ins[1].shape[0],)),
          inputs=("dy", "wt"), flops=lambda a, i, o: 2 * i[0].numel * o.numel,
          packed=Packing("panels_t", "pack_panels_t"),
          template="dense", takes=(ROW,), direction=BACKWARD,
          doc="dx of dense: dy @ w.T, i.e. the dense kernel with w.T as its kernel"),
    OpDef("dense_grad_weight", OPAQUE,
          lambda attrs, ins: TensorType((ins[0].shape[0], ins[1].shape[0]), batched=False),
          inputs=("x", "dy"), flops=lambda a, i, o: 2 * i[0].numel * i[1].numel,
          template="dense_grad_weight", direction=BACKWARD, out="dw", siblings=(CHANNELS,),
          doc="dw of dense: x.T @ dy"),
)
