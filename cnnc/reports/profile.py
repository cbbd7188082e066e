"""`cnnc profile`: the measured time of every kernel, on the roofline, by source line.

The figures (measured by cnnc/runtime/profile.py) are plain dataclasses; this module
renders them as the table, as JSON (the same fields; docs/profile.md), as Chrome trace
events, and side by side for two fusion settings (`--compare`).

Per kernel group (`explain`'s numbering): calls per step, the median and quartiles of
its time per step over the repeats, its share of the profiled step's median, FLOPs and
bytes per step from explain's model (per-sample figures times the batch, plus the
parameters read once), GFLOP/s and GB/s at the median, arithmetic intensity, whether
the measured roofs make it compute- or memory-bound (intensity above or below the ridge
point peak / bandwidth), and its fraction of the roof at its intensity:
achieved / min(peak, intensity x bandwidth), the larger of FLOP/s / peak and
bytes/s / bandwidth. A fraction above 1 means its data came from caches faster than the
stream bandwidth. The host row is the step's median minus the kernels' medians.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

SCHEMA = "cnnc-profile/1"


@dataclass
class Roofs:
    device: str                   # CPU model or GPU name
    threads: int                  # threads the roofs were measured with (0: a GPU)
    peak_gflops: float
    bandwidth_gbs: float
    peak_method: str
    bandwidth_method: str
    cached: bool = False          # read from the cache rather than measured now

    @property
    def ridge(self) -> float:
        """FLOP/B where the two roofs meet."""
        return self.peak_gflops / self.bandwidth_gbs


@dataclass
class Layer:
    name: str
    line: int | None              # its line in the .cnn file (None: no layer of the file)


@dataclass
class KernelTime:
    kernel: int                   # explain's kernel number
    function: str                 # the kernel function of the generated module
    host_function: str            # forward, train_batch or apply_updates
    ops: list[str]
    rule: str                     # the fusion rules that formed it ("" : not fused)
    nodes: list[str]
    layers: list[Layer]
    lines: list[int]
    calls: float                  # per step
    median_ms: float              # per step
    q1_ms: float
    q3_ms: float
    share: float                  # of the profiled step's median
    flops: int                    # per step
    bytes: int                    # per step: activations read and written, parameters
    gflops: float
    gbs: float
    intensity: float              # FLOP/B
    bound: str                    # "compute" or "memory"
    roofline: float               # fraction of the roof at its intensity


@dataclass
class HostTime:
    median_ms: float              # the step's median minus the kernels' medians
    q1_ms: float                  # quartiles of (step - kernels) over the repeats
    q3_ms: float
    share: float
    prepare_ms: float = 0.0       # of it: deriving parameters in the step (_prepare_train)


@dataclass
class Profile:
    model: str
    fuse: str
    target: str
    step: str                     # "forward" or "training step"
    batch: int
    repeats: int
    threads: int
    timer: str                    # how kernel calls were timed
    roofs: Roofs
    kernels: list[KernelTime]
    host: HostTime
    step_ms: float                # median of the profiled step
    uninstrumented_step_ms: float  # median of the normal module's step, interleaved
    kernel_ms: float              # the kernels' medians summed
    agreement: float              # kernel_ms / uninstrumented_step_ms
    load: list[float]             # os.getloadavg() when the measurement ended
    notes: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list, repr=False)
    # every timed kernel call: {"kernel", "step", "start_us", "dur_us"} (trace only)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["events"]
        data["roofs"]["ridge"] = round(self.roofs.ridge, 3)
        return {"schema": SCHEMA, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def trace(self) -> list[dict]:
        """Chrome trace events (JSON array format: Perfetto, chrome://tracing): one
        complete ("X") slice per kernel call, named after its kernel function, with its
        layers and lines as arguments; microseconds from the first call."""
        by_number = {k.kernel: k for k in self.kernels}
        out = []
        for e in self.events:
            k = by_number[e["kernel"]]
            out.append({
                "name": k.function, "cat": "kernel", "ph": "X", "pid": 1,
                "tid": k.host_function, "ts": round(e["start_us"], 3),
                "dur": round(e["dur_us"], 3),
                "args": {"kernel": k.kernel, "layers": [x.name for x in k.layers],
                         "lines": k.lines, "ops": " + ".join(k.ops), "step": e["step"],
                         "fuse": self.fuse}})
        return out


def _layers_text(k: KernelTime) -> str:
    return ", ".join(f"{x.name}:{x.line}" if x.line else x.name for x in k.layers)


def _ms(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def render(p: Profile) -> str:
    r = p.roofs
    source = "cached" if r.cached else "measured now"
    out = [f"profile {p.model}: {p.step}, batch {p.batch}, fusion {p.fuse}; target "
           f"{p.target}, {p.threads} threads; {p.repeats} repeats; kernels timed by "
           f"{p.timer}",
           f"roofs ({source}, {r.device}): peak {r.peak_gflops:.1f} GFLOP/s, bandwidth "
           f"{r.bandwidth_gbs:.1f} GB/s, ridge {r.ridge:.1f} FLOP/B", ""]
    width = max([len("host (step - kernels)")] + [len(k.function) for k in p.kernels])
    head = (f"{'#':>3}  {'kernel':<{width}} {'calls':>5} {'median ms':>10} {'IQR ms':>8} "
            f"{'share':>6} {'MFLOP':>9} {'MB':>8} {'GFLOP/s':>8} {'GB/s':>7} "
            f"{'FLOP/B':>7} {'bound':>7} {'roof':>5}  layers:lines")
    out += [head, "-" * len(head)]
    for k in p.kernels:
        calls = f"{k.calls:g}"
        out.append(
            f"{k.kernel:>3}  {k.function:<{width}} {calls:>5} {_ms(k.median_ms):>10} "
            f"{_ms(k.q3_ms - k.q1_ms):>8} {k.share:>6.1%} {k.flops / 1e6:>9.2f} "
            f"{k.bytes / 1e6:>8.2f} {k.gflops:>8.2f} {k.gbs:>7.2f} {k.intensity:>7.2f} "
            f"{k.bound:>7} {k.roofline:>5.0%}  {_layers_text(k)}")
    h = p.host
    prepare = f"  of it {_ms(h.prepare_ms)} ms deriving parameters (_prepare_train)" \
        if h.prepare_ms else ""
    out.append(f"{'':>3}  {'host (step - kernels)':<{width}} {'':>5} {_ms(h.median_ms):>10} "
               f"{_ms(h.q3_ms - h.q1_ms):>8} {h.share:>6.1%}{prepare}")
    out += ["", f"step {_ms(p.step_ms)} ms profiled, {_ms(p.uninstrumented_step_ms)} ms "
                f"without instrumentation; the kernels' medians add up to "
                f"{_ms(p.kernel_ms)} ms, {p.agreement:.1%} of the uninstrumented step; "
                f"load average {p.load[0]:.2f}"]
    out += [f"note: {n}" for n in p.notes]
    return "\n".join(out)


# --- two fusion settings side by side ---------------------------------------------------

def _blocks(a: Profile, b: Profile) -> list[tuple[list[int], list, list]]:
    """Kernels of both profiles grouped by source lines: kernels sharing a line (in
    either profile) fall in one block. Returns (lines, kernels of a, kernels of b) in
    source order; kernels with no line (loss, updates) form a block by their ops."""
    items = [("a", k) for k in a.kernels] + [("b", k) for k in b.kernels]
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for i, (_, k) in enumerate(items):
        keys = [("line", line) for line in k.lines] or [("ops", " + ".join(sorted(k.ops)))]
        for key in keys:
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    blocks = []
    for members in groups.values():
        lines = sorted({line for i in members for line in items[i][1].lines})
        blocks.append((lines, [items[i][1] for i in members if items[i][0] == "a"],
                       [items[i][1] for i in members if items[i][0] == "b"]))
    blocks.sort(key=lambda blk: (not blk[0], blk[0][:1], [k.kernel for k in blk[1] + blk[2]]))
    return blocks


def compare(a: Profile, b: Profile) -> dict:
    """Both profiles and their kernels side by side per block of source lines."""
    rows = []
    for lines, ka, kb in _blocks(a, b):
        ta = sum(k.median_ms for k in ka)
        tb = sum(k.median_ms for k in kb)
        layers = list(dict.fromkeys(x.name for k in ka + kb for x in k.layers))
        rows.append({"lines": lines, "layers": layers,
                     "a": {"kernels": [k.kernel for k in ka], "ms": round(ta, 6)},
                     "b": {"kernels": [k.kernel for k in kb], "ms": round(tb, 6)},
                     "saved_ms": round(tb - ta, 6)})
    return {"schema": SCHEMA + "-compare", "a": a.to_dict(), "b": b.to_dict(),
            "by_lines": rows}


def render_compare(a: Profile, b: Profile, source_lines: list[str]) -> str:
    out = [render(a), "", render(b), "",
           f"by source line: fusion {a.fuse} (A) against {b.fuse} (B); time per step, "
           f"medians; saved = B - A", ""]
    head = f"{'lines':<9} {'A ms':>9} {'B ms':>9} {'saved ms':>9} {'A/B':>6}  A kernels | B kernels"
    out += [head, "-" * len(head)]
    for row in compare(a, b)["by_lines"]:
        lines = row["lines"]
        where = (f"{lines[0]}" if len(lines) == 1 else f"{lines[0]}-{lines[-1]}") if lines \
            else "-"
        ta, tb = row["a"]["ms"], row["b"]["ms"]
        ratio = f"{ta / tb:.2f}" if tb > 0 else "-"
        out.append(f"{where:<9} {_ms(ta):>9} {_ms(tb):>9} {_ms(tb - ta):>9} {ratio:>6}  "
                   f"{' '.join(f'[{i}]' for i in row['a']['kernels']) or '-'} | "
                   f"{' '.join(f'[{i}]' for i in row['b']['kernels']) or '-'}")
        for line in lines:
            text = source_lines[line - 1].split("#")[0].strip() \
                if 0 < line <= len(source_lines) else ""
            out.append(f"{'':<9} line {line}: {text}")
        if not lines:
            out.append(f"{'':<9} {', '.join(row['layers'])} (no source line)")
    ta, tb = a.step_ms, b.step_ms
    out += ["", f"step: A {_ms(ta)} ms, B {_ms(tb)} ms profiled "
                f"({_ms(a.uninstrumented_step_ms)} and {_ms(b.uninstrumented_step_ms)} ms "
                f"without instrumentation): A takes {ta / tb:.2f}x the time of B"]
    return "\n".join(out)
