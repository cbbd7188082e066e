"""The op table's machinery: OpDef and its parts, the registry, categories and the other
vocabularies its fields use. The entries live in the family modules; see the package
docstring."""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..attrs import Attr
from ..graph import Attrs, TensorType
from ..shapes import effective, window_2d

ELEMENTWISE, BROADCAST, INJECTIVE, REDUCTION, COMPLEX, OPAQUE = (
    "elementwise", "broadcast", "injective", "reduction", "complex", "opaque")
CATEGORIES = (ELEMENTWISE, BROADCAST, INJECTIVE, REDUCTION, COMPLEX, OPAQUE)

# Reductions a complex op's template can compute in its epilogue (`OpDef.reduction`,
# `OpDef.takes`): pooling windows over the output, or a whole output row. CHANNELS, a sum
# over every axis but the last (the bias gradient), is computed instead beside an op that
# reads the same tensor (`OpDef.siblings`: the weight gradients read dy).
WINDOW, ROW, CHANNELS = "window", "row", "channels"

# Which part of a training step a kernel belongs to (`OpDef.direction`): its function's
# name ends with the suffix.
FORWARD, BACKWARD, LOSS, UPDATE = "_fwd", "_bwd", "_loss", "_update"


class ShapeError(Exception):
    """An op cannot apply to its input shapes; carries a message and an optional hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class ParamSpec:
    """A parameter a layer creates, e.g. ('kernel', (3, 3, 1, 32), 'glorot_uniform')."""

    name: str
    shape: tuple[int, ...]
    init: str
    trainable: bool = True
    fans: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Window:
    """A 2-D sliding window over (height, width). Its size is the attribute named `size`
    (`kernel` of conv2d, `pool` of pooling); `strides`, `padding`, `pads` (computed by the
    front end from TF's rule) and, when `dilated`, `dilation` are attributes too."""

    size: str
    dilated: bool = False

    def geometry(self, attrs) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(size, strides, dilation) of the window."""
        return (tuple(attrs[self.size]), tuple(attrs["strides"]),
                tuple(attrs["dilation"]) if self.dilated else (1, 1))

    def pads(self, attrs, x: TensorType) -> tuple[int, int, int, int]:
        """(pad_top, pad_bottom, pad_left, pad_right) on an input of type `x`."""
        size, strides, dilation = self.geometry(attrs)
        return window_2d(x.shape[:2], size, strides, attrs["padding"], dilation)[1]

    def overlaps(self, attrs) -> bool:
        """Whether neighbouring windows share positions (a stride below the size)."""
        size, strides, _ = self.geometry(attrs)
        return any(s < k for s, k in zip(strides, size))

    def tiles(self, attrs) -> bool:
        """Whether windows cover the (unpadded) input without overlapping: each position
        lies in at most one window."""
        return not any(attrs["pads"]) and not self.overlaps(attrs)

    def extent(self, attrs) -> tuple[int, int]:
        size, _, dilation = self.geometry(attrs)
        return tuple(effective(k, d) for k, d in zip(size, dilation))

    def describe(self, attrs) -> str:
        """E.g. '3x3/1x1 valid' or '3x3/1x1 same dilation 2x2'."""
        (kh, kw), (sh, sw), (dh, dw) = self.geometry(attrs)
        text = f"{kh}x{kw}/{sh}x{sw} {attrs['padding']}"
        return text + (f" dilation {dh}x{dw}" if (dh, dw) != (1, 1) else "")


@dataclass(frozen=True)
class Packing:
    """The layout a dot-product kernel reads the op's kernel (input 1) in, made by the
    parameter-only op `op` (see passes/pack_kernels.py). `applies(input type)` says when:
    e.g. a one-channel convolution keeps its kernel as it is."""

    layout: str
    op: str
    applies: Callable[[TensorType], bool] = lambda x: True


@dataclass(frozen=True)
class OpDef:
    name: str
    category: str
    infer: Callable[[Attrs, list[TensorType]], TensorType]
    inputs: tuple[str, ...] = ("x",)
    flops: Callable[[Attrs, list[TensorType], TensorType], int] = \
        lambda attrs, ins, out: out.numel
    doc: str = ""
    # --- how the op is written in model files (dsl ops only) ---
    dsl: bool = False
    attrs: tuple[Attr, ...] = ()
    keras_name: str = ""
    layer_options: tuple[str, ...] = ()      # 'use_bias' and/or 'activation'
    params: Callable[[Attrs, TensorType], list[ParamSpec]] | None = None
    example: str = "..."                     # its arguments in "e.g. conv2d(32, kernel=3)"
    activation: bool = False                 # an activation function (activation=fn); its
                                             # `attrs` are the function's parameters
    window: Window | None = None             # a sliding window over (height, width)
    # --- what the passes may do with it ---
    identity_at_inference: bool = False      # simplify_inference removes it (dropout, linear)
    folds: bool = False                      # a per-channel affine map at inference that
                                             # fold_batchnorm folds into a `kernel_linear` op
    kernel_linear: bool = False              # linear in its kernel (input 1), output channels
                                             # on the kernel's last axis (conv2d, dense)
    adds_bias: bool = False                  # adds a per-channel parameter (bias_add)
    packed: Packing | None = None            # the kernel layout dot-product kernels read
    logits_losses: dict[str, str] = field(default_factory=dict)
                                             # loss kinds (from probabilities) this activation
                                             # joins as their logits form (the `loss` rule)
    distribution: bool = False               # outputs a probability distribution (last axis)
    horizontal: bool = False                 # independent elementwise work on parameters,
                                             # one kernel per step by the `updates` rule
    # --- fusion ---
    reduction: str | None = None             # WINDOW or ROW: a reduction a complex op's
                                             # template can compute in its epilogue;
                                             # CHANNELS: one a sibling's template computes
    siblings: tuple[str, ...] = ()           # reductions of its last input (dy) that its
                                             # template computes alongside (`siblings` rule)
    takes: tuple[str, ...] = ()              # complex ops: the reductions their template
                                             # computes in its epilogue
    epilogue: bool | Callable[[Attrs], str | None] = True
                                             # its template applies elementwise work to its
                                             # output; a function: None when it can for these
                                             # attributes, else the reason it cannot
    # --- code generation ---
    expr: str | tuple[str, ...] | None = None  # scalar expression (elementwise/broadcast ops);
                                             # a parameter-only op's numpy steps, each after
                                             # the first reading the last as `value`
    channel_inputs: tuple[str, ...] = ()     # broadcast ops: inputs indexed by channel only
    template: str | None = None              # kernel template name (same for every target)
    prepare_template: str | None = None      # parameter-only ops: a template computing it
                                             # on its input as a (rows, last axis) matrix,
                                             # for targets that render one (else `expr`)
    template_args: dict[str, Any] = field(default_factory=dict)   # what its template reads
    view: bool = False                       # no kernel: the output is a view of the input
    tag: str = ""                            # its part of kernel names (default: its name)
    direction: str = FORWARD
    out: str = ""                            # its kernel's name for the output (default y,
                                             # or dx in a backward kernel)
    stem: Callable[[Attrs], str] | None = None   # the kernel's name from the attributes
                                                 # (loss kinds, update rules)
    # --- training ---
    train: Callable | None = None            # its form in a training graph (see autodiff)
    grad: Callable | None = None             # gradient rule, see cnnc.train.autodiff

    def attr(self, name: str) -> Attr:
        for a in self.attrs:
            if a.name == name:
                return a
        raise KeyError(name)

    def epilogue_refusal(self, attrs) -> str | None:
        """None if its template can apply an epilogue for `attrs`, else why not."""
        if callable(self.epilogue):
            return self.epilogue(attrs)
        return None if self.epilogue else "its kernel takes no epilogue"

    @property
    def chainable(self) -> bool:
        """An elementwise/broadcast op with a scalar expression: it can run inside any
        kernel's epilogue or in a chain of its own."""
        return self.category in (ELEMENTWISE, BROADCAST) and self.expr is not None \
            and not self.view

    @property
    def short(self) -> str:
        return self.tag or self.name


OPS: dict[str, OpDef] = {}


def register(*ops: OpDef) -> None:
    for op in ops:
        assert op.name not in OPS, op.name
        assert op.category in CATEGORIES, op
        assert op.reduction in (None, WINDOW, ROW, CHANNELS), op
        OPS[op.name] = op


def get(name: str) -> OpDef:
    return OPS[name]


def dsl_ops() -> dict[str, OpDef]:
    return {name: op for name, op in OPS.items() if op.dsl}


def activation_ops() -> dict[str, OpDef]:
    """The activation functions, in the order the language reference lists them."""
    return {name: op for name, op in OPS.items() if op.activation}
