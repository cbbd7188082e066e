"""Assembling the standalone module: kernels, host functions, parameters, main.

The module imports only numpy and numba. Kernels come from every host function (forward,
and the training and evaluation steps when present), are deduplicated, and compile
lazily: a module used only for inference never compiles its training kernels.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from ..frontend.program import Model
from ..ir import ops
from ..ir.graph import Graph
from ..version import __version__
from . import kernels as K
from .host import is_prepare, plan_host, steps_of
from .instrument import Instrument
from .naming import Namer, safe_comment
from .render import render_code


@dataclass(frozen=True)
class Options:
    target: object                # the Target
    fusion: object                # the Fusion (passes/options.py); the header spells it
    source_name: str = ""
    dtype: str = "float32"        # float64 only for tests (finite differences)
    profile: bool = False         # the profiled variant: kernel calls timed (instrument.py)


@dataclass
class GeneratedModule:
    """What the code generator produced for one model."""

    source: str                                    # the module's text
    kernels: dict[str, str] = field(default_factory=dict)   # kernel function -> source
    preamble: str = ""                             # what every kernel's source needs above it
    forward_kernels: list[str] = field(default_factory=list)   # forward()'s calls, in order
    training_kernels: list[str] = field(default_factory=list)  # a training step's calls


def generate(model: Model, graph: Graph, options: Options, training=None) -> GeneratedModule:
    """The standalone module of `model` (`graph`: its inference graph after the passes;
    `training`: the training and evaluation programs, when the module trains)."""
    target = options.target
    steps = steps_of(graph, target)
    output = graph.outputs[0]
    forward_kernels = [s.kernel for s in steps if s.kind == "kernel"]
    kernels = forward_kernels + (training.kernels if training is not None else [])
    namer = Namer(target.module_names)
    sources = dedupe(kernels, target, namer)   # names every kernel, before host code refers to them
    preparer = target.prepare(namer)          # parameter-only ops, the target's way
    prepare_of = preparer.lines
    bindings = {graph.inputs[0]: "x"}
    bindings.update({p.name: f"params[{p.name!r}]" for p in graph.params})
    bindings.update({n.output: f"params[{n.output!r}]" for n in graph.nodes if is_prepare(n)})
    instrument = Instrument() if options.profile else None
    forward = plan_host(graph, steps, "forward", bindings, target, fresh={output},
                        taken={"params", "x", "y"}, instrument=instrument)
    forward.lines.append(f"return {forward.var[output]}")
    functions = [forward]
    prepare = [line for s in steps if s.kind == "prepare"
               for line in prepare_of(graph, s.node)]
    extra = {}
    if training is not None:
        functions += training.plan(instrument)
        extra = dict(optimizer=dict(training.training.hyper, rule=training.training.rule),
                     label_shape=tuple(training.training.labels_shape),
                     trainable_size=sum(p.size for p in training.trainable),
                     stats_size=sum(2 * training.train_graph.type(mean).numel
                                    for mean, *_ in training.training.bn_stats),
                     # a training step derives its parameters anew every step
                     prepare_train=training.prepare_lines(
                         training.train_graph, training.train_steps,
                         lambda g, node: prepare_of(g, node, every_step=True)),
                     prepare_eval=training.prepare_lines(training.eval_graph,
                                                         training.eval_steps, prepare_of))
    kernel_sources = {k.name: source for k, source in sources}
    kernel_sources.update(preparer.named_sources)
    all_sources = [source for _, source in sources] + preparer.sources
    forward_rows = _header_rows(forward_kernels)
    shown = {name for name, *_ in forward_rows}
    training_rows = [row for row in _header_rows(training.kernels if training else [])
                     if row[0] not in shown]
    params = [(p.name, p.shape, p.init, p.trainable) for p in graph.params]
    source = render_code(
        f"{target.templates}/module.py.j2", version=__version__, model=model,
        target=target.name, fusion=str(options.fusion),
        source_lines=[safe_comment(line) for line in model.source.splitlines()],
        source_name=safe_comment(options.source_name), forward_kernels=forward_rows,
        training_kernels=training_rows, kernels=all_sources, params=params, forward=forward,
        functions=functions, prepare=prepare, dtype=options.dtype, training=training,
        input_shape=tuple(model.input_type.shape), output_shape=tuple(graph.type(output).shape),
        repr=repr, profile_sites=instrument.table() if instrument else None,
        vector_bits=getattr(target, "vector_bits", None), **extra)
    batch = training.batch_steps + training.update_steps if training is not None else []
    return GeneratedModule(
        source, kernel_sources,
        render_code(f"{target.templates}/preamble.j2", dtype=options.dtype),
        [k.name for k in forward_kernels],
        [s.kernel.name for s in batch if s.kind == "kernel"])


def _header_rows(kernels) -> list[tuple[str, str, str, str]]:
    """(function, ops, fusion rules, layers) of each distinct kernel function, in order."""
    seen = set()
    rows = []
    for k in kernels:
        if k.name in seen:
            continue
        seen.add(k.name)
        rows.append((k.name, _ops_text(k.group.nodes), k.group.node.rule or "",
                     textwrap.shorten(", ".join(dict.fromkeys(n.layer for n in k.group.nodes)),
                                      70, placeholder=", ...")))
    return rows


def _ops_text(nodes) -> str:
    names = [n.op for n in nodes if not ops.get(n.op).view]
    if len(names) > 3 and len(set(names)) == 1:
        return f"{names[0]} x{len(names)}"
    return " + ".join(names)


def render_kernel(kernel: K.Kernel, target) -> str:
    return render_code(f"{target.templates}/{kernel.template}.j2",
                       k=kernel.context).rstrip() + "\n"


_DOCSTRING = re.compile(r'"""(.*?)"""', re.DOTALL)


def dedupe(kernels: list[K.Kernel], target, namer: Namer) -> list[tuple[K.Kernel, str]]:
    """Render the kernels; groups whose code is the same share one function.

    Kernels read sizes from their arrays, so layers with the same ops and window geometry
    (e.g. every 3x3/1 `same` conv2d + bias + relu) compile once. Functions are named after
    the ops they contain; the docstring lists every layer group a shared kernel computes,
    each once (inference and evaluation run the same groups). Returns (the first kernel
    of each function, its source).
    """
    unique: dict[str, list[K.Kernel]] = {}
    for kernel in kernels:
        body = _DOCSTRING.sub("", render_kernel(kernel, target), count=1)
        unique.setdefault(body, []).append(kernel)
    out = []
    for users in unique.values():
        first = users[0]
        stem, suffix = first.group.function_name()
        name = namer(stem, suffix)
        for kernel in users:
            kernel.name = name
            kernel.context.name = name
        uses = list(dict.fromkeys(
            ", ".join(dict.fromkeys(n.layer for n in k.group.nodes)) + f" ({k.context.shapes})"
            for k in users))
        if len(uses) > 1:
            first.context.doc = first.context.doc + [""] + textwrap.wrap(
                "Shared by the kernel groups of layers " + "; ".join(uses) + ".", 88)
        out.append((first, render_kernel(first, target)))
    return out
