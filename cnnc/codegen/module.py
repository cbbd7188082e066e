"""Assembling the standalone module: kernels, buffers, forward, parameters, main.

The module imports only numpy and numba. Its host code runs the kernel groups in graph
order over buffers allocated once per batch size; intermediate buffers share memory when
their lifetimes do not overlap (a greedy linear scan over the kernel sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import __version__
from ..ir import ops
from ..ir.graph import Graph
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


def _kernel_name(group, taken: Namer) -> str:
    layer = group.nodes[0].layer
    return taken(f"{ident(layer)}__{'_'.join(group.op_tags())}_fwd")


def plan(graph: Graph):
    """Kernels in order, and for each value: its buffer expression in host code."""
    namer = Namer({"x", "n", "params", "ws", "y", "np", "math"})
    kernels: list[K.Kernel] = []
    steps: list = []                # ("kernel", Kernel) | ("view", node)
    for node in graph.nodes:
        op = ops.get(node.op)
        if op.view and not node.body:
            steps.append(("view", node))
            continue
        group = analyze(node, graph)
        kernel = K.build(group, graph, _kernel_name(group, namer))
        kernels.append(kernel)
        steps.append(("kernel", kernel))
    return kernels, steps


def _buffers(graph: Graph, steps):
    """Assign slots to the values kernels write; views share their base's slot."""
    output = graph.outputs[0]
    base: dict[str, str] = {}                # view value -> value that owns the storage
    last_use: dict[str, int] = {}
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
    sources = [K_render(k) for k in kernels]
    slots, slot_of, base = _buffers(graph, steps)
    output = graph.outputs[0]
    names = Namer({"x", "n", "params", "ws", "np", "math", "forward", "y"}
                  | {k.name for k in kernels})
    var = {graph.inputs[0]: "x", output: "y"}
    for value in slot_of:
        var[value] = names(value)

    def full_shape(value):
        return "(n, " + ", ".join(str(d) for d in graph.type(value).shape) + ")"

    workspace = []
    for value, slot in slot_of.items():
        workspace.append((var[value], slot.name, graph.type(value).numel, full_shape(value),
                          value))
    body: list[str] = []
    for kind, item in steps:
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
        body.append(f"{kernel.name}({', '.join(args)})")
    header_kernels = [(k.name, " + ".join(n.op for n in k.group.nodes
                                         if not ops.get(n.op).view),
                       k.group.node.rule or "") for k in kernels]
    params = [(p.name, p.shape, p.init, p.trainable) for p in graph.params]
    return render_code(
        "cpu/module.py.j2", version=__version__, model=model, options=options,
        source_lines=[safe_comment(line) for line in model.source.splitlines()],
        source_name=safe_comment(options.source_name), header_kernels=header_kernels,
        kernels=sources, params=params, slots=slots, workspace=workspace, body=body,
        input_shape=tuple(model.input_type.shape), output_shape=tuple(graph.type(output).shape),
        const=constant, repr=repr)


def _arg_expr(graph: Graph, value: str, var: dict) -> str:
    if graph.values[value].role in ("param", "state"):
        return f"params[{value!r}]"
    return var[value]


def _view(expr: str, graph: Graph, value: str, view: str) -> str:
    if view == K.FLAT:
        return f"{expr}.reshape(-1)"
    if view == K.ROWS:
        return f"{expr}.reshape(-1, {graph.type(value).shape[-1]})"
    return expr


def K_render(kernel: K.Kernel) -> str:
    return render_code(f"cpu/{kernel.template}.j2", k=kernel.context).rstrip() + "\n"
