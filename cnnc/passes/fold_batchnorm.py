"""fold_batchnorm: fold inference batchnorm into the conv2d or dense before it.

The ops it looks for are capabilities in the op table: one that `folds` (batchnorm, read
by its input roles x, gamma, beta, mean, var), a `kernel_linear` producer (conv2d,
dense) and, between them, at most one op that `adds_bias`.


    x -> conv2d(w) -> [bias_add(b)] -> batchnorm(gamma, beta, mean, var) -> y
    =>
    x -> conv2d(w * s) -> bias_add((b - mean) * s + beta) -> y,   s = gamma / sqrt(var + eps)

Why it is valid: at inference batchnorm is the per-channel affine map
y = (z - mean) * s + beta, and conv2d/dense are linear in their kernel with output
channels on the kernel's last axis, so scaling the kernel's last axis by s scales each
output channel by s; the bias absorbs the shift. The folded kernel and bias are *derived*
parameters: computed from the parameters once per parameter set (the module's `prepare`
step), so `model.params` keeps the Keras parameters unchanged.

Refused (left as a separate batchnorm): when the conv2d/dense output (or its bias_add
output) is read by anything else than the next node of the pattern, since the unscaled
value would still be needed.
"""

from __future__ import annotations

from ..ir import ops
from ..ir.graph import DERIVED, Attrs, Graph, Node, TensorType, Value
from .rewrite import rebuild


def run(graph: Graph, ctx) -> Graph:
    replace: dict[str, list[Node]] = {}      # node name -> nodes that take its place
    dropped: set[str] = set()
    extra: dict[str, Value] = {}
    linear = " or ".join(name for name, op in ops.dsl_ops().items() if op.kernel_linear)
    for bn in graph.nodes:
        if not ops.get(bn.op).folds:
            continue
        role = dict(zip(ops.get(bn.op).inputs, bn.inputs))
        gamma, beta, mean, var = role["gamma"], role["beta"], role["mean"], role["var"]
        producer = graph.producer(role["x"])
        bias_node = None
        if producer is not None and ops.get(producer.op).adds_bias:
            bias_node, producer = producer, graph.producer(producer.inputs[0])
        if producer is None or not ops.get(producer.op).kernel_linear:
            ctx.refuse("fold_batchnorm", bn, f"not preceded by {linear}")
            continue
        chain = [producer] + ([bias_node] if bias_node else [])
        if any(graph.uses(n.output) != 1 for n in chain) or producer.name in replace:
            ctx.refuse("fold_batchnorm", bn, f"output of '{producer.name}' is used twice")
            continue
        eps = bn.attrs["epsilon"]
        c = graph.type(gamma).shape
        s = f"{bn.name}/scale"
        w_folded = f"{producer.inputs[1]}@{bn.name}"
        b_folded = f"{bn.name}/folded_bias"
        for name, shape in ((s, c), (w_folded, graph.type(producer.inputs[1]).shape),
                            (b_folded, c)):
            extra[name] = Value(name, TensorType(shape, batched=False), DERIVED)
        derived = [
            Node(s, "bn_scale", (gamma, var), (s,), Attrs(epsilon=eps),
                 bn.layer, bn.loc),
            Node(w_folded, "scale_kernel", (producer.inputs[1], s), (w_folded,),
                 layer=producer.layer, loc=producer.loc),
        ]
        if bias_node is not None:
            derived.append(Node(b_folded, "fold_bias", (bias_node.inputs[1], s, beta, mean),
                                (b_folded,), layer=bn.layer, loc=bn.loc))
        else:
            derived.append(Node(b_folded, "fold_shift", (s, beta, mean), (b_folded,),
                                layer=bn.layer, loc=bn.loc))
        new_producer = producer.with_(inputs=(producer.inputs[0], w_folded))
        new_bias = Node(bn.name, "bias_add", (producer.output, b_folded), (bn.output,),
                        layer=bn.layer, loc=bn.loc)
        replace[producer.name] = derived + [new_producer]
        dropped.update(n.name for n in chain[1:])
        replace[bn.name] = [new_bias]
        ctx.note("fold_batchnorm", f"folded '{bn.name}' into '{producer.name}'")
    if not replace:
        return graph
    nodes = []
    for node in graph.nodes:
        if node.name in dropped:
            continue
        nodes.extend(replace.get(node.name, [node]))
    return rebuild(graph, nodes, extra)
