"""Assembling the standalone module: kernels, buffers, forward, parameters, main.

The module imports only numpy and numba. Its host code runs the kernel groups in graph
order over buffers allocated once per batch size; intermediate buffers share memory when
their lifetimes do not overlap (a greedy linear scan over the kernel sequence).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from .. import __version__
from ..ir import ops
from ..ir.graph import PARAMETER_ROLES, Graph
from .exprs import f32, substitute
from ..program import Model
from . import kernels as K
from .groups import analyze
from .naming import Namer, constant, ident, safe_comment
from .render import render_code


@dataclass
class Options:
    target: str = "cpu"
    fuse: str = "all"            # a description for the header
    source_name: str = ""


@dataclass
class Slot:
    name: str
    size: int                    # elements per sample


def plan(graph: Graph):
    """Kernels in order, and for each value: its buffer expression in host code."""
    kernels: list[K.Kernel] = []
    steps: list = []                # ("kernel", Kernel) | ("view", node)
    for node in graph.nodes:
        op = ops.get(node.op)
        if not graph.type(node.outputs[0]).batched:
            steps.append(("prepare", node))
            continue
        if op.view and not node.body:
            steps.append(("view", node))
            continue
        group = analyze(node, graph)
        kernel = K.build(group, graph, "__kernel__")
        kernels.append(kernel)
        steps.append(("kernel", kernel))
    return kernels, steps


def _buffers(graph: Graph, steps):
    """Assign slots to the values kernels write; views share their base's slot."""
    output = graph.outputs[0]
    base: dict[str, str] = {}                # view value -> value that owns the storage
    last_use: dict[str, int] = {}
    steps = [step for step in steps if step[0] != "prepare"]
    for i, (kind, item) in enumerate(steps):
        node = item if kind == "view" else item.group.node
        for value in node.inputs:
            root = base.get(value, value)
            last_use[root] = i
        if kind == "view":
            base[node.output] = base.get(node.inputs[0], node.inputs[0])
    slots: list[Slot] = []
    free: list[Slot] = []
    slot_of: dict[str, Slot] = {}
    namer = Namer()
    for i, (kind, item) in enumerate(steps):
        if kind == "kernel":
            value = item.group.output
            if value != output and base.get(value, value) == value and \
                    graph.values[value].type.batched:
                size = graph.type(value).numel
                free.sort(key=lambda s: (s.size < size, abs(s.size - size)))
                slot = free.pop(0) if free else None
                if slot is None:
                    slot = Slot(namer("slot"), size)
                    slots.append(slot)
                slot.size = max(slot.size, size)
                slot_of[value] = slot
        # Release storage whose last reader was this step.
        for value, last in last_use.items():
            if last == i and value in slot_of and slot_of[value] not in free:
                if not any(slot_of.get(v) is slot_of[value] and last_use.get(v, -1) > i
                           for v in slot_of):
                    free.append(slot_of[value])
    return slots, slot_of, base


def generate(model: Model, graph: Graph, options: Options) -> str:
    kernels, steps = plan(graph)
    sources = dedupe(kernels)
    slots, slot_of, base = _buffers(graph, steps)
    prepare = [line for kind, node in steps if kind == "prepare"
               for line in _prepare_lines(graph, node)]
    output = graph.outputs[0]
    names = Namer({"x", "n", "params", "ws", "np", "math", "forward", "y"}
                  | {k.name for k in kernels})
    var = {graph.inputs[0]: "x", output: "y"}
    for value in slot_of:
        var[value] = names(value)

    def full_shape(value):
        return "(n, " + ", ".join(str(d) for d in graph.type(value).shape) + ")"

    unpack = textwrap.wrap(", ".join(var[v] for v in slot_of) +
                           ("," if len(slot_of) == 1 else ""), 88)
    workspace = []
    for value, slot in slot_of.items():
        workspace.append((var[value], slot.name, graph.type(value).numel, full_shape(value),
                          value))
    body: list[str] = []
    for kind, item in steps:
        if kind == "prepare":
            continue
        if kind == "view":
            node = item
            src = var[node.inputs[0]]
            if node.output == output:
                body.append(f"y = {src}.reshape({full_shape(node.output)}).copy()"
                            f"  # {node.op} {node.name}")
                continue
            var[node.output] = names(node.output)
            shape = graph.type(node.output).shape
            if graph.type(node.inputs[0]).shape == shape:
                body.append(f"{var[node.output]} = {src}  # {node.op} {node.name}: identity")
            else:
                body.append(f"{var[node.output]} = {src}.reshape({full_shape(node.output)})"
                            f"  # {node.op} {node.name}: a view")
            continue
        kernel = item
        args = []
        for value, view in kernel.args:
            args.append(_view(_arg_expr(graph, value, var), graph, value, view))
        if kernel.group.output == output:
            body.append(f"y = np.empty({full_shape(output)}, dtype=np.float32)")
        args.append(_view(var[kernel.group.output], graph, kernel.group.output,
                          kernel.out_view))
        layers = ", ".join(dict.fromkeys(n.layer for n in kernel.group.nodes))
        body.append(f"# {layers}")
        body.append(call(kernel.name, args))
    header_kernels = [(k.name, " + ".join(n.op for n in k.group.nodes
                                         if not ops.get(n.op).view),
                       k.group.node.rule or "", ", ".join(dict.fromkeys(
                           n.layer for n in k.group.nodes))) for k in kernels]
    params = [(p.name, p.shape, p.init, p.trainable) for p in graph.params]
    return render_code(
        "cpu/module.py.j2", version=__version__, model=model, options=options,
        source_lines=[safe_comment(line) for line in model.source.splitlines()],
        source_name=safe_comment(options.source_name), header_kernels=header_kernels,
        kernels=sources, params=params, slots=slots, workspace=workspace, body=body,
        prepare=prepare, unpack=unpack,
        input_shape=tuple(model.input_type.shape), output_shape=tuple(graph.type(output).shape),
        const=constant, repr=repr)


def _arg_expr(graph: Graph, value: str, var: dict) -> str:
    if graph.values[value].role in PARAMETER_ROLES:
        return f"params[{value!r}]"
    return var[value]


def _prepare_lines(graph: Graph, node) -> list[str]:
    """A derived parameter as a numpy expression over whole arrays."""
    op = ops.get(node.op)
    lines = [f"# {node.op}: {op.doc}"]
    lines += [f"{role} = p[{value!r}]" for role, value in zip(op.inputs, node.inputs)]
    names = {k: f32(v) for k, v in node.attrs.items() if isinstance(v, float)}
    expr = substitute(op.expr, names)
    if len(expr) + len(node.output) > 80:
        lines += [f"value = {expr}", f"p[{node.output!r}] = value"]
    else:
        lines.append(f"p[{node.output!r}] = {expr}")
    return lines


def call(function: str, args: list[str], width: int = 95) -> str:
    """`function(args)` on one line, or one argument a line when that is too long."""
    line = f"{function}({', '.join(args)})"
    if len(line) <= width:
        return line
    return f"{function}(\n" + "".join(f"    {a},\n" for a in args) + ")"


def _view(expr: str, graph: Graph, value: str, view: str) -> str:
    if view == K.FLAT:
        return f"{expr}.reshape(-1)"
    if view == K.ROWS:
        return f"{expr}.reshape(-1, {graph.type(value).shape[-1]})"
    return expr


def K_render(kernel: K.Kernel) -> str:
    return render_code(f"cpu/{kernel.template}.j2", k=kernel.context).rstrip() + "\n"


_DOCSTRING = re.compile(r'"""(.*?)"""', re.DOTALL)


def dedupe(kernels: list[K.Kernel]) -> list[str]:
    """Render the kernels; groups whose code is the same share one function.

    Kernels read sizes from their arrays, so layers with the same ops and window geometry
    (e.g. every 3x3/1 `same` conv2d + bias + relu) compile once. Functions are named after
    the ops they contain; the docstring lists every layer a shared kernel computes.
    """
    unique: dict[str, list[K.Kernel]] = {}
    for kernel in kernels:
        body = _DOCSTRING.sub("", K_render(kernel), count=1)
        unique.setdefault(body, []).append(kernel)
    namer = Namer({"forward", "forward_prepared", "prepare", "init_params", "np", "math"})
    sources = []
    for users in unique.values():
        first = users[0]
        name = namer("_".join(first.group.op_tags()) + "_fwd")
        for kernel in users:
            kernel.name = name
            kernel.context.name = name
        if len(users) > 1:
            first.context.doc = first.context.doc + [""] + textwrap.wrap(
                "Shared by the kernel groups of layers " + "; ".join(
                    ", ".join(dict.fromkeys(n.layer for n in k.group.nodes)) +
                    f" ({_shapes(k)})" for k in users) + ".", 88)
        sources.append(K_render(first))
    return sources


def _shapes(kernel: K.Kernel) -> str:
    graph_types = kernel.context.shapes
    return graph_types
