"""Small helpers passes use to build a new graph from an old one."""

from __future__ import annotations

from ..ir.graph import Graph, Node, Value


def bypass(graph: Graph, dropped: set[str]) -> Graph:
    """Remove single-input nodes named in `dropped`, rewiring readers to their input."""
    alias: dict[str, str] = {}
    for node in graph.nodes:
        if node.name in dropped:
            source = node.inputs[0]
            alias[node.output] = alias.get(source, source)

    def resolve(value: str) -> str:
        return alias.get(value, value)

    nodes = tuple(node.with_(inputs=tuple(resolve(v) for v in node.inputs))
                  for node in graph.nodes if node.name not in dropped)
    values = {name: v for name, v in graph.values.items() if name not in alias}
    return graph.replace(values=values, nodes=nodes,
                         outputs=tuple(resolve(v) for v in graph.outputs))


def live_values(nodes, inputs, outputs, params) -> set[str]:
    used = set(inputs) | set(outputs) | {p.name for p in params}
    for node in nodes:
        used.update(node.inputs)
        used.update(node.outputs)
    return used


def rebuild(graph: Graph, nodes, extra_values: dict[str, Value] | None = None) -> Graph:
    """A graph with `nodes`, keeping only the values something still defines or reads."""
    values = dict(graph.values)
    values.update(extra_values or {})
    live = live_values(nodes, graph.inputs, graph.outputs, graph.params)
    return graph.replace(values={k: v for k, v in values.items() if k in live},
                         nodes=tuple(nodes))


def topological(nodes: list[Node], defined: set[str]) -> list[Node]:
    """`nodes` ordered so every input is defined first (stable for already ordered input)."""
    out: list[Node] = []
    pending = list(nodes)
    ready = set(defined)
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(v in ready for v in node.inputs):
                out.append(node)
                ready.update(node.outputs)
                progressed = True
            else:
                rest.append(node)
        if not progressed:
            raise AssertionError(f"cycle or undefined input among {[n.name for n in rest]}")
        pending = rest
    return out
