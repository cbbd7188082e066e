"""The IR as a Graphviz graph (the `graphviz` package writes and renders the DOT text).

Nodes are IR nodes labelled with their op, layer and output shape; parameters appear in
the label of the node that reads them. With `groups`, each kernel group becomes a
cluster, which is how `cnnc graph --fused` shows what fused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import CnncError, CnncRuntimeError, Diagnostic
from ..ir import ops
from ..ir.graph import ACTIVATION, Graph, Value
from ..util import atomic_write_bytes, atomic_write_text

COLORS = {"complex": "#cfe2ff", "reduction": "#d1e7dd", "elementwise": "#fff3cd",
          "broadcast": "#ffe5d0", "injective": "#e2e3e5", "opaque": "#f8d7da"}


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise CnncRuntimeError("cnnc graph needs the 'graphviz' Python package: "
                               "pip install 'cnnc[graph]'") from None
    return graphviz


def to_dot(graph: Graph, title: str, groups: list[tuple[str, list]] | None = None):
    """A graphviz.Digraph of `graph`; `groups` is [(label, [node, ...]), ...]."""

    gv = _graphviz()
    dot = gv.Digraph(name=title, graph_attr={"rankdir": "TB", "label": title, "labelloc": "t",
                                             "fontname": "Helvetica"},
                     node_attr={"shape": "box", "style": "rounded,filled",
                                "fontname": "Helvetica", "fontsize": "10"})
    ids = {}

    def node_id(name: str) -> str:
        return ids.setdefault(name, f"n{len(ids)}")

    for value in graph.inputs:
        dot.node(node_id(value), f"{value}\n{graph.type(value)}", shape="oval",
                 fillcolor="#ffffff")

    def add_node(target, node):
        params = [i for i in node.inputs if graph.values[i].role != ACTIVATION
                  and i not in graph.inputs]
        label = f"{node.op}\n{node.name}\n{graph.type(node.outputs[0])}"
        if params:
            label += "\n" + "\n".join(f"{p.split('/')[-1]} {graph.type(p)}" for p in params)
        category = ops.get(node.op).category if node.op in ops.OPS else "opaque"
        target.node(node_id(node.name), label, fillcolor=COLORS.get(category, "#ffffff"))

    grouped = set()
    for i, (label, members) in enumerate(groups or []):
        with dot.subgraph(name=f"cluster_{i}") as sub:
            sub.attr(label=label, style="dashed", color="#555555", fontname="Helvetica")
            for node in members:
                add_node(sub, node)
                grouped.add(node.name)
    for node in graph.nodes:
        if node.name not in grouped:
            add_node(dot, node)

    producer_of = {}
    for node in graph.nodes:
        for out in node.outputs:
            producer_of[out] = node.name
    for node in graph.nodes:
        for value in node.inputs:
            src = producer_of.get(value, value if value in graph.inputs else None)
            if src is not None:
                dot.edge(node_id(src), node_id(node.name))
    return dot


def write(dot, out: Path | None, fmt: str) -> str | None:
    """Write DOT text (returned when out is None) or render svg/png with Graphviz's dot."""
    if fmt == "dot":
        if out is None:
            return dot.source
        atomic_write_text(out, dot.source)
        return None
    if shutil.which("dot") is None:
        raise CnncRuntimeError(f"rendering {fmt} needs Graphviz's 'dot' program, which is not "
                               f"installed (e.g. apt-get install graphviz); "
                               f"--format dot writes the graph as text")
    if out is None:
        raise CnncError(Diagnostic(f"--format {fmt} needs an output file: -o graph.{fmt}"))
    data = dot.pipe(format=fmt)
    atomic_write_bytes(out, data)
    return None


def to_dot_fused(graph: Graph, title: str):
    """The graph after the passes, each kernel group drawn as a cluster of its IR nodes."""
    members, groups = [], []
    values = dict(graph.values)
    for node in graph.nodes:
        if not graph.type(node.outputs[0]).batched:
            continue                              # parameter preparation, not per batch
        body = node.body or (node,)
        for m in body:
            for out in m.outputs:
                values.setdefault(out, graph.values.get(out) or
                                  _value_like(graph, node.output, out))
        members.extend(body)
        if not (ops.get(node.op).view and not node.body):
            label = f"kernel {len(groups) + 1}" + (f" [{node.rule}]" if node.rule else "")
            groups.append((label, list(body)))
    flat = graph.replace(values=values, nodes=tuple(members))
    return to_dot(flat, f"{title} (fused)", groups)


def _value_like(graph, known, name):
    return Value(name, graph.type(known))
