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

from .ir import ops
from .ir.graph import Graph, Node
from .program import Model


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
    fuse: str
    groups: list[GroupRow]
    refusals: list[dict]
    kernels_before: int
    kernels_after: int
    intermediate_before: int
    intermediate_after: int
    flops: int
    notes: list[str]
    cuda_kernels: list[dict] = field(default_factory=list)   # with --target cuda

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
    from .codegen.host import is_prepare
    return [n for n in graph.nodes if not is_prepare(n)
            and not (ops.get(n.op).view and not n.body)]


def explain_training(model: Model, config, fuse="all") -> Explanation:
    """The same report for the training step: forward, loss, backward and updates."""
    from .passes import parse_fuse, run_training
    from .train.autodiff import build_training_graph
    rules = parse_fuse(fuse)
    tg = build_training_graph(model, config.loss, config.optimizer, fuse_loss="loss" in rules)
    graph, report = run_training(tg.graph, fuse=fuse)
    base_tg = build_training_graph(model, config.loss, config.optimizer, fuse_loss=False)
    baseline, _ = run_training(base_tg.graph, fuse="none")
    merged = graph.replace(values={**baseline.values, **tg.graph.values, **graph.values})
    rows = [_row(merged, i + 1, n) for i, n in enumerate(_kernel_nodes_any(graph))]
    refusals = [{"rule": d.rule, "node": d.node, "group": d.group, "reason": d.reason}
                for d in report.refusals]
    return Explanation(
        model.name + " (training step)", report.fuse_description, rows, refusals,
        len(_kernel_nodes_any(baseline)), len(rows), _intermediate(baseline),
        _intermediate(merged), sum(r.flops for r in rows),
        [f"{p}: {t}" for p, t in report.notes])


def explain(model: Model, fuse="all", disable=()) -> Explanation:
    from .passes import run_inference
    graph, report = run_inference(model.graph, fuse=fuse, disable=disable)
    baseline, _ = run_inference(model.graph, fuse="none", disable=disable)
    # Values inside a fused node have no entry in the fused graph: take their types from
    # the unfused graph of the same pipeline.
    merged = graph.replace(values={**baseline.values, **graph.values})
    rows = [_row(merged, i + 1, n) for i, n in enumerate(_kernel_nodes(graph))]
    refusals = [{"rule": d.rule, "node": d.node, "group": d.group, "reason": d.reason}
                for d in report.refusals]
    return Explanation(
        model.name, report.fuse_description, rows, refusals,
        len(_kernel_nodes(baseline)), len(rows), _intermediate(baseline),
        _intermediate(merged), sum(r.flops for r in rows),
        [f"{p}: {t}" for p, t in report.notes])


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def render(exp: Explanation, source_lines: list[str]) -> str:
    out = [f"model {exp.model}: fusion {exp.fuse}; {exp.kernels_after} kernels "
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
    out += ["", f"kernels: {exp.kernels_before} -> {exp.kernels_after}; intermediate bytes "
                f"written per sample: {_size(exp.intermediate_before)} -> "
                f"{_size(exp.intermediate_after)} ({exp.reduction:.1%} less)"]
    if exp.cuda_kernels:
        first = exp.cuda_kernels[0]
        out += ["", f"CUDA kernels of the module (compute capability {first['cc']}, "
                    f"ptxas -arch={first['arch']}):",
                f"    {'kernel':<52} {'registers':>9} {'shared':>9} {'stack':>6} {'spills':>7}"]
        for k in exp.cuda_kernels:
            out.append(f"    {k['name']:<52} {k['registers']:>9} {_size(k['shared_bytes']):>9} "
                       f"{k['stack_bytes']:>6} {k['spill_stores'] + k['spill_loads']:>7}")
    return "\n".join(out)


def cuda_resources(path, model: str, fuse, cc: tuple[int, int]) -> list[dict]:
    """Every CUDA kernel of the model's module (training kernels too when it trains) with
    its registers per thread, static shared memory, stack and spilled bytes, as ptxas
    reports them for the PTX numba-cuda compiles for `cc`."""
    from .compiler import lower
    from .runtime import ptx
    compiled = lower(path, model=model, target="cuda", fuse=fuse)
    module = ptx.load_generated(compiled.source(), compiled.model.name)
    arch = f"sm_{cc[0]}{cc[1]}"
    rows = []
    for kernel in ptx.compile_module(module, ccs=(cc,)):
        info = ptx.ptxas(kernel.ptx, arch)
        rows.append({"name": kernel.name, "cc": f"{cc[0]}.{cc[1]}", "arch": arch,
                     **asdict(info)})
    return rows
