"""Ops that move or combine data: flatten, dropout, bias_add, the residual add, and the
parameter-only layout ops the pack_kernels pass emits."""

from __future__ import annotations

from ..attrs import Attr, Float
from ..graph import TensorType
from .table import (
    BACKWARD,
    BROADCAST,
    CHANNELS,
    ELEMENTWISE,
    INJECTIVE,
    REDUCTION,
    OpDef,
    ShapeError,
    register,
)


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


def _flatten_grad(ctx, node, dy):
    return [ctx.emit("reshape", [dy], {"shape": ctx.type(node.inputs[0]).shape})]


def _bias_add_grad(ctx, node, dy):
    x, b = node.inputs
    return [dy, ctx.emit("bias_grad", [dy], out_type=ctx.type(b))]


def _add_grad(ctx, node, dy):
    return [dy, dy]


def _dropout_train(ctx, node, ins):
    """In a training graph: this step's mask, numbered by the layer's salt (its place
    among the model's dropout layers)."""
    return ctx.emit("dropout_train", [ins[0], ctx.seed, ctx.first],
                    {"rate": node.attrs["rate"], "salt": ctx.salt()})


def _dropout_train_grad(ctx, node, dy):
    """Saves nothing: the mask is recomputed from the step's seed and the element index."""
    return [ctx.emit("dropout_grad", [dy, node.inputs[1], node.inputs[2]], node.attrs), None,
            None]


# Inverted dropout with a counter-based mask: element `IDX` of a tensor is kept when
# uniform(seed, salt, IDX) >= rate, and scaled by 1 / (1 - rate). IDX is the element's
# index in the step's global batch, whose sample `first` the batch starts at (0 but in
# data-parallel training): N processes at batch B draw the masks one process draws at
# batch N * B. No mask is stored: the gradient recomputes it.
_KEEP = "dropout_keep(seed, salt, IDX, rate)"

register(
    OpDef("flatten", INJECTIVE, _flatten, flops=lambda a, i, o: 0, dsl=True,
          keras_name="flatten", view=True, grad=_flatten_grad,
          doc="(H, W, C) -> (H*W*C,) in NHWC order; a view, never a copy"),
    OpDef("reshape", INJECTIVE, lambda attrs, ins: TensorType(tuple(attrs["shape"])),
          flops=lambda a, i, o: 0, view=True, doc="a view with another per-sample shape"),
    OpDef("dropout", ELEMENTWISE, lambda attrs, ins: ins[0], flops=lambda a, i, o: 0,
          dsl=True, keras_name="dropout", view=True, identity_at_inference=True,
          train=_dropout_train, example="0.5",
          attrs=(Attr("rate", Float(0.0, 1.0, max_open=True), positional=True,
                      doc="fraction of units dropped while training"),),
          doc="inverted dropout while training; the identity at inference"),
    OpDef("dropout_train", ELEMENTWISE, lambda attrs, ins: ins[0], inputs=("x", "seed", "first"),
          expr=f"x * {_KEEP}", template="elementwise", flops=lambda a, i, o: o.numel,
          grad=_dropout_train_grad, doc="dropout while training (seeded per step)"),
    OpDef("dropout_grad", ELEMENTWISE, lambda attrs, ins: ins[0], inputs=("dy", "seed", "first"),
          expr=f"dy * {_KEEP}", template="elementwise", flops=lambda a, i, o: o.numel,
          direction=BACKWARD, doc="gradient of dropout: the same mask and scale applied to dy"),
    OpDef("bias_add", BROADCAST, _bias_add, inputs=("x", "b"), expr="x + b",
          channel_inputs=("b",), template="elementwise", grad=_bias_add_grad, adds_bias=True,
          tag="bias", doc="adds a per-channel bias"),
    OpDef("bias_grad", REDUCTION,
          lambda attrs, ins: TensorType((ins[0].shape[-1],), batched=False), inputs=("dy",),
          flops=lambda a, i, o: i[0].numel, template="reduce_channels", direction=BACKWARD,
          reduction=CHANNELS,
          out="db", doc="the bias gradient: dy summed over all axes but the last"),
    OpDef("add", ELEMENTWISE, _add, inputs=("x", "skip"), expr="x + skip",
          template="elementwise", grad=_add_grad,
          doc="elementwise sum: a residual block's output x plus its input (the skip)"),
)


# Kernel layouts chosen by the pack_kernels pass: parameter-only ops (`prepare` step).

# The dense GEMMs' panel width: a row of a panel is 2 vectors of 16 float32 (AVX-512) or
# 4 of 8 (AVX2); a panel of a 5408-input kernel (692 KB) fits in a 2 MB L2.
PANEL = 32
# (k, n padded) -> (n / PANEL, k, PANEL), contiguous: the last step of the panel packings
_PANELS = f"value.reshape(value.shape[0], -1, {PANEL}).transpose(1, 0, 2).copy()"


def _panels(n: int, k: int) -> tuple[int, int, int]:
    """The packed shape of a (k, n) matrix in panels of PANEL columns."""
    return (-(-n // PANEL), k, PANEL)




def conv_panel(cout: int) -> int:
    """The panel width of a convolution's packed kernel: 16 output channels (one AVX-512
    vector) for up to 16 channels, so a narrow layer computes no padding, else PANEL."""
    return 16 if cout <= 16 else PANEL


def _conv_panels(w) -> tuple[int, int, int]:
    cout, taps = w.shape[3], w.numel // w.shape[3]
    width = conv_panel(cout)
    return (-(-cout // width), taps, width)


# conv_panel(out) as an expression of the kernel: 16 << (out > 16)
_CONV_WIDTH = "(16 << (w.shape[3] > 16))"

register(
    OpDef("pack_conv_panels", INJECTIVE,
          lambda attrs, ins: TensorType(_conv_panels(ins[0]), batched=False),
          inputs=("w",), flops=lambda a, i, o: 0,
          expr=("w.reshape(-1, w.shape[3])",
                f"np.pad(value, ((0, 0), (0, -value.shape[1] % {_CONV_WIDTH})))",
                f"value.reshape(value.shape[0], -1, {_CONV_WIDTH}).transpose(1, 0, 2).copy()"),
          prepare_template="pack_panels",
          doc="HWIO conv kernel as (kh*kw*in, out) panels of 16/32 columns, zero-padded"),
    OpDef("pack_ihwo", INJECTIVE,
          lambda attrs, ins: TensorType((ins[0].shape[2], ins[0].numel // ins[0].shape[2]),
                                        batched=False),
          inputs=("w",), flops=lambda a, i, o: 0,
          expr="np.ascontiguousarray(w.transpose(2, 0, 1, 3)).reshape(w.shape[2], -1)",
          doc="HWIO conv kernel -> (in, kh*kw*out): the input gradient's dot products"),
    OpDef("pack_panels", INJECTIVE,
          lambda attrs, ins: TensorType(_panels(ins[0].shape[1], ins[0].shape[0]), batched=False),
          inputs=("w",), flops=lambda a, i, o: 0,
          expr=(f"w if w.shape[1] % {PANEL} == 0 else "
                f"np.pad(w, ((0, 0), (0, -w.shape[1] % {PANEL})))", _PANELS),
          prepare_template="pack_panels",
          doc=f"dense kernel (in, out) as (out / {PANEL}, in, {PANEL}) panels, zero-padded"),
    OpDef("pack_panels_t", INJECTIVE,
          lambda attrs, ins: TensorType(_panels(ins[0].shape[0], ins[0].shape[1]), batched=False),
          inputs=("w",), flops=lambda a, i, o: 0,
          expr=(f"w if w.shape[0] % {PANEL} == 0 else "
                f"np.pad(w, ((0, -w.shape[0] % {PANEL}), (0, 0)))",
                f"value.reshape(-1, {PANEL}, value.shape[1]).transpose(0, 2, 1).copy()"),
          prepare_template="pack_panels", template_args={"transpose": True},
          doc=f"w.T as (in / {PANEL}, out, {PANEL}) panels, zero-padded (dx's GEMM)"),
)
