"""The training part of a standalone module: the train step, gradients and evaluation.

Host functions generated here:

* `_train_batch`: forward in training mode, the loss and the backward pass for one
  batch; fills the flat gradient buffer and returns the summed loss and accuracy and
  the batch statistics of every batchnorm;
* `_apply_updates`: the optimizer's updates (one kernel over the flat parameter buffer
  when the `updates` fusion rule is on, else one per parameter);
* `_evaluate_batch`: inference, then the loss, for evaluation.

Parameters are views into one flat buffer with the trainable ones first (FLAT_ORDER), so
the gradient and every optimizer state are flat buffers of the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..ir import ops
from ..ir.graph import Graph
from ..ir.ops.training import UPDATE_RULES
from ..ir.training_graph import TrainingGraph
from . import host
from .host import is_prepare, steps_of


@dataclass
class TrainingProgram:
    training: TrainingGraph       # before the passes (names of gradients, states, ...)
    train_graph: Graph            # after the training pipeline
    eval_graph: Graph             # after the inference pipeline
    loss: str
    target: object                # the Target

    def __post_init__(self):
        self.train_steps = steps_of(self.train_graph, self.target)
        split = next((i for i, s in enumerate(self.train_steps)
                      if s.kind == "kernel" and
                      ops.get(s.node.body[0].op if s.node.body else s.node.op).direction ==
                      ops.UPDATE), len(self.train_steps))
        self.batch_steps = self.train_steps[:split]
        self.update_steps = self.train_steps[split:]
        self.eval_steps = steps_of(self.eval_graph, self.target)
        self.kernels = [s.kernel for s in self.train_steps + self.eval_steps
                        if s.kind == "kernel"]

    @property
    def trainable(self) -> list:
        return [p for p in self.train_graph.params if p.trainable]

    @property
    def slots(self) -> list[str]:
        return list(UPDATE_RULES[self.training.rule][0])

    @property
    def slots_tuple(self) -> tuple:
        return tuple(self.slots)

    @staticmethod
    def prepare_lines(graph: Graph, steps, lines_of) -> list[str]:
        """The host lines computing the derived parameters of `steps` (`lines_of(graph,
        node)`: the target's rendering of one)."""
        return [line for s in steps if s.kind == "prepare" for line in lines_of(graph, s.node)]

    def plan(self, instrument=None):
        """The three host functions; `instrument` (profiled modules only) times their
        kernel calls."""
        plan_host = partial(host.plan_host, instrument=instrument)
        tg = self.training
        g = self.train_graph
        bindings = {"input": "x", "labels": "labels", "seed": "seed", "first": "first"}
        bindings.update({p.name: f"params[{p.name!r}]" for p in g.params})
        bindings.update({n.output: f"params[{n.output!r}]" for n in g.nodes if is_prepare(n)})
        bindings.update({grad: f"grads[{param!r}]" for param, grad in tg.param_grads.items()})
        stat_values = [v for _, _, mean, var, _ in tg.bn_stats for v in (mean, var)]
        train = plan_host(g, self.batch_steps, "train_batch", bindings, self.target,
                          taken={"params", "grads", "x", "labels", "seed", "first"},
                          keep=["loss", "loss:correct"] + stat_values)
        stats = [f"({train.var[mean]}, {train.var[var]})" for _, _, mean, var, _ in tg.bn_stats]
        train.lines.append("batch_stats = [" + "".join(f"\n    {s}," for s in stats) +
                           ("\n]" if stats else "]"))
        number = self.target.host_number
        train.lines.append(f"return {number(train.var['loss'])}, "
                           f"{number(train.var['loss:correct'])}, batch_stats")
        ub = {"@params": "flat_params", "@grads": "flat_grads", "lr": "lr", "alpha": "alpha"}
        ub.update({f"@state:{slot}": f"state[{slot!r}]" for slot in self.slots})
        for param, grad in tg.param_grads.items():
            ub[param] = f"params[{param!r}]"
            ub[grad] = f"grads[{param!r}]"
            for slot, value in zip(self.slots, tg.states[param]):
                ub[value] = f"views[{slot!r}][{param!r}]"
        updates = plan_host(g, self.update_steps, "apply_updates", ub, self.target,
                            taken={"params", "grads", "state", "views", "flat_params",
                                   "flat_grads", "lr", "alpha"})
        e = self.eval_graph
        eb = {"input": "x", "labels": "labels"}
        eb.update({p.name: f"params[{p.name!r}]" for p in e.params})
        eb.update({n.output: f"params[{n.output!r}]" for n in e.nodes if is_prepare(n)})
        evaluate = plan_host(e, self.eval_steps, "evaluate_batch", eb, self.target,
                             taken={"params", "x", "labels"}, keep=["loss", "loss:correct"])
        evaluate.lines.append(f"return {number(evaluate.var['loss'])}, "
                              f"{number(evaluate.var['loss:correct'])}")
        return [train, updates, evaluate]

    def bn_moving(self) -> tuple:
        return tuple((mm, mv, momentum) for mm, mv, _, _, momentum in self.training.bn_stats)
