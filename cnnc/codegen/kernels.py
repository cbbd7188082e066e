"""Per-template kernel contexts: what each template needs to render one group.

`build` returns a :class:`Kernel`: the values it reads (in argument order), how the host
passes each one (as-is, or as a flat/row view), and the template context -- window
geometry as literals, the names of its main input and output, and the `pre`/`post`
chain renderers that splice the group's elementwise work into the template's loops.
All of that is the same on every target; the target then adds its own part (the loop
schedule of a CPU kernel, the tiles and launch geometry of a CUDA one, the comments
describing them): `Target.extend`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from types import SimpleNamespace

from ..ir import ops
from ..ir.graph import Graph
from ..ir.ops.pool import CODE_POSITIVE
from .exprs import f32, substitute
from .groups import Chain, Group

FLAT, ROWS, ASIS = "flat", "rows", "as-is"
TITLE_WIDTH = 92                 # a kernel docstring's first line (it is indented 4)


@dataclass
class Kernel:
    name: str
    template: str
    group: Group
    context: SimpleNamespace
    args: list[tuple[str, str]] = field(default_factory=list)   # (value, view)
    out_view: str = ASIS
    # (value, local name, view) of each output; default: the group's output
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
        parts.append(node.op + (f" {op.window.describe(node.attrs)}" if op.window else ""))
    layers = list(dict.fromkeys(n.layer for n in group.nodes))
    named = f"(layer{'s' if len(layers) > 1 else ''} " + ", ".join(layers) + ")"
    ops_text = " + ".join(parts)
    if len(ops_text) + 1 + len(named) > TITLE_WIDTH:
        # the ops shortened first, so that the layers keep their place in the line
        ops_text = textwrap.shorten(ops_text, max(TITLE_WIDTH // 2, TITLE_WIDTH - 1 -
                                                  len(named)), placeholder=" ...")
    return textwrap.shorten(f"{ops_text} {named}", TITLE_WIDTH, placeholder="...)")


def build(group: Group, graph: Graph, name: str, target) -> Kernel:
    chain = Chain(group, graph)
    anchor = group.anchor
    ctx = SimpleNamespace(
        name=name, title=_title(group), loops=[], code_positive=CODE_POSITIVE,
        x=group.args.get(anchor.inputs[0]) if anchor is not None else None,
        y=group.out_name,
        pre=lambda start, full, channel, index=None: chain.render(
            group.pre, anchor.outputs[0] if anchor else None, start, full, channel, index),
        post=lambda start, full, channel, index=None: chain.render(
            group.post, group.reducer.outputs[0] if group.reducer else None, start, full,
            channel, index))
    ctx.needs_index = any("IDX" in (ops.get(n.op).expr or "") for n in group.nodes)
    ctx.pre_needs_index = any("IDX" in (ops.get(n.op).expr or "") for n in group.pre)
    kernel = Kernel(name, group.template, group, ctx)
    BUILDERS[group.template](kernel, graph)
    target.extend(kernel, graph)
    kernel.args = kernel.args or [(v, ASIS) for v in group.args]
    if kernel.outputs is None:
        kernel.outputs = [(group.output, group.out_name, kernel.out_view)]
    ctx.params = list(group.args.values()) + [local for local, _ in kernel.scalars] + \
        [local for _, local, _ in kernel.outputs]
    first = group.nodes[0].inputs[0]
    ctx.shapes = (f"{str(graph.type(first)).replace('None', 'N')} -> "
                  f"{str(graph.type(group.output)).replace('None', 'N')}"
                  if group.output else "")
    ctx.doc = _describe(graph, kernel) + [""] + [
        line for text in ctx.loops for line in textwrap.wrap(text, 88)]
    return kernel


def _window(ctx, node):
    """Window geometry as literals: taps, strides, dilation, padding (sizes stay runtime)."""
    window = ops.get(node.op).window
    (ctx.kh, ctx.kw), (ctx.sh, ctx.sw), (ctx.dh, ctx.dw) = window.geometry(node.attrs)
    ctx.pt, ctx.pb, ctx.pl, ctx.pr = node.attrs["pads"]
    ctx.ekh, ctx.ekw = window.extent(node.attrs)
    ctx.padded = any(node.attrs["pads"])


def _rows(kernel: Kernel, graph: Graph, out: bool = False) -> None:
    """Batched arguments (and the output, with `out`) as (rows, last axis) views."""
    kernel.args = [(v, ROWS if graph.type(v).batched else ASIS) for v in kernel.group.args]
    if out:
        kernel.out_view = ROWS


def _conv2d(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    _window(ctx, group.anchor)
    ctx.packed = "kernel_layout" in group.anchor.attrs
    ctx.pool = None
    if group.reducer is not None:
        pool = group.reducer
        p = SimpleNamespace(mode=ops.get(pool.op).template_args["mode"])
        (p.kh, p.kw), (p.sh, p.sw), _ = ops.get(pool.op).window.geometry(pool.attrs)
        p.pt, _, p.pl, _ = pool.attrs["pads"]
        p.exact = not any(pool.attrs["pads"])     # every window inside the conv output
        p.code = _code_output(kernel, pool)
        ctx.pool = p


def _code_output(kernel: Kernel, pool) -> bool:
    """Whether `pool` writes the codes of its maxima (maxpool2d_code, ir/ops/pool.py):
    then they are the kernel's second output, `code`."""
    if not ops.get(pool.op).template_args.get("code"):
        return False
    kernel.outputs = [(kernel.group.output, kernel.group.out_name, ASIS),
                      (pool.outputs[1], "code", ASIS)]
    return True


def _dense(kernel: Kernel, graph: Graph) -> None:
    kernel.context.row = kernel.group.reducer is not None
    _rows(kernel, graph, out=True)


def _pool2d(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    anchor = kernel.group.anchor
    _window(ctx, anchor)
    ctx.mode = ops.get(anchor.op).template_args["mode"]
    ctx.code = _code_output(kernel, anchor)


def _global_pool2d(kernel: Kernel, graph: Graph) -> None:
    kernel.context.mode = ops.get(kernel.group.anchor.op).template_args["mode"]


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


def _softmax(kernel: Kernel, graph: Graph) -> None:
    group, ctx = kernel.group, kernel.context
    _rows(kernel, graph, out=True)
    chain = Chain(group, graph)
    ctx.post = lambda start, full, channel, index=None: chain.render(
        group.pre, group.anchor.output, start, full, channel, index)


def _conv2d_grad(kernel: Kernel, graph: Graph) -> None:
    _window(kernel.context, kernel.group.anchor)


def _grad_weight(kernel: Kernel, graph: Graph) -> None:
    """A weight gradient, and the bias gradient when it joined (the `siblings` rule): then
    the kernel's second output, `db`, the channel sums of dy."""
    group, ctx = kernel.group, kernel.context
    sums = group.nodes[1:]
    ctx.db = "db" if sums else None
    if sums:
        kernel.outputs = [(group.output, group.out_name, ASIS), (sums[0].output, "db", ASIS)]


def _pool2d_grad(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    node = kernel.group.anchor
    _window(ctx, node)
    ctx.mode = ops.get(node.op).template_args["mode"]
    ctx.gather = ops.get(node.op).window.tiles(node.attrs)   # each dx position written once
    # maxpool2d_grad_code: the maxima from their codes, a relu gradient maybe folded in
    ctx.code = bool(ops.get(node.op).template_args.get("code"))
    ctx.relu = bool(node.attrs.get("relu", False))
    # rows of dx below the last row of windows (heights are static; a loop over none
    # would still be a parallel loop for Numba to compile)
    h, out_h = graph.type(node.output).shape[0], graph.type(node.inputs[0]).shape[0]
    ctx.tail_rows = h - min(h, out_h * ctx.sh)


def _global_pool2d_grad(kernel: Kernel, graph: Graph) -> None:
    kernel.context.mode = ops.get(kernel.group.anchor.op).template_args["mode"]
    kernel.args = [(v, ROWS if i == 0 else ASIS) for i, v in enumerate(kernel.group.args)]


def _batchnorm_train(kernel: Kernel, graph: Graph) -> None:
    node = kernel.group.anchor
    kernel.context.epsilon = node.attrs["epsilon"]
    _rows(kernel, graph)
    y, mean, var = node.outputs
    kernel.outputs = [(y, "y", ROWS), (mean, "mean", ASIS), (var, "var", ASIS)]


def _batchnorm_train_grad(kernel: Kernel, graph: Graph) -> None:
    node = kernel.group.anchor
    kernel.context.epsilon = node.attrs["epsilon"]
    _rows(kernel, graph)
    dx, dgamma, dbeta = node.outputs
    kernel.outputs = [(dx, "dx", ROWS), (dgamma, "dgamma", ASIS), (dbeta, "dbeta", ASIS)]


def _loss(kernel: Kernel, graph: Graph) -> None:
    node = kernel.group.anchor
    ctx = kernel.context
    ctx.kind = node.attrs["kind"]
    z, labels = node.inputs
    sparse = ctx.kind.startswith("sparse")
    kernel.args = [(z, ROWS), (labels, FLAT if sparse else ROWS)]
    loss, correct, dz = node.outputs
    kernel.outputs = [(loss, "loss", ASIS), (correct, "correct", ASIS), (dz, "dz", ROWS)]


def update_lines(rule: str, hyper: dict) -> tuple[list[str], list[str], list[str], list[str]]:
    """(statements, state slots, per-step scalars, constants) of an optimizer rule,
    element by element."""
    from ..ir.ops.training import UPDATE_RULES
    slots, statements = UPDATE_RULES[rule]
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
    ctx.all = len(group.nodes) > 1
    if not ctx.all:
        kernel.args = [(v, FLAT) for v in first.inputs]
    else:                                    # all updates of a step: flat buffers
        kernel.args = [("@params", ASIS), ("@grads", ASIS)] + \
            [(f"@state:{slot}", ASIS) for slot in slots]
    group.args = dict(zip([v for v, _ in kernel.args], ["p", "g"] + slots))
    kernel.scalars = [(s.lower(), s.lower()) for s in scalars]
    kernel.outputs = []                       # in place


BUILDERS = {
    "conv2d": _conv2d,
    "dense": _dense,
    "pool2d": _pool2d,
    "global_pool2d": _global_pool2d,
    "elementwise": _elementwise,
    "softmax": _softmax,
    "conv2d_grad_input": _conv2d_grad,
    "conv2d_grad_weight": lambda kernel, graph: (_conv2d_grad(kernel, graph),
                                                 _grad_weight(kernel, graph)),
    "dense_grad_weight": lambda kernel, graph: (_rows(kernel, graph),
                                                _grad_weight(kernel, graph)),
    "reduce_channels": lambda kernel, graph: _rows(kernel, graph),
    "pool2d_grad": _pool2d_grad,
    "global_pool2d_grad": _global_pool2d_grad,
    "softmax_grad": lambda kernel, graph: _rows(kernel, graph, out=True),
    "batchnorm_train": _batchnorm_train,
    "batchnorm_train_grad": _batchnorm_train_grad,
    "loss": _loss,
    "update": _update,
}
