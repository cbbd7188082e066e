"""Per-template kernel contexts: what each template needs to render one group.

Every builder returns a :class:`Kernel`: the values it reads (in argument order), how the
host passes each one (as-is, or as a flat/row view), and the template context -- sizes,
strides and padding as literals, and the `pre`/`post` chain renderers that splice the
group's elementwise work into the template's loops.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from types import SimpleNamespace

from ..ir import ops
from ..ir.graph import Graph
from .groups import Chain, Group

FLAT, ROWS, ASIS = "flat", "rows", "as-is"


@dataclass
class Kernel:
    name: str
    template: str
    group: Group
    context: SimpleNamespace
    args: list[tuple[str, str]] = field(default_factory=list)   # (value, view)
    out_view: str = ASIS
    # (value, local name, view) of each output; default: the group's output as `y`
    outputs: list[tuple[str, str, str]] | None = None
    # (local name, host key) of per-call scalars the host passes (learning rate, ...)
    scalars: list[tuple[str, str]] = field(default_factory=list)


def _describe(graph: Graph, kernel: "Kernel") -> list[str]:
    lines = []
    for value, local in kernel.group.args.items():
        if value.startswith("@"):
            lines.append(f"{local}: flat buffer of every {value[1:].split(':')[-1]} of the "
                         f"step")
            continue
        role = graph.values[value].role
        lines.append(f"{local}: {graph.type(value).__str__().replace('None', 'N')}  "
                     f"{'parameter ' + repr(value) if role in ('param', 'state') else value}")
    for local, key in kernel.scalars:
        lines.append(f"{local}: scalar  {key}")
    for value, local, _ in kernel.outputs:
        lines.append(f"{local}: {str(graph.type(value)).replace('None', 'N')}  {value}")
    return lines


def _title(group: Group) -> str:
    parts = []
    for node in group.nodes:
        op = ops.get(node.op)
        if op.view:
            continue
        desc = node.op
        a = node.attrs
        if node.op == "conv2d":
            desc += (f" {a['kernel'][0]}x{a['kernel'][1]}/{a['strides'][0]}x{a['strides'][1]}"
                     f" {a['padding']}" + (f" dilation {a['dilation'][0]}x{a['dilation'][1]}"
                                            if a["dilation"] != (1, 1) else ""))
        elif op.window:
            desc += f" {a['pool'][0]}x{a['pool'][1]}/{a['strides'][0]}x{a['strides'][1]} " \
                    f"{a['padding']}"
        parts.append(desc)
    layers = list(dict.fromkeys(n.layer for n in group.nodes))
    return (" + ".join(parts) + f" (layer{'s' if len(layers) > 1 else ''} "
            + ", ".join(layers) + ")")


def build(group: Group, graph: Graph, name: str, target: str = "cpu") -> Kernel:
    builder = BUILDERS[group.template]
    chain = Chain(group, graph)
    ctx = SimpleNamespace(
        name=name, title=_title(group), parallel=True,
        pre=lambda start, full, channel, index=None: chain.render(
            group.pre, group.anchor.output if group.anchor else None, start, full, channel,
            index),
        post=lambda start, full, channel, index=None: chain.render(
            group.post, group.reducer.output if group.reducer else None, start, full,
            channel, index))
    ctx.needs_index = any("IDX" in (ops.get(n.op).expr or "") for n in group.nodes)
    kernel = Kernel(name, group.template, group, ctx)
    builder(kernel, graph)
    if target == "cuda":
        from . import cuda
        cuda.extend(kernel, graph)
    kernel.args = kernel.args or [(v, ASIS) for v in group.args]
    if kernel.outputs is None:
        kernel.outputs = [(group.output, "y", kernel.out_view)]
    ctx.params = list(group.args.values()) + [local for local, _ in kernel.scalars] + \
        [local for _, local, _ in kernel.outputs]
    first = group.nodes[0].inputs[0]
    ctx.shapes = (f"{str(graph.type(first)).replace('None', 'N')} -> "
                  f"{str(graph.type(group.output)).replace('None', 'N')}"
                  if group.output else "")
    ctx.doc = _describe(graph, kernel) + [""] + [
        line for text in ctx.loops for line in textwrap.wrap(text, 88)]
    ctx.title = textwrap.shorten(ctx.title, 92, placeholder="...)")
    return kernel


def _window(ctx, attrs, kernel_key):
    """Window geometry as literals: taps, strides, dilation, padding (sizes stay runtime)."""
    ctx.kh, ctx.kw = attrs[kernel_key]
    ctx.sh, ctx.sw = attrs["strides"]
    ctx.dh, ctx.dw = attrs.get("dilation", (1, 1))
    ctx.pt, ctx.pb, ctx.pl, ctx.pr = attrs["pads"]
    ctx.ekh = (ctx.kh - 1) * ctx.dh + 1
    ctx.ekw = (ctx.kw - 1) * ctx.dw + 1
    ctx.padded = any(attrs["pads"])


# One-input-channel convolutions vectorize over output channels from this many on (over
# output columns below it).
TAPS_MIN_CHANNELS = 16


def _conv2d(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    conv = group.anchor
    _window(ctx, conv.attrs, "kernel")
    if conv.attrs.get("kernel_layout") == "ohwi":
        ctx.schedule = "rowdot"
        how = ("Each thread gathers an output row's patches (out_w, kh*kw*cin) and multiplies "
               "them with the packed kernel in blocks of 2 columns x 4 channels (8 sums in "
               "registers, the tap loop vectorized).")
    elif graph.type(conv.output).shape[-1] >= TAPS_MIN_CHANNELS:
        ctx.schedule = "taps"
        ctx.tap_col = lambda s: _affine("ow", ctx.sw, s * ctx.dw)
        terms = [f"x{r}_{s} * wk[{r * ctx.kw + s}, co]"
                 for r in range(ctx.kh) for s in range(ctx.kw)]
        ctx.tap_sum = "v = (\n    " + "\n    + ".join(terms) + "\n)"
        how = ("One input channel: each thread zero-pads the input rows under an output row; "
               "per output column the taps under it multiply the kernel's rows, vectorized "
               "over output channels.")
    else:
        ctx.schedule = "cols"
        terms = [f"w{r}_{s} * rows[{r}, {_affine('ow', ctx.sw, s * ctx.dw)}]"
                 for r in range(ctx.kh) for s in range(ctx.kw)]
        ctx.col_sum = "v = (\n    " + "\n    + ".join(terms) + "\n)"
        how = ("One input channel: each thread zero-pads the input rows under an output row "
               "and sums the shifted rows per output channel, vectorized over output columns.")
    ctx.by_column = ctx.schedule in ("rowdot", "taps")     # acc[ow, co], else acc[co, ow]
    ctx.pool = None
    if group.reducer is not None:
        pool = group.reducer
        p = SimpleNamespace(mode=ops.get(pool.op).extra["mode"])
        p.kh, p.kw = pool.attrs["pool"]
        p.sh, p.sw = pool.attrs["strides"]
        p.pt, _, p.pl, _ = pool.attrs["pads"]
        p.exact = not any(pool.attrs["pads"])     # every window inside the conv output
        ctx.pool = p
        ctx.loops = [f"Parallel over (n, pooled row). {how} The {p.kh} convolution rows under "
                     f"a row of {p.kh}x{p.kw} windows go through the epilogue and are pooled "
                     f"at once: the convolution output is never written."]
    else:
        ctx.loops = [f"Parallel over (n, output row). {how} Writes y once."]


def _affine(var: str, scale: int, offset: int) -> str:
    text = var if scale == 1 else f"{var} * {scale}"
    return f"{text} + {offset}" if offset else text


def _dense(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    ctx.row = group.reducer is not None
    kernel.args = [(v, ROWS if graph.values[v].type.batched else ASIS) for v in group.args]
    kernel.out_view = ROWS
    ctx.loops = ["Parallel over samples; each thread accumulates x[n, i] * w[i, :] into a row "
                 "(contiguous innermost loop)" + (", then applies the softmax to the row."
                                                  if ctx.row else ".")]


def _pool2d(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    pool = group.anchor
    _window(ctx, pool.attrs, "pool")
    ctx.mode = ops.get(pool.op).extra["mode"]
    ctx.loops = ["Parallel over (n, output row); " + (
        "windows clipped to the input." if ctx.padded else
        "the window taps unrolled." if ctx.kh * ctx.kw <= 16 else "windows inside the input.")]


def _global_pool2d(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    pool = group.anchor
    ctx.mode = ops.get(pool.op).extra["mode"]
    ctx.loops = ["Parallel over samples; channels innermost."]


def _elementwise(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    kernel.args = [(v, FLAT if graph.values[v].type.batched else ASIS) for v in group.args]
    kernel.out_view = FLAT
    channel_args = [group.args[v] for n in group.pre
                    for role, v in zip(ops.get(n.op).inputs, n.inputs)
                    if v in group.args and role in ops.get(n.op).channel_inputs]
    ctx.channel_arg = channel_args[0] if channel_args else None
    chain = Chain(group, graph)
    ctx.pre = lambda full, channel: chain.render(group.pre, None, None, full, channel, "i")
    ctx.loops = ["Parallel over all elements of the flattened tensor."]


def _softmax(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    kernel.args = [(v, ROWS if graph.type(v).batched else ASIS) for v in group.args]
    kernel.out_view = ROWS
    chain = Chain(group, graph)
    ctx.post = lambda start, full, channel, index=None: chain.render(
        group.pre, group.anchor.output, start, full, channel, index)
    ctx.loops = ["Parallel over rows (all axes but the last)."]


CHUNKS = 16       # fixed chunk count of deterministic reductions (any thread count)


def _conv2d_grad_input(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    _window(ctx, kernel.group.anchor.attrs, "kernel")
    ctx.loops = ["Parallel over (n, input row); each thread gathers the dy values under "
                 "each input position and multiplies them with the packed kernel in "
                 "blocks of 2 columns x 4 channels."]


def _conv2d_grad_weight(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    node = kernel.group.anchor
    _window(ctx, node.attrs, "kernel")
    ctx.chunks = CHUNKS
    kernel.outputs = [(kernel.group.output, "y", ASIS)]
    ctx.loops = [f"Parallel over {CHUNKS} fixed chunks of the batch, then over taps for the "
                 f"ordered sum of the chunks."]


def _dense_grad_weight(kernel: Kernel, graph: Graph) -> None:
    kernel.args = [(v, ROWS if graph.type(v).batched else ASIS) for v in kernel.group.args]
    kernel.context.loops = ["Parallel over blocks of 4 inputs, after transposing x and dy."]


def _reduce_channels(kernel: Kernel, graph: Graph) -> None:
    kernel.args = [(v, ROWS if graph.type(v).batched else ASIS) for v in kernel.group.args]
    kernel.context.chunks = CHUNKS
    kernel.context.loops = [f"Parallel over {CHUNKS} fixed chunks of rows; chunks summed in "
                            f"order."]


def _pool2d_grad(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    node = kernel.group.anchor
    _window(ctx, node.attrs, "pool")
    ctx.mode = ops.get(node.op).extra["mode"]
    ctx.gather = gather_pool_grad(node)
    ctx.loops = ["Parallel over rows of dx; each window's positions written once."
                 if ctx.gather else "Parallel over samples (overlapping windows)."]


def gather_pool_grad(node) -> bool:
    """Pooling whose windows tile the input (valid, strides >= window): the gradient can
    be written position by position, with an epilogue."""
    a = node.attrs
    return not any(a["pads"]) and all(s >= k for s, k in zip(a["strides"], a["pool"]))


def _global_pool2d_grad(kernel: Kernel, graph: Graph) -> None:
    node = kernel.group.anchor
    kernel.context.mode = ops.get(node.op).extra["mode"]
    kernel.args = [(v, ROWS if i == 0 else ASIS) for i, v in enumerate(kernel.group.args)]
    kernel.context.loops = ["Parallel over samples."]


def _softmax_grad(kernel: Kernel, graph: Graph) -> None:
    kernel.args = [(v, ROWS if graph.type(v).batched else ASIS) for v in kernel.group.args]
    kernel.out_view = ROWS
    kernel.context.loops = ["Parallel over rows."]


def _batchnorm_train(kernel: Kernel, graph: Graph) -> None:
    node = kernel.group.anchor
    kernel.context.epsilon = node.attrs["epsilon"]
    kernel.context.chunks = CHUNKS
    kernel.args = [(v, ROWS if graph.type(v).batched else ASIS) for v in kernel.group.args]
    y, mean, var = node.outputs
    kernel.outputs = [(y, "y", ROWS), (mean, "mean", ASIS), (var, "var", ASIS)]
    kernel.context.loops = ["Parallel over fixed chunks of rows for the batch statistics, then "
                            "over rows to normalize."]


def _batchnorm_train_grad(kernel: Kernel, graph: Graph) -> None:
    node = kernel.group.anchor
    kernel.context.epsilon = node.attrs["epsilon"]
    kernel.context.chunks = CHUNKS
    kernel.args = [(v, ROWS if graph.type(v).batched else ASIS) for v in kernel.group.args]
    dx, dgamma, dbeta = node.outputs
    kernel.outputs = [(dx, "dx", ROWS), (dgamma, "dgamma", ASIS), (dbeta, "dbeta", ASIS)]
    kernel.context.loops = ["Parallel over fixed chunks of rows for the channel sums, then over "
                            "rows."]


def _loss(kernel: Kernel, graph: Graph) -> None:
    node = kernel.group.anchor
    ctx = kernel.context
    ctx.kind = node.attrs["kind"]
    z, labels = node.inputs
    sparse = ctx.kind.startswith("sparse")
    kernel.args = [(z, ROWS), (labels, FLAT if sparse else ROWS)]
    loss, correct, dz = node.outputs
    kernel.outputs = [(loss, "loss", ASIS), (correct, "correct", ASIS), (dz, "dz", ROWS)]
    ctx.loops = ["Parallel over rows; the batch sums are taken in row order."]


def update_lines(rule: str, hyper: dict) -> tuple[list[str], list[str], list[str]]:
    """(statements, state slots, per-step scalars) of an optimizer rule, element-wise."""
    from ..ir.ops.training import OPTIMIZERS
    from .exprs import f32, substitute
    slots, statements = OPTIMIZERS[rule]
    scalars = sorted({word for text in statements for word in ("LR", "ALPHA")
                      if word in text})
    names = {"p": "p[i]", "g": "g_i"}
    names.update({slot: f"{slot}[i]" for slot in slots})
    names.update({s: s.lower() for s in scalars})
    constants = [f"{k} = {f32(v)}" for k, v in hyper.items()
                 if isinstance(v, float) and k != "learning_rate" and
                 any(k in text for text in statements)]
    lines = []
    for text in statements:
        target, expr = (part.strip() for part in text.split("=", 1))
        lhs = names.get(target, target)
        lines.append(f"{lhs} = {substitute(expr, names)}")
    return lines, list(slots), scalars, constants


def _update(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    first = group.nodes[0]
    ctx.rule = first.attrs["rule"]
    lines, slots, scalars, constants = update_lines(ctx.rule, dict(first.attrs))
    ctx.lines = lines
    ctx.constants = constants
    if len(group.nodes) == 1:
        kernel.args = [(v, FLAT) for v in first.inputs]
    else:                                    # all updates of a step: flat buffers
        kernel.args = [("@params", ASIS), ("@grads", ASIS)] + \
            [(f"@state:{slot}", ASIS) for slot in slots]
    group.args = dict(zip([v for v, _ in kernel.args], ["p", "g"] + slots))
    kernel.scalars = [(s.lower(), s.lower()) for s in scalars]
    kernel.outputs = []                       # in place
    ctx.loops = ["Parallel over elements." + (" One kernel updates every parameter of the "
                                              "step (the flat parameter buffer)."
                                              if len(group.nodes) > 1 else "")]


BUILDERS = {
    "conv2d": _conv2d,
    "dense": _dense,
    "pool2d": _pool2d,
    "global_pool2d": _global_pool2d,
    "elementwise": _elementwise,
    "softmax": _softmax,
    "conv2d_grad_input": _conv2d_grad_input,
    "conv2d_grad_weight": _conv2d_grad_weight,
    "dense_grad_weight": _dense_grad_weight,
    "reduce_channels": _reduce_channels,
    "pool2d_grad": _pool2d_grad,
    "global_pool2d_grad": _global_pool2d_grad,
    "softmax_grad": _softmax_grad,
    "batchnorm_train": _batchnorm_train,
    "batchnorm_train_grad": _batchnorm_train_grad,
    "loss": _loss,
    "update": _update,
}
