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
    first = group.nodes[0].inputs[0]
    ctx.shapes = (f"{str(graph.type(first)).replace('None', 'N')} -> "
                  f"{str(graph.type(group.output)).replace('None', 'N')}")
    ctx.doc = _describe(graph, group) + [""] + [
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


def _conv2d(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    conv = group.anchor
    _window(ctx, conv.attrs, "kernel")
    if conv.attrs.get("kernel_layout") == "ohwi":
        ctx.schedule = "rowdot"
        ctx.value = "acc[ow, co]"
        how = ("Each thread gathers an output row's patches (out_w, kh*kw*cin) and multiplies "
               "them with the packed kernel in blocks of 2 columns x 4 channels (8 sums in "
               "registers, the tap loop vectorized).")
    else:
        ctx.schedule = "cols"
        ctx.value = "acc[co, ow]"
        terms = [f"w{r}_{s} * rows[{r}, {_affine('ow', ctx.sw, s * ctx.dw)}]"
                 for r in range(ctx.kh) for s in range(ctx.kw)]
        ctx.col_sum = "v = (\n    " + "\n    + ".join(terms) + "\n)"
        how = ("One input channel: each thread zero-pads the input rows under an output row "
               "and sums the shifted rows per output channel, vectorized over output columns.")
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
    ctx.loops = ["Parallel over (n, output row); windows clipped to the input."]


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
    ctx.pre = lambda full, channel: chain.render(group.pre, None, None, full, channel)
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
