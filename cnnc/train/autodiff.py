"""Reverse-mode autodiff over the IR: the training graph of a model.

    forward (training mode) -> loss -> backward (gradient rules) -> optimizer updates

1. The model's graph is rewritten for training by each op's training form (`op.train`,
   declared beside it in cnnc.ir.ops): dropout becomes `dropout_train` (a mask from the
   step's seed), batchnorm becomes `batchnorm_train` (batch statistics, saved for the
   gradient), activation(linear) disappears. Other ops are copied.
2. The loss op reads the model's output, in the kind the train block's loss names (from
   probabilities, as tf.keras). Turning softmax + cross-entropy into one stable loss from
   logits is a fusion rule, applied later by passes/fuse_loss.py.
3. Walking the forward nodes backwards, each op's gradient rule (declared next to its
   shape rule) turns the gradient of its output into gradients of its inputs, emitting
   IR nodes. A value read by several nodes sums its gradients.
4. One `update` node per trainable parameter applies the optimizer in place.

The result is an ordinary graph: it goes through the same passes and code generator as
inference graphs.
"""

from __future__ import annotations

from ..errors import CnncError, Diagnostic
from ..frontend.program import Model, OptimizerConfig
from ..ir import ops
from ..ir.builder import GraphBuilder
from ..ir.graph import (
    ACTIVATION,
    INPUT,
    LABEL,
    PARAM,
    SCALAR,
    STATE,
    Attrs,
    Graph,
    Node,
    TensorType,
    Value,
)
from ..ir.ops.training import LOSSES, OPTIMIZERS, UPDATE_RULES
from ..ir.training_graph import TrainingGraph

OPT_STATE = "opt_state"


class _Ctx:
    """What gradient rules see: emit nodes, types, and which values need gradients."""

    def __init__(self, builder: GraphBuilder, needs: set[str], layer: str, loc=None):
        self.builder = builder
        self._needs = needs
        self.layer = layer
        self.loc = loc

    def needs(self, value: str) -> bool:
        return value in self._needs

    def type(self, value: str) -> TensorType:
        return self.builder.type(value)

    def emit(self, op: str, inputs, attrs=None, out_type=None) -> str:
        if out_type is None:
            out_type = ops.get(op).infer(Attrs(attrs or {}), [self.type(i) for i in inputs])
        return self.builder.node(op, list(inputs), attrs, layer=self.layer, loc=self.loc,
                                 name=f"d/{self.layer}/{op}", out_type=out_type,
                                 role=ACTIVATION if out_type.batched else "grad")

    def emit_multi(self, op: str, inputs, attrs, out_types, suffixes=None) -> list[str]:
        return self.builder.multi(op, list(inputs), attrs, out_types, layer=self.layer,
                                  loc=self.loc, name=f"d/{self.layer}/{op}",
                                  suffixes=suffixes)


class _FormCtx:
    """What training forms (`op.train`) see: emit the node(s) that stand for `node` in the
    training graph, under its name; the step's seed and the index of the batch's first
    sample in the step's global batch (data-parallel training); dropout salts; moving
    statistics."""

    def __init__(self, builder: GraphBuilder, seed: str, first: str):
        self.builder = builder
        self.seed = seed
        self.first = first
        self.node = None
        self.bn_stats: list[tuple] = []
        self._salts = 0

    def type(self, value: str) -> TensorType:
        return self.builder.type(value)

    def emit(self, op: str, inputs, attrs=None) -> str:
        node = self.node
        return self.builder.node(op, list(inputs), attrs, layer=node.layer, loc=node.loc,
                                 name=node.name)

    def emit_multi(self, op: str, inputs, attrs, out_types, suffixes) -> list[str]:
        node = self.node
        return self.builder.multi(op, list(inputs), attrs, out_types, layer=node.layer,
                                  loc=node.loc, name=node.name, suffixes=suffixes)

    def salt(self) -> int:
        """A number for each dropout layer, in model order, 1 first: masks differ per layer."""
        self._salts += 1
        return self._salts

    def moving_statistics(self, moving_mean, moving_var, mean, var, momentum) -> None:
        self.bn_stats.append((moving_mean, moving_var, mean, var, momentum))


def _check_loss(model: Model, loss: str) -> None:
    last = model.graph.producer(model.graph.outputs[0])
    if LOSSES[loss].needs_distribution and (last is None or
                                            not ops.get(last.op).distribution):
        raise CnncError(Diagnostic(f"{loss} needs a model whose last layer is softmax"))


def build_training_graph(model: Model, loss: str, optimizer: OptimizerConfig) -> TrainingGraph:
    source = model.graph
    _check_loss(model, loss)
    b = GraphBuilder()
    x = b.input(source.inputs[0], source.type(source.inputs[0]), INPUT)
    out = source.outputs[0]
    labels_shape = () if LOSSES[loss].sparse else source.type(out).shape
    labels = b.input("labels", TensorType(labels_shape), LABEL)
    seed = b.input("seed", TensorType((), batched=False, dtype="int64"), SCALAR)
    first = b.input("first", TensorType((), batched=False, dtype="int64"), SCALAR)
    for p in source.params:
        b.params.append(p)
        b._define(Value(p.name, source.type(p.name), PARAM if p.trainable else STATE))

    # 1. forward in training mode
    alias: dict[str, str] = {x: x}
    forms = _FormCtx(b, seed, first)
    forward: list[Node] = []
    for node in source.nodes:
        ins = [alias.get(v, v) for v in node.inputs]
        before = len(b.nodes)
        train = ops.get(node.op).train
        if train is not None:
            forms.node = node
            y = train(forms, node, ins)
        else:
            y = b.node(node.op, ins, node.attrs, layer=node.layer, loc=node.loc,
                       name=node.name, out_type=source.type(node.output))
        alias[node.output] = y
        forward.extend(b.nodes[before:])
    z = alias[out]

    # 2. the loss
    loss_value, correct, dz = b.multi(
        "loss", [z, labels], {"kind": LOSSES[loss].kind},
        [TensorType((1,), batched=False)] * 2 + [b.type(z)], layer="loss", name="loss",
        suffixes=["correct", "dz"])

    # 3. backward
    needs: set[str] = {p.name for p in source.params if p.trainable}
    for node in forward:
        if any(v in needs for v in node.inputs):
            needs.update(node.outputs)
    grads: dict[str, str] = {z: dz}
    for node in reversed(forward):
        dys = [grads.get(v) for v in node.outputs]
        if all(d is None for d in dys):
            continue
        op = ops.get(node.op)
        if op.grad is None:
            raise CnncError(Diagnostic(f"op {node.op} has no gradient rule"))
        ctx = _Ctx(b, needs, node.layer, node.loc)
        dins = op.grad(ctx, node, dys if len(node.outputs) > 1 else dys[0])
        for value, dvalue in zip(node.inputs, dins):
            if dvalue is None or value not in needs:
                continue
            if value in grads:
                grads[value] = ctx.emit("add", [grads[value], dvalue])
            else:
                grads[value] = dvalue
    param_grads = {p.name: grads[p.name] for p in source.params if p.trainable}

    # 4. optimizer updates
    rule = OPTIMIZERS[optimizer.name].rule(optimizer.hyper)
    slots, _ = UPDATE_RULES[rule]
    updates, states = {}, {}
    for p in source.params:
        if not p.trainable:
            continue
        state_values = []
        for slot in slots:
            name = f"{p.name}:{slot}"
            b._define(Value(name, source.type(p.name), OPT_STATE))
            b.inputs.append(name)
            state_values.append(name)
        outs = b.multi("update", [p.name, param_grads[p.name]] + state_values,
                       dict(optimizer.hyper, rule=rule),
                       [source.type(p.name)] * (1 + len(slots)), layer=p.layer,
                       name=f"update/{p.name}", suffixes=list(slots))
        updates[p.name] = outs
        states[p.name] = state_values
    outputs = [loss_value, correct] + [v for outs in updates.values() for v in outs]
    graph = b.build(outputs)
    return TrainingGraph(graph, param_grads, updates, states, forms.bn_stats, rule,
                         dict(optimizer.hyper), labels_shape)


def build_eval_graph(model: Model, loss: str) -> Graph:
    """The inference graph with the loss appended: evaluation computes the same loss as
    training (from logits when the `loss` rule joins it with the model's last activation),
    with dropout off and batchnorm's moving statistics, as Keras's evaluate does."""
    source = model.graph
    _check_loss(model, loss)
    out = source.outputs[0]
    values = dict(source.values)
    labels_shape = () if LOSSES[loss].sparse else source.type(out).shape
    values["labels"] = Value("labels", TensorType(labels_shape), LABEL)
    outs = ("loss", "loss:correct", "loss:dz")
    for name, t in zip(outs, [TensorType((1,), batched=False)] * 2 + [source.type(out)]):
        values[name] = Value(name, t, ACTIVATION if t.batched else "grad")
    nodes = source.nodes + (Node("loss", "loss", (out, "labels"), outs,
                                 Attrs(kind=LOSSES[loss].kind), "loss"),)
    return Graph(values, nodes, source.inputs + ("labels",), outs[:2], source.params)
