"""sink_views: elementwise ops move above the reshape (a view) they read, so that they
can join the epilogue of the kernel producing the reshape's input.

    y = reshape(x)                        y' = dropout_grad(x, seed)
    z = dropout_grad(y, seed)      =>     z  = reshape(y')

Valid because a reshape keeps C order -- element i of x is element i of y -- and an
elementwise op whose other inputs are unbatched scalars computes each element from that
element and its flat index alone (the index seeds dropout masks: the same in both
shapes). Applied when the op is the reshape's only reader, repeatedly, so a chain of
such ops moves up as a whole. In a training step this puts the dropout gradient behind
`flatten` into the kernel computing the dense layer's input gradient.

Part of the `epilogue` rule: it only enables fusion, so it runs when that rule is on.
"""

from __future__ import annotations

from ..ir import ops
from ..ir.graph import Graph, Value


def _sinkable(graph: Graph, node, view) -> bool:
    """Whether `node` may move above `view`, the reshape producing its first input."""
    op = ops.get(node.op)
    if op.category != ops.ELEMENTWISE or op.expr is None or op.view or not node.inputs:
        return False
    if graph.uses(node.inputs[0]) != 1 or node.inputs[0] in graph.outputs or \
            len(view.inputs) != 1:
        return False
    return all(not graph.type(v).batched and graph.type(v).shape == ()
               for v in node.inputs[1:])


def run(graph: Graph, ctx) -> Graph:
    """One pass in graph order: a view is held where it stands until its reader comes; a
    reader that may move takes the view's input, and the view moves behind it (where it
    may meet the next reader of a chain). Linear in the number of nodes."""
    if "epilogue" not in ctx.fusion:
        return graph
    nodes: list = []
    held: dict[str, int] = {}           # a view's output -> its place in `nodes`
    values = dict(graph.values)
    for node in graph.nodes:
        first = node.inputs[0] if node.inputs else None
        if first in held and _sinkable(graph, node, nodes[held[first]]):
            index = held.pop(first)
            view = nodes[index]
            nodes[index] = None
            source = view.inputs[0]
            moved = f"{node.output}:pre_{view.op}"
            values[moved] = Value(moved, values[source].type, graph.values[node.output].role)
            del values[view.output]
            nodes.append(node.with_(inputs=(source,) + node.inputs[1:], outputs=(moved,)))
            held[node.output] = len(nodes)
            nodes.append(view.with_(inputs=(moved,), outputs=(node.output,)))
            ctx.note("sink_views", f"'{node.name}' moved above {view.op} '{view.name}'")
            continue
        if ops.get(node.op).view and len(node.outputs) == 1:
            held[node.output] = len(nodes)
        nodes.append(node)
    if len(nodes) == len(graph.nodes) and all(a is b for a, b in zip(nodes, graph.nodes)):
        return graph
    return graph.replace(values=values, nodes=tuple(n for n in nodes if n is not None))
