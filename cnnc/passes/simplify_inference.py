"""simplify_inference: remove ops that compute nothing at inference.

    x -> dropout -> y          x -> y
    x -> linear  -> y    =>    x -> y

Dropout is the identity at inference (Keras scales at training time: inverted dropout),
and `activation(linear)` is the identity always, so readers of their outputs can read
their inputs instead. Flatten stays: it is a view (no kernel, no copy) and it carries the
shape change. A node whose output is a graph output is still removed; the graph output
becomes its input.
"""

from __future__ import annotations

from ..ir import ops
from ..ir.graph import Graph
from .rewrite import bypass


def run(graph: Graph, ctx) -> Graph:
    dropped = {n.name for n in graph.nodes if ops.get(n.op).identity_at_inference}
    for name in sorted(dropped):
        ctx.note("simplify_inference", f"removed {graph.node(name).op} '{name}'")
    return bypass(graph, dropped) if dropped else graph
