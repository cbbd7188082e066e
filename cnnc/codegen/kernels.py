"""Per-template kernel contexts: what each template needs to render one group.

Every builder returns a :class:`Kernel`: the values it reads (in argument order), how the
host passes each one (as-is, or as a flat/row view), and the template context -- sizes,
strides and padding as literals, and the `pre`/`post` chain renderers that splice the
group's elementwise work into the template's loops.
"""

from __future__ import annotations

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


def _describe(graph: Graph, group: Group) -> list[str]:
    lines = []
    for value, local in group.args.items():
        role = graph.values[value].role
        lines.append(f"{local}: {graph.type(value).__str__().replace('None', 'N')}  "
                     f"{'parameter ' + repr(value) if role in ('param', 'state') else value}")
    lines.append(f"y: {str(graph.type(group.output)).replace('None', 'N')}  {group.output}")
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


def build(group: Group, graph: Graph, name: str) -> Kernel:
    builder = BUILDERS[group.template]
    chain = Chain(group, graph)
    ctx = SimpleNamespace(
        name=name, title=_title(group), parallel=True,
        pre=lambda start, full, channel: chain.render(
            group.pre, group.anchor.output if group.anchor else None, start, full, channel),
        post=lambda start, full, channel: chain.render(
            group.post, group.reducer.output if group.reducer else None, start, full,
            channel))
    kernel = Kernel(name, group.template, group, ctx)
    builder(kernel, graph)
    kernel.args = kernel.args or [(v, ASIS) for v in group.args]
    ctx.params = list(group.args.values()) + ["y"]
    ctx.doc = _describe(graph, group) + [""] + ctx.loops
    return kernel


def _window(ctx, attrs, x_shape, out_shape, kernel_key):
    ctx.h, ctx.w = x_shape[0], x_shape[1]
    ctx.oh, ctx.ow = out_shape[0], out_shape[1]
    ctx.kh, ctx.kw = attrs[kernel_key]
    ctx.sh, ctx.sw = attrs["strides"]
    ctx.dh, ctx.dw = attrs.get("dilation", (1, 1))
    ctx.pt, _, ctx.pl, _ = attrs["pads"]


def _conv2d(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    conv = group.anchor
    _window(ctx, conv.attrs, graph.type(conv.inputs[0]).shape, graph.type(conv.output).shape,
            "kernel")
    ctx.pool = None
    if group.reducer is not None:
        pool = group.reducer
        p = SimpleNamespace(mode=ops.get(pool.op).extra["mode"])
        out = graph.type(pool.output).shape
        p.oh, p.ow = out[0], out[1]
        p.kh, p.kw = pool.attrs["pool"]
        p.sh, p.sw = pool.attrs["strides"]
        p.pt, _, p.pl, _ = pool.attrs["pads"]
        ctx.pool = p
        ctx.loops = [f"Parallel over (n, pooled row); each thread computes the {p.kh} "
                     f"convolution rows under a row of {p.kh}x{p.kw} windows, applies the "
                     f"epilogue and pools them: the {ctx.oh}x{ctx.ow} convolution output is "
                     f"never written.",
                     "Loop order: r, s, ow, input channel, output channel (innermost, "
                     "contiguous in w and acc)."]
    else:
        ctx.loops = ["Parallel over (n, output row); loop order r, s, ow, input channel, "
                     "output channel (innermost, contiguous in w and acc).",
                     "Reads x and w, writes y once."]


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
    _window(ctx, pool.attrs, graph.type(pool.inputs[0]).shape, graph.type(pool.output).shape,
            "pool")
    ctx.mode = ops.get(pool.op).extra["mode"]
    ctx.loops = ["Parallel over (n, output row); windows clipped to the input."]


def _global_pool2d(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    pool = group.anchor
    ctx.h, ctx.w = graph.type(pool.inputs[0]).shape[:2]
    ctx.mode = ops.get(pool.op).extra["mode"]
    ctx.loops = ["Parallel over samples; channels innermost."]


def _elementwise(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    first = group.pre[0]
    channels = graph.type(group.output).shape[-1]
    views = []
    for value in group.args:
        batched = graph.values[value].type.batched
        views.append((value, FLAT if batched else ASIS))
    kernel.args = views
    kernel.out_view = FLAT
    ctx.channels = channels
    ctx.needs_channel = any(
        role in ops.get(n.op).channel_inputs
        for n in group.pre for role, v in zip(ops.get(n.op).inputs, n.inputs) if v in group.args)
    # The chain starts from the first node's main input, read from its argument.
    start_value = first.inputs[0]
    ctx.start = f"{group.args[start_value]}[i]"
    chain = Chain(group, graph)
    ctx.pre = lambda start, full, channel: chain.render(group.pre, start_value, start, full,
                                                        channel)
    ctx.loops = ["Parallel over all elements of the flattened tensor."]


def _softmax(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    kernel.args = [(v, ROWS) for v in group.args]
    kernel.out_view = ROWS
    chain = Chain(group, graph)
    ctx.post = lambda start, full, channel: chain.render(group.pre, group.anchor.output, start,
                                                         full, channel)
    ctx.loops = ["Parallel over rows (all axes but the last)."]


BUILDERS = {
    "conv2d": _conv2d,
    "dense": _dense,
    "pool2d": _pool2d,
    "global_pool2d": _global_pool2d,
    "elementwise": _elementwise,
    "softmax": _softmax,
}
