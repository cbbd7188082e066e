"""The pass manager: IR-to-IR passes in a fixed, printable order.

The inference pipeline, top to bottom:

1. simplify_inference  dropout and activation(linear) removed (identity at inference)
2. fold_batchnorm      batchnorm folded into the conv2d/dense before it
3. fuse_loss           softmax/sigmoid + cross-entropy as one stable loss (the `loss` rule;
                       evaluation graphs only)
4. pack_kernels        conv2d/dense kernels read in the layout dot-product kernels want
                       (when the target's kernels are those: the CPU's; the CUDA kernels
                       read the Keras layouts)
5. sink_views          elementwise ops moved above the reshape they read (part of the
                       epilogue rule: it lets them join the producer's kernel)
6. fuse                kernel groups formed by op category (rules: epilogue, pool, row,
                       elementwise; on training graphs also updates)

The training pipeline runs pool_codes (max pooling saves the codes of its maxima for its
gradient, on the CPU), fuse_loss, pack_kernels, sink_views and fuse on the training
graph.

Each pass is a module with `run(graph, ctx) -> graph` and a docstring stating its rule.
`ctx` carries the options -- the enabled fusion rules (a :class:`~.options.Fusion`),
whether the target packs kernels, the passes switched off -- and collects the report:
every refused fusion with its reason, and notes of what each pass did. With `verify`
(tests, CNNC_VERIFY=1, --debug) the verifier checks the graph after every pass; with
`keep_graphs` the report holds the graph after each (`cnnc explain --dump-ir`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from ..errors import CnncError, Diagnostic, did_you_mean
from ..ir.graph import Graph, Node
from . import (fold_batchnorm, fuse, fuse_loss, pack_kernels, pool_codes,
               simplify_inference, sink_views)
from .options import ALL, Fusion
from .verify import verify

INFERENCE_PIPELINE = (
    ("simplify_inference", simplify_inference.run),
    ("fold_batchnorm", fold_batchnorm.run),
    ("fuse_loss", fuse_loss.run),
    ("pack_kernels", pack_kernels.run),
    ("sink_views", sink_views.run),
    ("fuse", fuse.run),
)
TRAINING_PIPELINE = (
    ("pool_codes", pool_codes.run),
    ("fuse_loss", fuse_loss.run),
    ("pack_kernels", pack_kernels.run),
    ("sink_views", sink_views.run),
    ("fuse", fuse.run),
)
# Passes that only enable or apply fusion rules are switched by the rules; these may be
# switched off by name (`cnnc explain --no-pass`).
OPTIONAL_PASSES = ("simplify_inference", "fold_batchnorm")


@dataclass(frozen=True)
class Decision:
    """A fusion the fuser (or a pass) refused, with the reason."""

    rule: str                 # a fusion rule or a pass name
    node: str                 # the node the decision is about
    reason: str
    group: str = ""           # the first node of the group it would have joined


@dataclass
class Report:
    refusals: list[Decision] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)     # (pass, what it did)
    graphs: list[tuple[str, Graph]] = field(default_factory=list)  # (after pass, graph)


class PassContext:
    """What a pass reads (the options) and writes (the report)."""

    def __init__(self, fusion: Fusion = ALL, pack: bool = True, disabled=(),
                 verify_each=False, keep_graphs=False):
        self.fusion = fusion
        self.pack = pack                # the target's kernels read packed layouts
        self.disabled = tuple(disabled)
        self.verify_each = verify_each
        self.keep_graphs = keep_graphs
        self.report = Report()

    def refuse(self, rule: str, node: Node, reason: str, group: Node | None = None) -> None:
        self.report.refusals.append(Decision(rule, node.name, reason,
                                             group.name if group else ""))

    def note(self, pass_name: str, text: str) -> None:
        self.report.notes.append((pass_name, text))


def parse_disabled(passes) -> tuple[str, ...]:
    names = list(passes or ())
    for name in names:
        if name not in OPTIONAL_PASSES:
            raise CnncError(Diagnostic(f"unknown pass '{name}'",
                                       hint=did_you_mean(name, OPTIONAL_PASSES) or
                                       "passes that can be switched off: " +
                                       ", ".join(OPTIONAL_PASSES)))
    return tuple(names)


def run_pipeline(graph: Graph, pipeline, ctx: PassContext) -> Graph:
    if ctx.verify_each:
        verify(graph, "lowering")
    for name, run in pipeline:
        if name in ctx.disabled:
            continue
        graph = run(graph, ctx)
        if ctx.verify_each:
            verify(graph, name)
        if ctx.keep_graphs:
            ctx.report.graphs.append((name, graph))
    return graph


def _verify_default(verify_each: bool | None) -> bool:
    return os.environ.get("CNNC_VERIFY") == "1" if verify_each is None else verify_each


def run_inference(graph: Graph, fusion: Fusion = ALL, pack: bool = True, disable=(),
                  verify_each: bool | None = None, keep_graphs: bool = False):
    """Run the inference pipeline; returns (graph, report). `pack`: the target's kernels
    read packed kernel layouts (Target.packs_kernels)."""
    ctx = PassContext(fusion, pack, parse_disabled(disable), _verify_default(verify_each),
                      keep_graphs)
    return run_pipeline(graph, INFERENCE_PIPELINE, ctx), ctx.report


def run_training(graph: Graph, fusion: Fusion = ALL, pack: bool = True,
                 verify_each: bool | None = None, keep_graphs: bool = False):
    """Run the training pipeline on a training graph; returns (graph, report)."""
    ctx = PassContext(fusion, pack, (), _verify_default(verify_each), keep_graphs)
    return run_pipeline(graph, TRAINING_PIPELINE, ctx), ctx.report


def describe_pipeline() -> str:
    lines = []
    for i, (name, _) in enumerate(INFERENCE_PIPELINE, 1):
        doc = (sys.modules[f"{__name__}.{name}"].__doc__ or "").strip().splitlines()[0]
        lines.append(f"{i}. {doc}")
    return "\n".join(lines)
