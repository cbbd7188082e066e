"""fuse_loss: the `loss` rule -- a softmax (sigmoid) and the cross-entropy after it become
one loss computed from logits.

    z -> softmax -> p -> loss[cce](p, labels) -> dp -> softmax_grad(dp, p) -> dz
    =>
    z -> loss[softmax_xent](z, labels) -> dz

Why: from probabilities the loss clips and divides by p (tf.keras's rule), and the
gradient goes through softmax_grad; from logits it is a log-sum-exp with the row maximum
subtracted, stable for any z, and its gradient is simply p - y. One kernel instead of
three, and no probabilities written. The activation says which loss kinds it joins
(op.logits_losses); the loss op computes either form.

Applied to training graphs (loss, then the activation's gradient) and evaluation graphs
(the loss alone). Refused when the activation's output is read by anything but the loss
and its gradient, or the loss's gradient by anything but the activation's gradient.
"""

from __future__ import annotations

from ..ir import ops
from ..ir.graph import Graph, Node
from .rewrite import rebuild


def _match(graph: Graph, loss: Node):
    """(activation, its gradient or None, logits kind, None) when `loss` may take the
    logits form; (activation, None, None, reason) when it may not; None when no
    activation with a logits form precedes it."""
    p = loss.inputs[0]
    act = graph.producer(p)
    if act is None or loss.attrs["kind"] not in ops.get(act.op).logits_losses:
        return None
    dp = loss.outputs[2]
    grads = graph.consumers.get(dp, [])
    grad = grads[0] if len(grads) == 1 else None
    if len(grads) > 1 or dp in graph.outputs or grad is not None and not (
            ops.get(grad.op).direction == ops.BACKWARD and grad.layer == act.layer and
            set(grad.inputs) <= {dp, p, act.inputs[0]}):
        return act, None, None, "the loss's gradient is read by more than the activation's"
    others = {n.name for n in graph.consumers.get(p, [])} - {loss.name} - \
        ({grad.name} if grad is not None else set())
    if others or p in graph.outputs:
        return act, None, None, f"'{act.name}' is read by more than its loss"
    return act, grad, ops.get(act.op).logits_losses[loss.attrs["kind"]], None


def run(graph: Graph, ctx) -> Graph:
    dropped: set[str] = set()
    replaced: dict[str, Node] = {}
    alias: dict[str, str] = {}            # the activation gradient's output -> the loss's
    for loss in (n for n in graph.nodes if ops.get(n.op).direction == ops.LOSS):
        match = _match(graph, loss)
        if match is None:
            continue
        act, grad, kind, reason = match
        if "loss" not in ctx.fusion:
            reason = "rule 'loss' is switched off"
        if reason:
            ctx.refuse("loss", act, reason, loss)
            continue
        replaced[loss.name] = loss.with_(inputs=(act.inputs[0],) + loss.inputs[1:],
                                         attrs=loss.attrs.updated(kind=kind))
        dropped.add(act.name)
        if grad is not None:
            dropped.add(grad.name)
            alias[grad.output] = loss.outputs[2]
        ctx.note("fuse_loss", f"'{act.name}' joined '{loss.name}': {kind} from logits")
    if not replaced:
        return graph
    nodes = []
    for node in graph.nodes:
        if node.name in dropped:
            continue
        node = replaced.get(node.name, node)
        nodes.append(node.with_(inputs=tuple(alias.get(v, v) for v in node.inputs)))
    return rebuild(graph, nodes)
