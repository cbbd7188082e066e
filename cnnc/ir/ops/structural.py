"""Ops that move or combine data: flatten, dropout, bias_add and the residual add."""

from __future__ import annotations

from ..attrs import Attr, Float
from ..graph import TensorType
from . import BROADCAST, ELEMENTWISE, INJECTIVE, OpDef, ShapeError, register


def _flatten(attrs, ins):
    return TensorType((ins[0].numel,))


def _add(attrs, ins):
    a, b = ins
    if a.shape != b.shape:
        raise ShapeError(f"cannot add shapes {a} and {b}")
    return a


def _bias_add(attrs, ins):
    x, b = ins
    if b.shape != (x.shape[-1],):
        raise ShapeError(f"bias of shape {b} does not match {x}")
    return x


register(
    OpDef("flatten", INJECTIVE, _flatten, flops=lambda a, i, o: 0, dsl=True,
          keras_name="flatten", view=True,
          doc="(H, W, C) -> (H*W*C,) in NHWC order; a view, never a copy"),
    OpDef("dropout", ELEMENTWISE, lambda attrs, ins: ins[0], flops=lambda a, i, o: 0,
          dsl=True, keras_name="dropout", view=True,
          attrs=(Attr("rate", Float(0.0, 1.0, max_open=True), positional=True,
                      doc="fraction of units dropped while training"),),
          doc="inverted dropout while training; the identity at inference"),
    OpDef("bias_add", BROADCAST, _bias_add, inputs=("x", "b"), expr="x + b",
          channel_inputs=("b",), template="elementwise",
          doc="adds a per-channel bias"),
    OpDef("add", ELEMENTWISE, _add, inputs=("x", "skip"), expr="x + skip",
          template="elementwise",
          doc="elementwise sum: a residual block's output x plus its input (the skip)"),
)


# Kernel layouts chosen by the pack_kernels pass: parameter-only ops (`prepare` step).
register(
    OpDef("pack_ohwi", INJECTIVE,
          lambda attrs, ins: TensorType((ins[0].shape[3], ins[0].numel // ins[0].shape[3]),
                                        batched=False),
          inputs=("w",), flops=lambda a, i, o: 0,
          expr="np.ascontiguousarray(w.transpose(3, 0, 1, 2)).reshape(w.shape[3], -1)",
          doc="HWIO conv kernel -> (out, kh*kw*in): each output channel's taps contiguous"),
    OpDef("transpose_kernel", INJECTIVE,
          lambda attrs, ins: TensorType(ins[0].shape[::-1], batched=False),
          inputs=("w",), flops=lambda a, i, o: 0, expr="np.ascontiguousarray(w.T)",
          doc="dense kernel (in, out) -> (out, in): each output's weights contiguous"),
)
