"""Reverse-mode autodiff over the IR: the training graph of a model.

    forward (training mode) -> loss -> backward (gradient rules) -> optimizer updates

1. The model's graph is rewritten for training: dropout becomes `dropout_train` (a mask
   from the step's seed), batchnorm becomes `batchnorm_train` (batch statistics, saved for
   the gradient), activation(linear) disappears.
2. The loss op reads the model's output -- or, when the model ends with the activation the
   loss has a logits form for (softmax for the cross-entropies, sigmoid for binary
   cross-entropy), the input of that activation, which is then skipped: softmax and
   cross-entropy become one stable log-softmax whose gradient is p - y.
3. Walking the forward nodes backwards, each op's gradient rule (declared next to its
   shape rule in cnnc.ir.ops) turns the gradient of its output into gradients of its
   inputs, emitting IR nodes. A value read by several nodes sums its gradients.
4. One `update` node per trainable parameter applies the optimizer in place.

The result is an ordinary graph: it goes through the same passes and code generator as
inference graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CnncError, Diagnostic
from ..ir import ops
from ..ir.builder import GraphBuilder
from ..ir.graph import (ACTIVATION, INPUT, LABEL, PARAM, SCALAR, STATE, Attrs, Graph, Node,
                        TensorType, Value)
from ..ir.ops.training import OPTIMIZERS
from ..program import Model
from .config import OptimizerConfig

OPT_STATE = "opt_state"
LOGIT_LOSSES = {  # loss -> (activation it absorbs, logits kind, probabilities kind)
    "categorical_crossentropy": ("softmax", "softmax_xent", "cce"),
    "sparse_categorical_crossentropy": ("softmax", "sparse_softmax_xent", "sparse_cce"),
    "binary_crossentropy": ("sigmoid", "sigmoid_bce", "bce"),
    "mse": (None, None, "mse"),
}


@dataclass
class TrainingGraph:
    graph: Graph
    loss_kind: str
    param_grads: dict[str, str]                 # trainable parameter -> its gradient value
    updates: dict[str, list[str]]               # parameter -> [new value, new states...]
    states: dict[str, list[str]]                # parameter -> optimizer state values
    # (mean param, var param, mean, var, momentum) of each batchnorm
    bn_stats: list[tuple] = field(default_factory=list)
    rule: str = ""
    hyper: dict = field(default_factory=dict)
    labels_shape: tuple = ()


def optimizer_rule(config: OptimizerConfig) -> str:
    h = config.hyper
    if config.name == "sgd":
        if h["momentum"] == 0:
            return "sgd"
        return "sgd_nesterov" if h["nesterov"] else "sgd_momentum"
    if config.name == "rmsprop":
        return "rmsprop_momentum" if h["momentum"] else "rmsprop"
    return config.name


class _Ctx:
    """What gradient rules see: emit nodes, types, and which values need gradients."""

    def __init__(self, builder: GraphBuilder, needs: set[str], layer: str):
        self.builder = builder
        self._needs = needs
        self.layer = layer
        self.loc = None

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


def build_training_graph(model: Model, loss: str, optimizer: OptimizerConfig,
                         fuse_loss: bool = True) -> TrainingGraph:
    source = model.graph
    b = GraphBuilder()
    x = b.input(source.inputs[0], source.type(source.inputs[0]), INPUT)
    out = source.outputs[0]
    out_type = source.type(out)
    absorbs, logit_kind, prob_kind = LOGIT_LOSSES[loss]
    last = source.producer(out)
    if loss in ("categorical_crossentropy", "sparse_categorical_crossentropy") and \
            (last is None or last.op != "softmax"):
        raise CnncError(Diagnostic(f"{loss} needs a model whose last layer is softmax"))
    sparse = loss == "sparse_categorical_crossentropy"
    labels_shape = () if sparse else out_type.shape
    labels = b.input("labels", TensorType(labels_shape), LABEL)
    seed = b.input("seed", TensorType((), batched=False, dtype="int64"), SCALAR)
    for p in source.params:
        b.params.append(p)
        b._define(Value(p.name, source.type(p.name), PARAM if p.trainable else STATE))

    # 1. forward in training mode
    alias: dict[str, str] = {x: x}
    skip = last.name if (fuse_loss and absorbs and last is not None and last.op == absorbs) \
        else None
    bn_stats = []
    forward: list[Node] = []
    dropout_salt = 0
    for node in source.nodes:
        if node.name == skip:
            continue
        ins = [alias.get(v, v) for v in node.inputs]
        if node.op == "linear":
            alias[node.output] = ins[0]
            continue
        before = len(b.nodes)
        if node.op == "dropout":
            dropout_salt += 1
            y = b.node("dropout_train", [ins[0], seed],
                       {"rate": node.attrs["rate"], "salt": dropout_salt},
                       layer=node.layer, loc=node.loc, name=node.name)
        elif node.op == "batchnorm":
            xin, gamma, beta, mm, mv = ins
            c = b.type(gamma)
            y, mean, var = b.multi("batchnorm_train", [xin, gamma, beta],
                                   {"epsilon": node.attrs["epsilon"]},
                                   [b.type(xin), c, c], layer=node.layer, loc=node.loc,
                                   name=node.name, suffixes=["mean", "var"])
            bn_stats.append((mm, mv, mean, var, node.attrs["momentum"]))
        else:
            y = b.node(node.op, ins, node.attrs, layer=node.layer, loc=node.loc,
                       name=node.name, out_type=source.type(node.output))
        alias[node.output] = y
        forward.extend(b.nodes[before:])
    z = alias[skip and last.inputs[0] or out]
    kind = logit_kind if skip else prob_kind

    # 2. the loss
    loss_value, correct, dz = b.multi(
        "loss", [z, labels], {"kind": kind}, [TensorType((1,), batched=False)] * 2 +
        [b.type(z)], layer="loss", name="loss", suffixes=["correct", "dz"])

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
        ctx = _Ctx(b, needs, node.layer)
        ctx.loc = node.loc
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
    rule = optimizer_rule(optimizer)
    slots, _ = OPTIMIZERS[rule]
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
    return TrainingGraph(graph, kind, param_grads, updates, states, bn_stats, rule,
                         dict(optimizer.hyper), labels_shape)


def build_eval_graph(model: Model, loss: str) -> Graph:
    """The inference graph with the loss appended: evaluation computes the same loss as
    training (from logits when the model ends with the matching activation), with dropout
    off and batchnorm's moving statistics, as Keras's evaluate does."""
    source = model.graph
    out = source.outputs[0]
    last = source.producer(out)
    absorbs, logit_kind, prob_kind = LOGIT_LOSSES[loss]
    logits = absorbs is not None and last is not None and last.op == absorbs
    nodes = [n for n in source.nodes if not (logits and n is last)]
    z = last.inputs[0] if logits else out
    sparse = loss == "sparse_categorical_crossentropy"
    values = dict(source.values)
    labels = Value("labels", TensorType(() if sparse else source.type(out).shape), LABEL)
    values["labels"] = labels
    outs = ("loss", "loss:correct", "loss:dz")
    for name, t in zip(outs, [TensorType((1,), batched=False)] * 2 + [source.type(z)]):
        values[name] = Value(name, t, ACTIVATION if t.batched else "grad")
    nodes.append(Node("loss", "loss", (z, "labels"), outs,
                      Attrs(kind=logit_kind if logits else prob_kind), "loss"))
    live = {v for n in nodes for v in n.inputs + n.outputs} | set(source.inputs) | {"labels"}
    return Graph({k: v for k, v in values.items() if k in live or k in
                  {p.name for p in source.params}}, tuple(nodes),
                 source.inputs + ("labels",), outs[:2], source.params)
