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
from . import BROADCAST, INJECTIVE, OPAQUE, REDUCTION, OpDef, ShapeError, register


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


def _pool_grad(ctx, node, dy):
    """max: saves x (the argmax is recomputed from it); avg: saves nothing."""
    x = node.inputs[0]
    mode = node.op[:3]
    inputs = [dy, x] if mode == "max" else [dy]
    return [ctx.emit(f"{node.op}_grad", inputs, dict(node.attrs, in_shape=ctx.type(x).shape),
                     out_type=ctx.type(x))]


def _global_grad(ctx, node, dy):
    x = node.inputs[0]
    inputs = [dy, x] if node.op == "global_maxpool2d" else [dy]
    return [ctx.emit(f"{node.op}_grad", inputs, {"in_shape": ctx.type(x).shape},
                     out_type=ctx.type(x))]


for _name, _keras in (("maxpool2d", "max_pooling2d"), ("avgpool2d", "average_pooling2d")):
    register(
        OpDef(_name, REDUCTION, _infer, flops=_window_flops, dsl=True, keras_name=_keras,
              attrs=_POOL_ATTRS, template="pool2d", window=True, grad=_pool_grad,
              extra={"mode": _name[:3]},
              doc=f"{_name[:3]} pooling over windows (tf.keras {_keras})"),
        OpDef(f"{_name}_grad", INJECTIVE,
              lambda attrs, ins: TensorType(tuple(attrs["in_shape"])),
              inputs=("dy", "x") if _name.startswith("max") else ("dy",),
              flops=lambda a, i, o: o.numel, template="pool2d_grad",
              extra={"mode": _name[:3]}, doc=f"dx of {_name}"))

for _name, _keras in (("global_avgpool2d", "global_average_pooling2d"),
                      ("global_maxpool2d", "global_max_pooling2d")):
    register(
        OpDef(_name, REDUCTION, _global_infer,
              flops=lambda attrs, ins, out: ins[0].numel, dsl=True, keras_name=_keras,
              template="global_pool2d", extra={"mode": _name[7:10]}, grad=_global_grad,
              doc=f"{_name[7:10]} over all positions of each channel"),
        OpDef(f"{_name}_grad", BROADCAST if "avg" in _name else OPAQUE,
              lambda attrs, ins: TensorType(tuple(attrs["in_shape"])),
              inputs=("dy", "x") if "max" in _name else ("dy",),
              flops=lambda a, i, o: o.numel, template="global_pool2d_grad", epilogue=False,
              extra={"mode": _name[7:10]}, doc=f"dx of {_name}"))
