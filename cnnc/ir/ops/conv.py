"""conv2d: a 2-D convolution over NHWC input with an HWIO kernel, as tf.keras.layers.Conv2D.

The DSL layer lowers to ``conv2d`` (+ ``bias_add``) (+ an activation op); the fusion pass
joins them again into one kernel. Gradient: the input gradient is dy correlated with the
kernel (a transposed convolution), the weight gradient sums patches of x times dy over
the batch; conv2d saves its input x for the latter.
"""

from __future__ import annotations

from ..attrs import LINEAR, Activation, Attr, Bool, Enum, Int, Pair
from ..graph import TensorType
from ..shapes import window_2d
from .table import (
    BACKWARD,
    CHANNELS,
    COMPLEX,
    OPAQUE,
    WINDOW,
    OpDef,
    Packing,
    ParamSpec,
    ShapeError,
    Window,
    register,
)

WINDOW_OF_KERNEL = Window("kernel", dilated=True)


def _infer(attrs, ins):
    x = ins[0]
    if len(x.shape) != 3:
        raise ShapeError(f"expects an input of shape (height, width, channels), "
                         f"got {x}", "conv2d must come before flatten()")
    (oh, ow), _ = window_2d(x.shape[:2], attrs["kernel"], attrs["strides"], attrs["padding"],
                            attrs["dilation"])
    if oh == 0 or ow == 0:
        kh, kw = WINDOW_OF_KERNEL.extent(attrs)
        raise ShapeError(f"kernel window {kh}x{kw} is larger than its input "
                         f"{x.shape[0]}x{x.shape[1]}x{x.shape[2]}",
                         "use padding=same or a smaller kernel")
    return TensorType((oh, ow, attrs["filters"]))


def _params(attrs, x):
    kh, kw = attrs["kernel"]
    cin, cout = x.shape[-1], attrs["filters"]
    shape = (kh, kw, cin, cout)
    return [ParamSpec("kernel", shape, "glorot_uniform", fans=(kh * kw * cin, kh * kw * cout))]


def _flops(attrs, ins, out):
    kh, kw = attrs["kernel"]
    return 2 * out.numel * kh * kw * ins[0].shape[-1]


def _grad(ctx, node, dy):
    """Saves x (for dw); reads w (for dx)."""
    x, w = node.inputs
    dx = None
    if ctx.needs(x):
        dx = ctx.emit("conv2d_grad_input", [dy, w],
                      dict(node.attrs, in_shape=ctx.type(x).shape), out_type=ctx.type(x))
    dw = ctx.emit("conv2d_grad_weight", [x, dy], node.attrs, out_type=ctx.type(w))
    return [dx, dw]


def _grad_weight_infer(attrs, ins):
    x, dy = ins
    kh, kw = attrs["kernel"]
    return TensorType((kh, kw, x.shape[-1], dy.shape[-1]), batched=False)


register(
    OpDef(
        "conv2d", COMPLEX, _infer, inputs=("x", "w"), flops=_flops,
        dsl=True, keras_name="conv2d", layer_options=("use_bias", "activation"),
        example="32, kernel=3", window=WINDOW_OF_KERNEL, kernel_linear=True,
        attrs=(
            Attr("filters", Int(), positional=True, doc="number of output channels"),
            Attr("kernel", Pair(), positional=True, doc="kernel height and width"),
            Attr("strides", Pair(), (1, 1)),
            Attr("padding", Enum(("valid", "same")), "valid"),
            Attr("dilation", Pair(), (1, 1)),
            Attr("activation", Activation(), LINEAR),
            Attr("use_bias", Bool(), True),
        ),
        # the implicit GEMM's operand: (kh*kw*in, out) in panels of output channels; a
        # one-channel convolution vectorizes over output channels with the kernel as it is
        # (its 9-tap GEMM spends more on the tile than on the sums: 3x slower, measured)
        packed=Packing("panels", "pack_conv_panels", applies=lambda x: x.shape[-1] > 1),
        params=_params, template="conv2d", takes=(WINDOW,), grad=_grad,
        doc="2-D convolution, NHWC input, HWIO kernel (tf.keras Conv2D)"),
    OpDef("conv2d_grad_input", COMPLEX, lambda attrs, ins: TensorType(tuple(attrs["in_shape"])),
          inputs=("dy", "w"), window=WINDOW_OF_KERNEL, direction=BACKWARD,
          flops=lambda a, i, o: 2 * i[0].numel * a["kernel"][0] * a["kernel"][1] * o.shape[-1],
          packed=Packing("ihwo", "pack_ihwo"), template="conv2d_grad_input",
          doc="dx of conv2d: dy correlated with the kernel (a transposed convolution)"),
    OpDef("conv2d_grad_weight", OPAQUE, _grad_weight_infer, inputs=("x", "dy"),
          window=WINDOW_OF_KERNEL, direction=BACKWARD, out="dw",
          flops=lambda a, i, o: 2 * i[1].numel * a["kernel"][0] * a["kernel"][1] *
          i[0].shape[-1], template="conv2d_grad_weight", siblings=(CHANNELS,),
          doc="dw of conv2d: patches of x times dy, summed over the batch"),
)
