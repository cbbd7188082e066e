"""Pooling: max/avg over windows (tf.keras MaxPooling2D/AveragePooling2D) and global pooling.

Padded positions never win a max and are left out of an average's count, as in TF.
Gradients: max pooling routes each window's gradient to the first position holding its
maximum (in row-major window order, as PyTorch does), recomputed from the saved input;
average pooling spreads it evenly over the window's positions inside the input.
"""

from __future__ import annotations

from ..attrs import Attr, Enum, Pair
from ..graph import TensorType
from ..shapes import window_2d
from .table import (
    BACKWARD,
    BROADCAST,
    INJECTIVE,
    OPAQUE,
    REDUCTION,
    WINDOW,
    OpDef,
    ShapeError,
    Window,
    get,
    register,
)

POOL_WINDOW = Window("pool")


def _infer(attrs, ins):
    x = ins[0]
    if len(x.shape) != 3:
        raise ShapeError(f"expects an input of shape (height, width, channels), "
                         f"got {x}", "pool before flatten()")
    (oh, ow), _ = window_2d(x.shape[:2], attrs["pool"], attrs["strides"], attrs["padding"])
    if oh == 0 or ow == 0:
        ph, pw = attrs["pool"]
        raise ShapeError(f"pool window {ph}x{pw} is larger than its input "
                         f"{x.shape[0]}x{x.shape[1]}x{x.shape[2]}",
                         "use padding=same or a smaller window")
    return TensorType((oh, ow, x.shape[2]))


def _global_infer(attrs, ins):
    x = ins[0]
    if len(x.shape) != 3:
        raise ShapeError(f"expects an input of shape (height, width, channels), "
                         f"got {x}")
    return TensorType((x.shape[2],))


_POOL_ATTRS = (
    Attr("pool", Pair(), positional=True, doc="window height and width"),
    Attr("strides", Pair(), None, positional=True, doc="defaults to the window"),
    Attr("padding", Enum(("valid", "same")), "valid"),
)


def _window_flops(attrs, ins, out):
    return out.numel * attrs["pool"][0] * attrs["pool"][1]


def _grad_inputs(grad: str, dy: str, x: str) -> list[str]:
    """max: saves x (the argmax is recomputed from it); avg: saves nothing."""
    return [dy, x] if get(grad).inputs == ("dy", "x") else [dy]


def _pool_grad(ctx, node, dy):
    x = node.inputs[0]
    grad = f"{node.op}_grad"
    return [ctx.emit(grad, _grad_inputs(grad, dy, x),
                     dict(node.attrs, in_shape=ctx.type(x).shape), out_type=ctx.type(x))]


def _global_grad(ctx, node, dy):
    x = node.inputs[0]
    grad = f"{node.op}_grad"
    return [ctx.emit(grad, _grad_inputs(grad, dy, x), {"in_shape": ctx.type(x).shape},
                     out_type=ctx.type(x))]


def _grad_epilogue(attrs) -> str | None:
    """The gradient of pooling writes each position of dx once -- and can apply an
    epilogue -- only when the windows tile the input."""
    if POOL_WINDOW.tiles(attrs):
        return None
    return "overlapping or padded windows scatter-add the gradient"


for _mode, _name, _keras in (("max", "maxpool2d", "max_pooling2d"),
                             ("avg", "avgpool2d", "average_pooling2d")):
    register(
        OpDef(_name, REDUCTION, _infer, flops=_window_flops, dsl=True, keras_name=_keras,
              attrs=_POOL_ATTRS, template="pool2d", window=POOL_WINDOW, reduction=WINDOW,
              grad=_pool_grad, template_args={"mode": _mode}, example="2", tag=f"{_mode}pool",
              doc=f"{_mode} pooling over windows (tf.keras {_keras})"),
        OpDef(f"{_name}_grad", INJECTIVE,
              lambda attrs, ins: TensorType(tuple(attrs["in_shape"])),
              inputs=("dy", "x") if _mode == "max" else ("dy",), window=POOL_WINDOW,
              direction=BACKWARD,
              flops=lambda a, i, o: o.numel, template="pool2d_grad", epilogue=_grad_epilogue,
              template_args={"mode": _mode}, doc=f"dx of {_name}"))

# Max pooling in a training step on the CPU (passes/pool_codes.py): the forward kernel
# also writes, per output element, a byte locating the window's maximum, which the
# gradient reads instead of the pooling's input. Bit 7 of the byte: the maximum is above
# zero (a relu gradient reading the same input keeps the gradient there); bits 0-6: the
# maximum's index in the window, row-major (the first one, as maxpool2d_grad finds it).
CODE_POSITIVE = 128
CODE_WINDOW_LIMIT = 127          # windows of at most this many positions get codes


def _code_grad_infer(attrs, ins):
    return TensorType(tuple(attrs["in_shape"]))


register(
    OpDef("maxpool2d_code", REDUCTION, _infer, flops=_window_flops, attrs=_POOL_ATTRS,
          template="pool2d", window=POOL_WINDOW, template_args={"mode": "max", "code": True},
          reduction=WINDOW,
          tag="maxpool",
          doc="max pooling over tiling windows that also outputs, per output element, the "
              "code of its window's maximum (uint8: position, and whether above zero)"),
    OpDef("maxpool2d_grad_code", INJECTIVE, _code_grad_infer, inputs=("dy", "code"),
          window=POOL_WINDOW, direction=BACKWARD, flops=lambda a, i, o: o.numel,
          template="pool2d_grad", epilogue=_grad_epilogue,
          template_args={"mode": "max", "code": True},
          doc="dx of maxpool2d from the codes of maxpool2d_code (attr relu: a relu gradient "
              "of the same input folded in)"))

for _mode, _name, _keras in (("avg", "global_avgpool2d", "global_average_pooling2d"),
                             ("max", "global_maxpool2d", "global_max_pooling2d")):
    register(
        OpDef(_name, REDUCTION, _global_infer,
              flops=lambda attrs, ins, out: ins[0].numel, dsl=True, keras_name=_keras,
              template="global_pool2d", template_args={"mode": _mode}, grad=_global_grad,
              tag=f"g{_mode}pool", doc=f"{_mode} over all positions of each channel"),
        OpDef(f"{_name}_grad", BROADCAST if _mode == "avg" else OPAQUE,
              lambda attrs, ins: TensorType(tuple(attrs["in_shape"])),
              inputs=("dy", "x") if _mode == "max" else ("dy",), direction=BACKWARD,
              flops=lambda a, i, o: o.numel, template="global_pool2d_grad", epilogue=False,
              template_args={"mode": _mode}, doc=f"dx of {_name}"))
