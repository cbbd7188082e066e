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


def _sinkable(graph: Graph, node) -> bool:
    op = ops.get(node.op)
    if op.category != ops.ELEMENTWISE or op.expr is None or op.view or not node.inputs:
        return False
    view = graph.producer(node.inputs[0])
    if view is None or not ops.get(view.op).view or graph.uses(node.inputs[0]) != 1 or \
            node.inputs[0] in graph.outputs or len(view.inputs) != 1:
        return False
    return all(not graph.type(v).batched and graph.type(v).shape == ()
               for v in node.inputs[1:])


def run(graph: Graph, ctx) -> Graph:
    if "epilogue" not in ctx.fusion:
        return graph
    while True:
        node = next((n for n in graph.nodes if _sinkable(graph, n)), None)
        if node is None:
            return graph
        view = graph.producer(node.inputs[0])
        source = view.inputs[0]
        moved = f"{node.output}:pre_{view.op}"
        values = dict(graph.values)
        values[moved] = Value(moved, graph.type(source), graph.values[node.output].role)
        del values[view.output]
        new_op = node.with_(inputs=(source,) + node.inputs[1:], outputs=(moved,))
        new_view = view.with_(inputs=(moved,), outputs=(node.output,))
        nodes = []
        for n in graph.nodes:
            if n is view:
                continue
            nodes.append(new_op if n is node else n)
            if n is node:
                nodes.append(new_view)
        ctx.note("sink_views", f"'{node.name}' moved above {view.op} '{view.name}'")
        graph = graph.replace(values=values, nodes=tuple(nodes))
