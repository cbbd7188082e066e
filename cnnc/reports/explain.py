"""`cnnc explain`: what fused, why not, and what it saves.

For each kernel group: the IR nodes it holds, the rule that formed it, FLOPs and bytes
read and written per sample, arithmetic intensity, the intermediate tensors it no
longer writes and the bytes that saves per sample, and the source lines it came from.
Then every refused fusion with its reason, and totals against the unfused baseline.

Accounting (per sample, float32 activations only; parameters are read once per batch
and listed apart): a kernel reads its external activation inputs and writes its output;
a view (flatten) moves nothing. "Intermediate bytes" are the bytes kernels write other
than the model's output. Arithmetic intensity is FLOPs / (bytes read + written).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..codegen.host import is_prepare
from ..frontend.program import Model
from ..ir import ops
from ..ir.graph import Graph, Node, format_graph
from ..passes import run_inference, run_training
from ..passes.options import NONE, Fusion
from ..train.autodiff import build_training_graph


@dataclass
class GroupRow:
    kernel: int
    nodes: list[str]
    ops: list[str]
    rule: str
    flops: int
    bytes_read: int
    bytes_written: int
    param_bytes: int
    intensity: float
    not_written: list[dict] = field(default_factory=list)   # {"value", "bytes"}
    bytes_saved: int = 0
    lines: list[int] = field(default_factory=list)


@dataclass
class Explanation:
    model: str
    fuse: str                    # the fusion rules' canonical spelling (and passes off)
    groups: list[GroupRow]
    refusals: list[dict]
    kernels_before: int
    kernels_after: int
    intermediate_before: int
    intermediate_after: int
    flops: int
    notes: list[str]
    kernel_resources: list[dict] = field(default_factory=list)
    # with --target cuda: each kernel's registers, shared memory, stack and spills
    graphs: list[dict] = field(default_factory=list)
    # with --dump-ir: {"after": pass, "ir": the graph's listing} after each pass

    @property
    def reduction(self) -> float:
        if not self.intermediate_before:
            return 0.0
        return 1 - self.intermediate_after / self.intermediate_before

    def to_json(self) -> str:
        data = asdict(self)
        data["intermediate_reduction"] = round(self.reduction, 4)
        return json.dumps(data, indent=2)


def _kernel_nodes(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if graph.type(n.outputs[0]).batched
            and not (ops.get(n.op).view and not n.body)]


def _bytes(graph: Graph, value: str) -> int:
    """Bytes per sample of a batched value (unbatched values -- parameters, gradients,
    batch statistics -- are not per-sample traffic and count 0 here)."""
    t = graph.type(value)
    return t.nbytes if t.batched else 0


def _row(graph: Graph, index: int, node: Node) -> GroupRow:
    body = node.body or (node,)
    reads = [v for v in node.inputs if v in graph.values and graph.type(v).batched]
    params = [v for v in node.inputs if v in graph.values and not graph.type(v).batched]
    flops = sum(ops.get(m.op).flops(m.attrs, [graph.type(v) if v in graph.values else None
                                              for v in m.inputs], graph.type(m.outputs[0]))
                for m in body)
    read = sum(_bytes(graph, v) for v in reads)
    written = sum(_bytes(graph, v) for v in node.outputs)
    hidden = [out for m in body for out in m.outputs if out not in node.outputs]
    not_written = [{"value": v, "bytes": _bytes(graph, v)} for v in hidden]
    lines = sorted({m.loc.line for m in body if m.loc is not None})
    return GroupRow(index, [m.name for m in body], [m.op for m in body], node.rule or "",
                    flops, read, written, sum(graph.type(v).nbytes for v in params),
                    round(flops / max(1, read + written), 3), not_written,
                    sum(v["bytes"] for v in not_written), lines)


def _intermediate(graph: Graph) -> int:
    final = set(graph.outputs)
    return sum(_bytes(graph, v) for n in _kernel_nodes(graph) for v in n.outputs
               if v not in final)


def _kernel_nodes_any(graph: Graph) -> list[Node]:
    """Kernels of a graph, unbatched ones (gradient reductions, updates) included."""
    return [n for n in graph.nodes if not is_prepare(n)
            and not (ops.get(n.op).view and not n.body)]


def explain_training(model: Model, config, fuse="all", pack: bool = True,
                     keep_graphs: bool = False) -> Explanation:
    """The same report for the training step: forward, loss, backward and updates."""
    fusion = Fusion.parse(fuse)
    tg = build_training_graph(model, config.loss, config.optimizer)
    graph, report = run_training(tg.graph, fusion, pack, keep_graphs=keep_graphs)
    baseline, _ = run_training(tg.graph, NONE, pack)
    merged = graph.replace(values={**baseline.values, **tg.graph.values, **graph.values})
    rows = [_row(merged, i + 1, n) for i, n in enumerate(_kernel_nodes_any(graph))]
    refusals = [{"rule": d.rule, "node": d.node, "group": d.group, "reason": d.reason}
                for d in report.refusals]
    return Explanation(
        model.name + " (training step)", str(fusion), rows, refusals,
        len(_kernel_nodes_any(baseline)), len(rows), _intermediate(baseline),
        _intermediate(merged), sum(r.flops for r in rows),
        [f"{p}: {t}" for p, t in report.notes], graphs=_listings(report))


def explain(model: Model, fuse="all", pack: bool = True, disable=(),
            keep_graphs: bool = False) -> Explanation:
    """What fusing `model` with the rules `fuse` (a Fusion, or as Fusion.parse reads it)
    does, against the unfused baseline; `pack`: the target packs kernels."""
    fusion = Fusion.parse(fuse)
    graph, report = run_inference(model.graph, fusion, pack, disable, keep_graphs=keep_graphs)
    baseline, _ = run_inference(model.graph, NONE, pack, disable)
    # Values inside a fused node have no entry in the fused graph: take their types from
    # the unfused graph of the same pipeline.
    merged = graph.replace(values={**baseline.values, **graph.values})
    rows = [_row(merged, i + 1, n) for i, n in enumerate(_kernel_nodes(graph))]
    refusals = [{"rule": d.rule, "node": d.node, "group": d.group, "reason": d.reason}
                for d in report.refusals]
    passes_off = f" (passes off: {', '.join(disable)})" if disable else ""
    return Explanation(
        model.name, str(fusion) + passes_off, rows, refusals,
        len(_kernel_nodes(baseline)), len(rows), _intermediate(baseline),
        _intermediate(merged), sum(r.flops for r in rows),
        [f"{p}: {t}" for p, t in report.notes], graphs=_listings(report))


def _listings(report) -> list[dict]:
    return [{"after": name, "ir": format_graph(graph)} for name, graph in report.graphs]


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def render(exp: Explanation, source_lines: list[str]) -> str:
    out = [line for g in exp.graphs for line in (f"--- IR after {g['after']}", g["ir"], "")]
    out += [f"model {exp.model}: fusion {exp.fuse}; {exp.kernels_after} kernels "
           f"(unfused: {exp.kernels_before}); per sample: {exp.flops:,} FLOPs", ""]
    for g in exp.groups:
        ops_text = " + ".join(g.ops)
        out.append(f"[{g.kernel}] {ops_text}" + (f"   rule: {g.rule}" if g.rule else
                                                   "   (not fused)"))
        out.append(f"    nodes: {', '.join(g.nodes)}")
        out.append(f"    per sample: {g.flops:,} FLOPs, reads {_size(g.bytes_read)}, writes "
                   f"{_size(g.bytes_written)}, intensity {g.intensity:.2f} FLOP/B; "
                   f"parameters {_size(g.param_bytes)} per batch")
        if g.not_written:
            out.append("    not written: " + ", ".join(
                f"{v['value']} ({_size(v['bytes'])})" for v in g.not_written)
                + f" -> saves {_size(g.bytes_saved)} per sample")
        for line in g.lines:
            text = source_lines[line - 1].strip() if 0 < line <= len(source_lines) else ""
            out.append(f"    line {line}: {text}")
    if exp.refusals:
        out += ["", "refused:"]
        for r in exp.refusals:
            into = f" into the group of '{r['group']}'" if r["group"] else ""
            out.append(f"    {r['rule']}: '{r['node']}'{into}: {r['reason']}")
    if exp.notes:
        out += ["", "passes:"] + [f"    {note}" for note in exp.notes]
    out += ["", f"kernels: {exp.kernels_before} -> {exp.kernels_after}; intermediate bytes "
                f"written per sample: {_size(exp.intermediate_before)} -> "
                f"{_size(exp.intermediate_after)} ({exp.reduction:.1%} less)"]
    if exp.kernel_resources:
        first = exp.kernel_resources[0]
        out += ["", f"CUDA kernels of the module (compute capability {first['cc']}, "
                    f"ptxas -arch={first['arch']}):",
                f"    {'kernel':<52} {'registers':>9} {'shared':>9} {'stack':>6} {'spills':>7}"]
        for k in exp.kernel_resources:
            out.append(f"    {k['name']:<52} {k['registers']:>9} {_size(k['shared_bytes']):>9} "
                       f"{k['stack_bytes']:>6} {k['spill_stores'] + k['spill_loads']:>7}")
    return "\n".join(out)

