"""Measuring a compiled model's step kernel by kernel (`cnnc profile`, model.profile()).

Two modules run the same step on the same random batch, interleaved repeat by repeat
(which goes first alternates): the model's normal module, untouched, and its profiled
variant (cnnc/codegen/instrument.py), whose host code times every kernel call and
shares the normal module's compiled kernels. The normal module's step times are the
reference the kernels' times are checked against: the kernels' medians should add up to
nearly all of the uninstrumented step, the rest being host work (views, workspace
look-ups, parameter packing, optimizer bookkeeping).

The step is `forward_prepared` on parameters prepared once (inference), or with
`train=True` the whole `train_step` -- forward, loss, backward and updates -- on copies
of the model's parameters and a fresh optimizer state (the model itself is not
trained). Two warm-up steps per module go first (they compile or load the kernels).
Unless `repeats` is given, steps repeat until both modules' medians are known to 2%
(their standard error, estimated from the interquartile range; at least 10 repeats), or
for `max_seconds`, or 200 repeats.

FLOPs and bytes are explain's (cnnc/reports/explain.py) for the same kernel groups;
the roofs are measured (runtime/roofs.py, through the target).
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..errors import CnncError, Diagnostic
from ..ir.ops.training import LOSSES
from ..reports.explain import explain, explain_training
from ..reports.profile import HostTime, KernelTime, Layer, Profile
from .kernel_store import seal_compiled

DEFAULT_BATCH = 256
MIN_REPEATS = 10
MAX_REPEATS = 200
STABLE = 0.02             # the medians' relative standard error when repeats stop
WARMUP = 2
PREPARE_SITE = -1         # the profiled module's site of _prepare_train (host work)


def positive(name: str, value) -> int:
    """`value` as a positive integer; a CnncError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CnncError(Diagnostic(f"{name} must be a positive integer, got {value!r}"))
    return int(value)


class _Step:
    """One module's step on its own parameters (copies of the model's)."""

    def __init__(self, model, module, x, y, train: bool):
        self.module, self.x, self.y, self.train = module, x, y, train
        self.params = model._params_for(module)
        if train:
            self.state = module.init_opt_state(self.params)
            self.count = 0
        else:
            self.prepared = module.prepare(self.params)

    def __call__(self) -> int:
        """Runs the step once; its wall time in ns."""
        start = time.perf_counter_ns()
        if self.train:
            self.module.train_step(self.params, self.state, self.x, self.y, self.count)
            self.count += 1
        else:
            self.module.forward_prepared(self.prepared, self.x)
        return time.perf_counter_ns() - start


def _stable(times: list[int]) -> bool:
    """Whether the median is known to STABLE: its standard error, estimated from the
    interquartile range (0.93 IQR / sqrt(n) for a normal sample), is below STABLE of it."""
    if len(times) < MIN_REPEATS:
        return False
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return 0.93 * (q3 - q1) / np.sqrt(len(times)) <= STABLE * median


def _quartiles(values) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(median), float(q1), float(q3)


def _labels(model, batch: int, rng) -> np.ndarray:
    """Random labels the model's loss takes: class indices, or values in [0, 1)."""
    classes = model.output_shape[-1]
    if LOSSES[model.config.loss].needs_distribution:
        return rng.integers(0, classes, size=batch)
    return rng.random((batch,) + model.output_shape, dtype=np.float32)


def measure(model, profiled, batch: int | None = None, train: bool = False,
            repeats: int | None = None, max_seconds: float = 10.0, seed: int = 0,
            remeasure_roofs: bool = False) -> Profile:
    """The profile of `model`'s step; `profiled`: its profiled module."""
    if train:
        model._require_training()
    if batch is None:
        batch = model.config.batch_size if train else DEFAULT_BATCH
    batch = positive("the batch", batch)
    if repeats is not None:
        repeats = positive("repeats", repeats)
    target = model.options.target
    rng = np.random.default_rng(seed)
    x = rng.random((batch,) + model.input_shape, dtype=np.float32)
    y = _labels(model, batch, rng) if train else None
    plain = _Step(model, model.module, x, y, train)
    timed = _Step(model, profiled, x, y, train)
    for _ in range(WARMUP):
        plain()
        timed()
    profiled.profile_events()
    plain_ns: list[int] = []
    timed_ns: list[int] = []
    events: list[list[tuple]] = []
    start = time.perf_counter()
    while True:
        if len(plain_ns) % 2:
            timed_ns.append(timed())
            plain_ns.append(plain())
        else:
            plain_ns.append(plain())
            timed_ns.append(timed())
        events.append(profiled.profile_events())
        n = len(plain_ns)
        if repeats is not None:
            if n >= repeats:
                break
        elif n >= MAX_REPEATS or (_stable(plain_ns) and _stable(timed_ns)) or \
                (n >= 3 and time.perf_counter() - start > max_seconds):
            break
    seal_compiled(profiled)
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else [0.0] * 3
    roofs = target.roofs(remeasure_roofs)
    return _profile(model, profiled, train, batch, roofs, plain_ns, timed_ns, events, load)


def _explanation(model, train: bool):
    fusion = model.options.fusion
    pack = model.options.target.packs_kernels
    if train:
        return explain_training(model.model, model.config, fusion, pack)
    return explain(model.model, fusion, pack)


def _profile(model, profiled, train, batch, roofs, plain_ns, timed_ns, events,
             load) -> Profile:
    hosts = ("train_batch", "apply_updates") if train else ("forward",)
    sites = profiled.PROFILE_SITES
    site_of: dict[tuple, list[int]] = {}
    for index, (_, host, nodes, _, _) in enumerate(sites):
        if host in hosts:
            site_of.setdefault(tuple(nodes), []).append(index)
    exp = _explanation(model, train)
    number_of_site = {}
    for g in exp.groups:
        found = site_of.get(tuple(g.nodes))
        if not found:
            raise RuntimeError(f"kernel [{g.kernel}] ({', '.join(g.nodes)}) is not among "
                               f"the profiled module's kernel calls")
        number_of_site.update({site: g.kernel for site in found})
    repeats = len(timed_ns)
    per_step = {g.kernel: np.zeros(repeats) for g in exp.groups}
    calls = {g.kernel: 0 for g in exp.groups}
    trace = []
    origin = min((e[1] for step in events for e in step if e[0] in number_of_site),
                 default=0)
    prepare_ns = np.zeros(repeats)
    for r, step in enumerate(events):
        for site, begin, duration in step:
            if site == PREPARE_SITE:
                prepare_ns[r] += duration
                continue
            number = number_of_site.get(site)
            if number is None:
                continue
            per_step[number][r] += duration
            calls[number] += 1
            trace.append({"kernel": number, "step": r, "start_us": (begin - origin) / 1e3,
                          "dur_us": duration / 1e3})
    step_ms = float(np.median(timed_ns)) / 1e6
    rows = []
    for g in exp.groups:
        site = sites[site_of[tuple(g.nodes)][0]]
        median, q1, q3 = (v / 1e6 for v in _quartiles(per_step[g.kernel]))
        per_sample = g.bytes_read + g.bytes_written > 0       # a batched kernel
        flops = g.flops * (batch if per_sample else 1)
        moved = (g.bytes_read + g.bytes_written) * batch + g.param_bytes
        seconds = max(median / 1e3, 1e-12)
        gflops, gbs = flops / seconds / 1e9, moved / seconds / 1e9
        intensity = flops / max(1, moved)
        layers = [Layer(name, _line(model.model, name)) for name in site[3]]
        rows.append(KernelTime(
            g.kernel, site[0], site[1], g.ops, g.rule, g.nodes, layers, g.lines,
            round(calls[g.kernel] / repeats, 3), round(median, 6), round(q1, 6),
            round(q3, 6), round(median / step_ms, 5), flops, moved, round(gflops, 3),
            round(gbs, 3), round(intensity, 3),
            "compute" if intensity >= roofs.ridge else "memory",
            round(max(gflops / roofs.peak_gflops, gbs / roofs.bandwidth_gbs), 4)))
    kernel_ms = sum(k.median_ms for k in rows)
    kernels_per_step = sum(per_step.values())
    _, h1, h3 = (v / 1e6 for v in _quartiles(np.asarray(timed_ns) - kernels_per_step))
    host_ms = step_ms - kernel_ms
    plain_ms = float(np.median(plain_ns)) / 1e6
    target = model.options.target
    notes = list(target.profile_notes())
    cpus = os.cpu_count() or 1
    if load[0] > cpus:
        notes.append(f"the load average ({load[0]:.2f}) exceeded the {cpus} CPUs: other "
                     f"processes competed for them, and the times are noisy")
    import numba
    return Profile(
        model.name, str(model.options.fusion), target.name,
        "training step" if train else "forward", batch, repeats, numba.get_num_threads(),
        profiled.PROFILE_TIMER, roofs, rows,
        HostTime(round(host_ms, 6), round(h1, 6), round(h3, 6), round(host_ms / step_ms, 5),
                 round(float(np.median(prepare_ns)) / 1e6, 6)),
        round(step_ms, 6), round(plain_ms, 6), round(kernel_ms, 6),
        round(kernel_ms / plain_ms, 5), load, notes, trace)


def _line(model, layer: str) -> int | None:
    try:
        return model.layer(layer).loc.line
    except KeyError:
        return None
