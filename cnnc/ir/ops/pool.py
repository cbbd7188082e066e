"""Pooling: max/avg over windows (tf.keras MaxPooling2D/AveragePooling2D) and global pooling.

Padded positions never win a max and are left out of an average's count, as in TF.
"""

from __future__ import annotations

from ..attrs import Attr, Enum, Pair
from ..graph import TensorType
from ..shapes import window_2d
from . import REDUCTION, OpDef, ShapeError, register


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


for _name, _keras in (("maxpool2d", "max_pooling2d"), ("avgpool2d", "average_pooling2d")):
    register(OpDef(
        _name, REDUCTION, _infer, flops=_window_flops, dsl=True, keras_name=_keras,
        attrs=_POOL_ATTRS, template="pool2d", window=True,
        extra={"mode": _name[:3]},
        doc=f"{_name[:3]} pooling over windows (tf.keras {_keras})"))

for _name, _keras in (("global_avgpool2d", "global_average_pooling2d"),
                      ("global_maxpool2d", "global_max_pooling2d")):
    register(OpDef(
        _name, REDUCTION, _global_infer,
        flops=lambda attrs, ins, out: ins[0].numel, dsl=True, keras_name=_keras,
        template="global_pool2d", extra={"mode": _name[7:10]},
        doc=f"{_name[7:10]} over all positions of each channel"))
