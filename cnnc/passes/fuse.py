"""fuse: group nodes into kernels, decided from op categories (as TVM's FuseOps does).

    conv2d -> bias_add -> relu -> maxpool2d          [conv2d + bias_add + relu + maxpool2d]
    dense  -> bias_add -> softmax               =>   [dense + bias_add + softmax]
    conv2d -> bias_add -> add(., shortcut) -> relu   [conv2d + bias_add + add + relu]

Rules (each can be switched off by name; `fuse="none"` switches all off; see
passes/options.py). They read op categories and capabilities -- `reduction`, `takes`,
`epilogue`, `window`, `horizontal` -- never op names:

* ``epilogue``     an elementwise/broadcast op joins the group of the complex op or
                   reduction that produces its input (conv2d + bias + relu, dense + bias +
                   relu, the residual add in the epilogue of the conv2d ending a block)
* ``pool``         a window reduction (pooling) joins a complex op whose template can pool
                   in its epilogue: the pooled output is computed directly and the
                   pre-pool tensor is never written
* ``row``          a row reduction (softmax) joins a complex op whose template produces
                   whole rows (dense + bias + softmax)
* ``elementwise``  elementwise/broadcast ops with no complex op or reduction before them
                   form one kernel (batchnorm + activation, add + relu)
* ``siblings``     (training) a channel sum (`reduction` CHANNELS: the bias gradient)
                   joins the kernel of an op that reads the same tensor as its last input
                   and whose template computes that sum alongside (`siblings`: the weight
                   gradients, which read dy): dy is read once, and one kernel writes dw and
                   db. Horizontal: neither reads the other's output
* ``updates``      (training) the optimizer updates of a step, independent elementwise
                   work on parameters (`horizontal`), become one kernel

Legality (`legal`) is decided apart from profitability (`profitable`); correctness never
depends on the latter. A group grows from its first node along its output while the
output has exactly one reader. When the output has several readers (a residual diamond),
the readers join only together with their immediate post-dominator -- the node every
path from the output reaches -- and only if every node on those paths may join: then no
intermediate is needed outside the group.

Refused (recorded with the reason): the output is read twice and the paths do not
rejoin through fusable ops ("output used twice"); a second reduction in one group ("one
reduction per kernel"); an anchor whose kernel cannot apply an epilogue for its
attributes (the op says why: "overlapping or padded windows scatter-add the gradient");
overlapping pool windows ("pool windows overlap", unprofitable: the convolution rows
under two windows would be computed twice); a rule switched off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import ops
from ..ir.graph import Attrs, Graph, Node


@dataclass
class Group:
    members: list[Node]
    anchor: Node | None
    reducer: Node | None = None
    rules: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        """The value the group's chain ends with (a member's other outputs -- the codes of
        maxpool2d_code -- leave the kernel beside it)."""
        return self.members[-1].outputs[0]


# The most nodes between a value read twice and the node its paths rejoin at that the
# fuser looks through (residual blocks have a handful).
REGION_LIMIT = 256
# The rule that lets a complex op's kernel compute each kind of reduction.
REDUCTION_RULES = {ops.WINDOW: "pool", ops.ROW: "row"}


def _category(node: Node) -> str:
    return ops.get(node.op).category


def _chainable(node: Node) -> bool:
    return ops.get(node.op).chainable


def _batched(graph: Graph, node: Node) -> bool:
    return graph.type(node.outputs[0]).batched


def rule_for(group: Group, node: Node) -> str | None:
    """Which rule would let `node` join `group` (None: no rule covers the pair)."""
    if _chainable(node):
        return "epilogue" if group.anchor is not None else "elementwise"
    op = ops.get(node.op)
    if group.anchor is not None and _category(group.anchor) == ops.COMPLEX and \
            op.reduction in ops.get(group.anchor.op).takes:
        return REDUCTION_RULES[op.reduction]
    return None


def legal(graph: Graph, group: Group, node: Node) -> str | None:
    """None if `node` may join `group` correctly, else the reason it may not."""
    anchor = group.anchor
    if anchor is not None:
        reason = ops.get(anchor.op).epilogue_refusal(anchor.attrs)
        if reason:
            return reason
    if rule_for(group, node) in REDUCTION_RULES.values() and group.reducer is not None:
        return "one reduction per kernel"
    if group.reducer is not None and _chainable(node):
        internal = {m.outputs[0] for m in group.members}
        for value in node.inputs:
            if value in internal and value != group.output:
                return f"reads '{value}' from before the reduction"
    if ops.get(node.op).reduction == ops.ROW and node.inputs[0] != group.output:
        return "the row reduction does not read the group's output"
    return None


def profitable(graph: Graph, group: Group, node: Node) -> str | None:
    """None if fusing is worth it, else why not."""
    op = ops.get(node.op)
    if op.reduction == ops.WINDOW and op.window.overlaps(node.attrs):
        return "pool windows overlap: convolution rows would be computed twice"
    return None


class Fuser:
    def __init__(self, graph: Graph, ctx):
        self.graph = graph
        self.ctx = ctx
        self.index = {n.name: i for i, n in enumerate(graph.nodes)}
        self.assigned: dict[str, Group] = {}

    def run(self) -> list[Group]:
        groups = []
        for node in self.graph.nodes:
            if node.name in self.assigned or ops.get(node.op).view or node.body or \
                    not _batched(self.graph, node):
                continue
            cat = _category(node)
            # injective ops with a kernel (not views) compute each output element once
            # and take an epilogue, as complex ops and reductions do
            anchor = node if cat in (ops.COMPLEX, ops.REDUCTION, ops.INJECTIVE) else None
            group = Group([node], anchor)
            if cat == ops.OPAQUE or ops.get(node.op).epilogue is False or \
                    (anchor is None and not _chainable(node)):
                groups.append(group)
                self.assigned[node.name] = group
                continue
            self.assigned[node.name] = group
            self._grow(group)
            groups.append(group)
        return groups

    def _grow(self, group: Group) -> None:
        graph = self.graph
        while True:
            out = group.output
            readers = graph.consumers.get(out, [])
            if out in graph.outputs or not readers:
                return
            if len(readers) == 1 and graph.uses(out) == 1:
                node = readers[0]
                if not self._try(group, [node]):
                    return
                continue
            if not self._try_diamond(group, readers):
                return

    def _try(self, group: Group, nodes: list[Node], diamond: bool = False) -> bool:
        first = nodes[0]
        if first.name in self.assigned or ops.get(first.op).view:
            return False
        rule = rule_for(group, first)
        if rule is None:
            return False
        for node in nodes[1:]:
            if rule_for(group, node) not in ("epilogue", "elementwise"):
                return False
        if rule not in self.ctx.fusion:
            self.ctx.refuse(rule, first, f"rule '{rule}' is switched off", group.members[0])
            return False
        for node in nodes:
            reason = legal(self.graph, group, node) or profitable(self.graph, group, node)
            if reason:
                self.ctx.refuse(rule, node, reason, group.members[0])
                return False
        for node in nodes:
            group.members.append(node)
            self.assigned[node.name] = group
            node_rule = rule_for(group, node)
            if node_rule in REDUCTION_RULES.values():
                group.reducer = node
            if node_rule not in group.rules:
                group.rules.append(node_rule)
        if diamond:
            self.ctx.note("fuse", f"diamond from '{group.members[0].name}' joined at "
                                  f"'{nodes[-1].name}'")
        return True

    def _try_diamond(self, group: Group, readers: list[Node]) -> bool:
        """Join all readers of the group's output together with their post-dominator."""
        out = group.output
        region = self._region(out)
        names = ", ".join(sorted({r.name for r in readers}))
        candidate = next((r for r in readers if rule_for(group, r) is not None), None)
        if region is None or any(not _chainable(n) for n in region):
            if candidate is not None:
                self.ctx.refuse(rule_for(group, candidate), candidate,
                                f"output used twice (by {names}) and the paths do not "
                                f"rejoin through fusable ops", group.members[0])
            return False
        return self._try(group, region, diamond=True)

    def _region(self, value: str) -> list[Node] | None:
        """The nodes from `value`'s readers to their immediate post-dominator, in order,
        ending with it; None if there is none within reach through chainable nodes.

        A sweep in graph order from the readers: the earliest pending node, while others
        are pending, is inside the region, so every reader of it joins the pending set;
        when one node is left pending, every path from `value` has met there: it is the
        post-dominator. A node that cannot fuse (not chainable, or a graph output inside)
        ends the search, as does a region past REGION_LIMIT nodes (refusing is always
        correct: it only leaves a value written).
        """
        graph = self.graph
        pending = {r.name: r for r in graph.consumers[value]}
        inside: list[Node] = []
        while True:
            node = min(pending.values(), key=lambda n: self.index[n.name])
            if not _chainable(node):
                return None
            if len(pending) == 1:
                return inside + [node]
            del pending[node.name]
            if len(inside) >= REGION_LIMIT or any(out in graph.outputs for out in node.outputs):
                return None
            inside.append(node)
            for out in node.outputs:
                for reader in graph.consumers.get(out, []):
                    pending[reader.name] = reader


def run(graph: Graph, ctx) -> Graph:
    graph = _fuse_siblings(graph, ctx)
    graph = _fuse_updates(graph, ctx)
    groups = Fuser(graph, ctx).run()
    grouped = {m.name: g for g in groups if len(g.members) > 1 for m in g.members}
    nodes: list[Node] = []
    emitted: set[int] = set()
    for node in graph.nodes:
        group = grouped.get(node.name)
        if group is None:
            nodes.append(node)
            continue
        if id(group) in emitted or node is not group.members[-1]:
            continue
        emitted.add(id(group))
        nodes.append(_fused_node(graph, group))
    return graph.replace(nodes=tuple(_order(nodes, graph)))


def _fuse_siblings(graph: Graph, ctx) -> Graph:
    """The `siblings` rule: each channel sum joins the first node (in graph order) that
    reads its input as its own last input and computes that sum alongside; one such sum
    per node."""
    partner: dict[str, Node] = {}               # sum's name -> the node it joins
    taken: set[str] = set()
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    for node in graph.nodes:
        reduction = ops.get(node.op).reduction
        if reduction is None or reduction in REDUCTION_RULES or node.body:
            continue
        value = node.inputs[0]
        hosts = [n for n in graph.consumers.get(value, [])
                 if not n.body and n.name not in taken and n.inputs[-1] == value
                 and reduction in ops.get(n.op).siblings]
        if not hosts:
            continue
        host = min(hosts, key=lambda n: order[n.name])
        if "siblings" not in ctx.fusion:
            ctx.refuse("siblings", node, "rule 'siblings' is switched off", host)
            continue
        partner[node.name] = host
        taken.add(host.name)
    if not partner:
        return graph
    fused = {host.name: Node(host.name + "+", "fused", host.inputs,
                             host.outputs + node.outputs, Attrs(), host.layer, host.loc,
                             body=(host, node), rule="siblings")
             for node in graph.nodes if node.name in partner
             for host in [partner[node.name]]}
    nodes = [fused.get(n.name, n) for n in graph.nodes if n.name not in partner]
    return graph.replace(nodes=tuple(_order(nodes, graph)))


def _fuse_updates(graph: Graph, ctx) -> Graph:
    """The `updates` rule: the horizontal nodes of a training step (its optimizer updates)
    become one kernel."""
    updates = [n for n in graph.nodes if ops.get(n.op).horizontal]
    if len(updates) < 2:
        return graph
    if "updates" not in ctx.fusion:
        ctx.refuse("updates", updates[1], "rule 'updates' is switched off", updates[0])
        return graph
    internal = {v for n in updates for v in n.outputs}
    inputs = list(dict.fromkeys(v for n in updates for v in n.inputs if v not in internal))
    fused = Node("update+", "fused", tuple(inputs), tuple(internal and
                                                          [v for n in updates for v in n.outputs]),
                 Attrs(), "optimizer", None, body=tuple(updates), rule="updates")
    rest = [n for n in graph.nodes if not ops.get(n.op).horizontal]
    return graph.replace(nodes=tuple(rest + [fused]))


def _fused_node(graph: Graph, group: Group) -> Node:
    internal = {v for m in group.members for v in m.outputs}
    inputs: list[str] = []
    for member in group.members:
        for value in member.inputs:
            if value not in internal and value not in inputs:
                inputs.append(value)
    first = group.anchor or group.members[0]
    side = tuple(v for m in group.members for v in m.outputs[1:])
    return Node(first.name + "+", "fused", tuple(inputs), (group.output,) + side, Attrs(),
                first.layer, first.loc, body=tuple(group.members),
                rule="+".join(group.rules))


def _order(nodes: list[Node], graph: Graph) -> list[Node]:
    from .rewrite import topological
    defined = set(graph.inputs) | {p.name for p in graph.params}
    return topological(nodes, defined)
