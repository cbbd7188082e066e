"""The pass manager: IR-to-IR passes in a fixed, printable order.

The inference pipeline, top to bottom:

1. simplify_inference  dropout and activation(linear) removed (identity at inference)
2. fold_batchnorm      batchnorm folded into the conv2d/dense before it
3. pack_kernels        conv2d/dense kernels read in the layout the CPU kernels want
                       (the CUDA kernels read the Keras layouts: nothing to do)
4. sink_views          elementwise ops moved above the reshape they read (part of the
                       epilogue rule: it lets them join the producer's kernel)
5. fuse                kernel groups formed by op category (rules: epilogue, pool, row,
                       elementwise)

The training pipeline runs pack_kernels, sink_views and fuse on the training graph.

Each pass is a module with `run(graph, ctx) -> graph` and a docstring stating its rule.
`ctx` carries the options (enabled fusion rules, disabled passes) and collects the
report: every decision, including refused fusions with their reasons. With `verify`
(tests, --debug) the verifier checks the graph after every pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CnncError, Diagnostic
from ..ir.attrs import did_you_mean
from ..ir.graph import Graph, Node
from . import fold_batchnorm, fuse, pack_kernels, simplify_inference, sink_views
from .verify import verify

INFERENCE_PIPELINE = (
    ("simplify_inference", simplify_inference.run),
    ("fold_batchnorm", fold_batchnorm.run),
    ("pack_kernels", pack_kernels.run),
    ("sink_views", sink_views.run),
    ("fuse", fuse.run),
)
FUSION_RULES = tuple(fuse.RULES)
TRAINING_PIPELINE = (
    ("pack_kernels", pack_kernels.run),
    ("sink_views", sink_views.run),
    ("fuse", fuse.run),
)
TRAINING_FUSION_RULES = FUSION_RULES + tuple(fuse.TRAINING_RULES)


@dataclass(frozen=True)
class Decision:
    rule: str                 # a fusion rule or a pass name
    node: str                 # the node the decision is about
    fused: bool
    reason: str = ""
    group: str = ""           # the first node of the group it would have joined


@dataclass
class Report:
    fuse_rules: tuple[str, ...]
    disabled: tuple[str, ...] = ()
    decisions: list[Decision] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    graphs: list[tuple[str, Graph]] = field(default_factory=list)   # (after pass, graph)

    @property
    def fuse_description(self) -> str:
        if set(FUSION_RULES) <= set(self.fuse_rules):
            rules = "all"
        elif not self.fuse_rules:
            rules = "none"
        else:
            rules = ",".join(self.fuse_rules)
        if self.disabled:
            rules += " (passes off: " + ",".join(self.disabled) + ")"
        return rules

    @property
    def refusals(self) -> list[Decision]:
        return [d for d in self.decisions if not d.fused]


class PassContext:
    def __init__(self, fuse_rules, disabled=(), verify_each=False, keep_graphs=False,
                 target: str = "cpu"):
        self.fuse_rules = frozenset(fuse_rules)
        self.target = target          # "cpu" or "cuda": only pack_kernels looks at it
        self.report = Report(tuple(r for r in TRAINING_FUSION_RULES if r in self.fuse_rules),
                             tuple(disabled))
        self.verify_each = verify_each
        self.keep_graphs = keep_graphs

    def refuse(self, rule: str, node: Node, reason: str, group: Node | None = None) -> None:
        self.report.decisions.append(Decision(rule, node.name, False, reason,
                                              group.name if group else ""))

    def note(self, pass_name: str, text: str) -> None:
        self.report.notes.append((pass_name, text))


def parse_fuse(fuse) -> tuple[str, ...]:
    """`fuse` as given by a user ("all", "none", "a,b" or a list) -> rule names (inference
    and training rules; each pipeline uses those it knows)."""
    if fuse is None or fuse == "all":
        return TRAINING_FUSION_RULES
    if fuse == "none":
        return ()
    names = fuse.split(",") if isinstance(fuse, str) else list(fuse)
    names = [n.strip() for n in names if n.strip()]
    for name in names:
        if name not in TRAINING_FUSION_RULES:
            raise CnncError(Diagnostic(
                f"unknown fusion rule '{name}'",
                hint=did_you_mean(name, TRAINING_FUSION_RULES) or
                "rules: " + ", ".join(TRAINING_FUSION_RULES) + " (or all, none)"))
    return tuple(r for r in TRAINING_FUSION_RULES if r in names)


def parse_disabled(passes) -> tuple[str, ...]:
    names = [p for p in (passes or ())]
    known = [name for name, _ in INFERENCE_PIPELINE
             if name not in ("fuse", "pack_kernels", "sink_views")]
    for name in names:
        if name not in known:
            raise CnncError(Diagnostic(f"unknown pass '{name}'",
                                       hint=did_you_mean(name, known) or
                                       "passes that can be switched off: " + ", ".join(known)))
    return tuple(names)


def run_pipeline(graph: Graph, pipeline, ctx: PassContext) -> Graph:
    if ctx.verify_each:
        verify(graph, "lowering")
    for name, run in pipeline:
        if name in ctx.report.disabled:
            continue
        graph = run(graph, ctx)
        if ctx.verify_each:
            verify(graph, name)
        if ctx.keep_graphs:
            ctx.report.graphs.append((name, graph))
    return graph


def run_inference(graph: Graph, fuse="all", disable=(), verify_each: bool | None = None,
                  keep_graphs: bool = False, target: str = "cpu"):
    """Run the inference pipeline; returns (graph, report)."""
    import os
    if verify_each is None:
        verify_each = os.environ.get("CNNC_VERIFY") == "1"
    ctx = PassContext(parse_fuse(fuse), parse_disabled(disable), verify_each, keep_graphs,
                      target)
    graph = run_pipeline(graph, INFERENCE_PIPELINE, ctx)
    return graph, ctx.report


def run_training(graph: Graph, fuse="all", verify_each: bool | None = None,
                 target: str = "cpu"):
    """Run the training pipeline on a training graph; returns (graph, report)."""
    import os
    if verify_each is None:
        verify_each = os.environ.get("CNNC_VERIFY") == "1"
    ctx = PassContext(parse_fuse(fuse), (), verify_each, target=target)
    graph = run_pipeline(graph, TRAINING_PIPELINE, ctx)
    return graph, ctx.report


def describe_pipeline() -> str:
    import sys
    lines = []
    for i, (name, _) in enumerate(INFERENCE_PIPELINE, 1):
        doc = (sys.modules[f"{__name__}.{name}"].__doc__ or "").strip().splitlines()[0]
        lines.append(f"{i}. {doc}")
    return "\n".join(lines)
