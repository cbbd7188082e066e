"""batchnorm: tf.keras BatchNormalization over the last (channel) axis.

At inference it is a broadcast op using the moving statistics; the fold_batchnorm pass
folds it into a preceding conv2d or dense when it can.
"""

from __future__ import annotations

from ..attrs import Attr, Float
from . import BROADCAST, ELEMENTWISE, OpDef, ParamSpec, register


def _params(attrs, x):
    c = (x.shape[-1],)
    return [ParamSpec("gamma", c, "ones"), ParamSpec("beta", c, "zeros"),
            ParamSpec("moving_mean", c, "zeros", trainable=False),
            ParamSpec("moving_variance", c, "ones", trainable=False)]


register(OpDef(
    "batchnorm", BROADCAST, lambda attrs, ins: ins[0],
    inputs=("x", "gamma", "beta", "mean", "var"),
    flops=lambda a, i, o: 2 * o.numel,
    dsl=True, keras_name="batch_normalization",
    attrs=(Attr("momentum", Float(0.0, 1.0), 0.99),
           Attr("epsilon", Float(0.0, None, min_open=True), 0.001)),
    params=_params,
    expr="(x - mean) * (gamma / math.sqrt(var + epsilon)) + beta",
    channel_inputs=("gamma", "beta", "mean", "var"), template="elementwise",
    doc="batch normalization with moving statistics (inference)"))


# Parameter-only ops computed once per parameter set (the module's `prepare` step), which
# fold_batchnorm emits. `expr` is numpy over whole arrays, broadcasting over the last axis.
def _scale_infer(attrs, ins):
    return ins[0]


register(
    OpDef("bn_scale", ELEMENTWISE, lambda attrs, ins: ins[0], inputs=("gamma", "var"),
          expr="gamma / np.sqrt(var + epsilon)", flops=lambda a, i, o: 0,
          doc="gamma / sqrt(var + epsilon): the batchnorm scale"),
    OpDef("scale_kernel", ELEMENTWISE, _scale_infer, inputs=("w", "s"),
          expr="w * s", flops=lambda a, i, o: 0,
          doc="a kernel scaled per output channel (last axis)"),
    OpDef("fold_bias", ELEMENTWISE, lambda attrs, ins: ins[1], inputs=("b", "s", "beta", "mean"),
          expr="(b - mean) * s + beta", flops=lambda a, i, o: 0,
          doc="a bias followed by batchnorm, folded: (b - mean) * s + beta"),
    OpDef("fold_shift", ELEMENTWISE, lambda attrs, ins: ins[0], inputs=("s", "beta", "mean"),
          expr="beta - mean * s", flops=lambda a, i, o: 0,
          doc="the bias of a bias-free layer followed by batchnorm: beta - mean * s"),
)
