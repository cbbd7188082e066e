"""batchnorm: tf.keras BatchNormalization over the last (channel) axis.

At inference it is a broadcast op using the moving statistics; the fold_batchnorm pass
folds it into a preceding conv2d or dense when it can. While training it normalizes with
the batch's mean and (biased) variance, which it saves for the gradient, and the train
step moves the statistics as Keras does: moving = momentum * moving + (1 - momentum) *
batch statistic.
"""

from __future__ import annotations

from ..attrs import Attr, Float
from .table import BACKWARD, BROADCAST, ELEMENTWISE, OPAQUE, OpDef, ParamSpec, register


def _params(attrs, x):
    c = (x.shape[-1],)
    return [ParamSpec("gamma", c, "ones"), ParamSpec("beta", c, "zeros"),
            ParamSpec("moving_mean", c, "zeros", trainable=False),
            ParamSpec("moving_variance", c, "ones", trainable=False)]


def _train(ctx, node, ins):
    """In a training graph: normalize with the batch's mean and (biased) variance, which
    are saved for the gradient and move the moving statistics after the step."""
    x, gamma, beta, moving_mean, moving_var = ins
    channel = ctx.type(gamma)
    y, mean, var = ctx.emit_multi("batchnorm_train", [x, gamma, beta],
                                  {"epsilon": node.attrs["epsilon"]},
                                  [ctx.type(x), channel, channel], suffixes=["mean", "var"])
    ctx.moving_statistics(moving_mean, moving_var, mean, var, node.attrs["momentum"])
    return y


def _train_grad(ctx, node, dys):
    """Saves x and the batch mean and variance; returns dx, dgamma, dbeta."""
    x, gamma, beta = node.inputs
    _, mean, var = node.outputs
    channel = ctx.type(gamma)
    dx, dgamma, dbeta = ctx.emit_multi(
        "batchnorm_train_grad", [dys[0], x, gamma, mean, var], node.attrs,
        [ctx.type(x), channel, channel], suffixes=["dgamma", "dbeta"])
    return [dx, dgamma, dbeta]


register(OpDef(
    "batchnorm", BROADCAST, lambda attrs, ins: ins[0],
    inputs=("x", "gamma", "beta", "mean", "var"),
    flops=lambda a, i, o: 2 * o.numel,
    dsl=True, keras_name="batch_normalization",
    attrs=(Attr("momentum", Float(0.0, 1.0), 0.99),
           Attr("epsilon", Float(0.0, None, min_open=True), 0.001)),
    params=_params, folds=True, train=_train, tag="bn",
    expr="(x - mean) * (gamma / math.sqrt(var + epsilon)) + beta",
    channel_inputs=("gamma", "beta", "mean", "var"), template="elementwise",
    doc="batch normalization with moving statistics (inference)"))

register(
    OpDef("batchnorm_train", OPAQUE, lambda attrs, ins: ins[0], inputs=("x", "gamma", "beta"),
          flops=lambda a, i, o: 6 * o.numel, template="batchnorm_train", grad=_train_grad,
          doc="batch normalization with the batch's statistics; outputs y, mean, variance"),
    OpDef("batchnorm_train_grad", OPAQUE, lambda attrs, ins: ins[1],
          inputs=("dy", "x", "gamma", "mean", "var"), flops=lambda a, i, o: 8 * o.numel,
          direction=BACKWARD,
          template="batchnorm_train_grad", doc="dx, dgamma, dbeta of batchnorm_train"),
)


# Parameter-only ops computed once per parameter set (the module's `prepare` step), which
# fold_batchnorm emits. `expr` is numpy over whole arrays, broadcasting over the last axis.
register(
    OpDef("bn_scale", ELEMENTWISE, lambda attrs, ins: ins[0], inputs=("gamma", "var"),
          expr="gamma / np.sqrt(var + epsilon)", flops=lambda a, i, o: 0,
          doc="gamma / sqrt(var + epsilon): the batchnorm scale"),
    OpDef("scale_kernel", ELEMENTWISE, lambda attrs, ins: ins[0], inputs=("w", "s"),
          expr="w * s", flops=lambda a, i, o: 0,
          doc="a kernel scaled per output channel (last axis)"),
    OpDef("fold_bias", ELEMENTWISE, lambda attrs, ins: ins[1], inputs=("b", "s", "beta", "mean"),
          expr="(b - mean) * s + beta", flops=lambda a, i, o: 0,
          doc="a bias followed by batchnorm, folded: (b - mean) * s + beta"),
    OpDef("fold_shift", ELEMENTWISE, lambda attrs, ins: ins[0], inputs=("s", "beta", "mean"),
          expr="beta - mean * s", flops=lambda a, i, o: 0,
          doc="the bias of a bias-free layer followed by batchnorm: beta - mean * s"),
)
