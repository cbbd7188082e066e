"""Host functions: the Python code that runs a graph's kernels over planned buffers.

A graph becomes a sequence of steps -- kernels, views (reshapes without copies) and
parameter preparation (numpy over whole parameter arrays) -- and a host function that
runs them. Buffers:

* values bound by the caller (inputs, parameters, gradients, optimizer state, in-place
  updates) use the caller's expressions;
* other batched values live in workspace slots allocated once per batch size; values whose
  lifetimes do not overlap share a slot (a greedy linear scan over the steps);
* other unbatched values (batch statistics, loss sums) get small fixed buffers.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from ..ir import ops
from ..ir.graph import INPUT, LABEL, Graph
from . import kernels as K
from .groups import analyze
from .instrument import START
from .naming import Namer


@dataclass
class Slot:
    name: str
    size: int                     # elements (per sample when batched)
    batched: bool = True
    dtype: str = "float32"        # the values' (float32 but for the codes of pool maxima)


@dataclass
class Step:
    kind: str                     # "kernel" | "view" | "prepare"
    node: object
    kernel: K.Kernel | None = None


@dataclass
class HostFunction:
    name: str
    workspace: str                # name of its workspace function ("" when it has none)
    lines: list[str]
    allocations: list[tuple[str, str]] = field(default_factory=list)   # (slot, expression)
    views: list[tuple] = field(default_factory=list)   # (var, slot, numel, shape, value)
    unpack: list[str] = field(default_factory=list)


def is_prepare(node) -> bool:
    op = ops.get(node.op)
    return not node.body and op.template is None and op.expr is not None


def steps_of(graph: Graph, target) -> list[Step]:
    steps = []
    for node in graph.nodes:
        op = ops.get(node.op)
        if is_prepare(node):
            steps.append(Step("prepare", node))
        elif op.view and not node.body:
            steps.append(Step("view", node))
        else:
            group = analyze(node, graph)
            steps.append(Step("kernel", node, K.build(group, graph, "__kernel__", target)))
    return steps


def _outputs(step: Step) -> list[str]:
    if step.kind == "kernel":
        return [v for v, _, _ in step.kernel.outputs]
    return list(step.node.outputs)


def _inputs(step: Step) -> list[str]:
    if step.kind == "kernel":
        return [v for v, _ in step.kernel.args]
    return list(step.node.inputs)


def call(function: str, args: list[str], width: int = 95) -> str:
    """`function(args)` on one line, or one argument a line when that is too long."""
    line = f"{function}({', '.join(args)})"
    if len(line) <= width:
        return line
    return f"{function}(\n" + "".join(f"    {a},\n" for a in args) + ")"


def view(expr: str, graph: Graph, value: str, how: str, target, remembered: bool) -> str:
    """`expr` as the kernel reads it: as is, flat, or as rows of the last axis
    (`remembered`: the same array every call, see Target.view)."""
    if how == K.FLAT:
        shape = "-1"
    elif how == K.ROWS:
        shape = f"-1, {graph.type(value).shape[-1]}"
    else:
        return expr
    return target.view(expr, shape, remembered)


def full_shape(graph: Graph, value: str) -> str:
    t = graph.type(value)
    dims = (["n"] if t.batched else []) + [str(d) for d in t.shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def plan_host(graph: Graph, steps: list[Step], name: str, bindings: dict[str, str], target,
              fresh: set[str] = frozenset(), taken=(), keep=(),
              instrument=None) -> HostFunction:
    """The body of a host function running `steps`; `bindings` maps values to host
    expressions (inputs, parameters, ...), `fresh` values get a new array per call (the
    target's: Target.alloc), `keep` values stay valid until the function returns.
    `instrument` (an instrument.Instrument; profiled modules only) wraps each kernel call
    in timing hooks."""
    if instrument is not None:
        taken = set(taken) | {START}
    names = Namer(set(taken) | {"n", "np", "math"} | set(bindings.values()))
    var: dict[str, str] = dict(bindings)
    # --- liveness and slot assignment ----------------------------------------------------
    base: dict[str, str] = {}
    last_use: dict[str, int] = {}
    run = [s for s in steps if s.kind != "prepare"]
    for i, step in enumerate(run):
        for value in _inputs(step):
            last_use[base.get(value, value)] = i
        if step.kind == "view":
            base[step.node.output] = base.get(step.node.inputs[0], step.node.inputs[0])
    for value in tuple(graph.outputs) + tuple(keep):
        last_use[base.get(value, value)] = len(run)
    slots: list[Slot] = []
    free: list[Slot] = []
    slot_of: dict[str, Slot] = {}
    slot_names = Namer()
    dying: dict[int, list[str]] = {}          # step -> values last read there
    for value, last in last_use.items():
        dying.setdefault(last, []).append(value)
    holds_until: dict[int, int] = {}          # id(slot) -> last step a value in it is read
    for i, step in enumerate(run):
        if step.kind == "kernel":
            for value in _outputs(step):
                if value in bindings or value in fresh:
                    continue
                t = graph.type(value)
                pool = [s for s in free if s.batched == t.batched and s.dtype == t.dtype]
                pool.sort(key=lambda s: (s.size < t.numel, abs(s.size - t.numel)))
                slot = pool[0] if pool else Slot(slot_names("slot"), t.numel, t.batched,
                                                  t.dtype)
                if pool:
                    free.remove(slot)
                else:
                    slots.append(slot)
                slot.size = max(slot.size, t.numel)
                slot_of[value] = slot
                holds_until[id(slot)] = max(holds_until.get(id(slot), -1),
                                            last_use.get(value, -1))
        for value in dying.get(i, ()):
            slot = slot_of.get(value)
            if slot is not None and all(s is not slot for s in free) and \
                    holds_until[id(slot)] <= i:
                free.append(slot)
    views = []
    for value, slot in slot_of.items():
        var[value] = names(value)
        t = graph.type(value)
        size = f"n * {t.numel}" if t.batched else str(t.numel)
        views.append((var[value], slot.name, size, full_shape(graph, value), value))
    # --- the body --------------------------------------------------------------------------
    # Views of per-call arrays (the caller's batch and labels, a fresh output, views of
    # them) are made on each call; views of workspace slots and parameters are of the same
    # arrays every call, which a target may remember.
    per_call = {v for v, value in graph.values.items() if value.role in (INPUT, LABEL)}
    per_call |= set(fresh)

    lines: list[str] = []
    for step in steps:
        node = step.node
        if step.kind == "prepare":
            continue
        if step.kind == "view":
            src = var[node.inputs[0]]
            out = node.output
            var[out] = names(out)
            if node.inputs[0] in per_call:
                per_call.add(out)
            note = "identity" if graph.type(node.inputs[0]).shape == graph.type(out).shape \
                else "a view"
            shape = full_shape(graph, out)
            expr = src if note == "identity" else \
                target.view(src, shape, out not in per_call)
            line = f"{var[out]} = {expr}  # {node.op} {node.name}: {note}"
            if len(line) > 95:
                lines.append(f"# {node.op} {node.name}: {note}")
                line = f"{var[out]} = {expr}"
            lines.append(line)
            continue
        kernel = step.kernel
        args = [view(var[v], graph, v, how, target, v not in per_call)
                for v, how in kernel.args]
        args += [var[key] for _, key in kernel.scalars]
        for value, _, how in kernel.outputs:
            if value in fresh:
                var[value] = names(value)
                lines.append(f"{var[value]} = "
                             f"{target.alloc(full_shape(graph, value), graph.type(value).dtype)}")
            args.append(view(var[value], graph, value, how, target, value not in per_call))
        layers = ", ".join(dict.fromkeys(m.layer for m in kernel.group.nodes))
        lines.append("# " + textwrap.shorten(layers, 88, placeholder=", ..."))
        if instrument is None:
            lines.append(call(kernel.name, args))
        else:
            lines += instrument.wrap(name, kernel, [call(kernel.name, args)])
    unpack = textwrap.wrap(", ".join(v[0] for v in views) + ("," if len(views) == 1 else ""),
                           80)
    workspace = f"_workspace_{name}" if views else ""
    if views:
        if len(unpack) == 1 and len(unpack[0]) + len(workspace) < 88:
            head = [f"{unpack[0]} = {workspace}(n)"]
        else:
            head = ["("] + [f"    {line}" for line in unpack] + [f") = {workspace}(n)"]
        lines = head + lines
    allocations = [(slot.name, target.alloc_slot(f"n * {slot.size}" if slot.batched
                                                 else str(slot.size), slot.dtype))
                   for slot in slots]
    host = HostFunction(name, workspace, lines, allocations, views, unpack)
    host.var = var
    return host
