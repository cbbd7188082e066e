"""Assembling the standalone module: kernels, host functions, parameters, main.

The module imports only numpy and numba. Kernels come from every host function (forward,
and the training and evaluation steps when present), are deduplicated, and compile
lazily: a module used only for inference never compiles its training kernels.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from .. import __version__
from ..ir import ops
from ..ir.graph import Graph
from ..program import Model
from . import cuda
from . import kernels as K
from .host import is_prepare, plan_host, prepare_lines, steps_of
from .naming import Namer, safe_comment
from .render import render_code


@dataclass
class Options:
    target: str = "cpu"
    fuse: str = "all"            # a description for the header
    source_name: str = ""
    dtype: str = "float32"       # float64 only for tests (finite differences)


def generate(model: Model, graph: Graph, options: Options, training=None) -> str:
    """The standalone module of `model` (`graph`: its inference graph after the passes;
    `training`: the training and evaluation programs, when the module trains)."""
    target = options.target
    steps = steps_of(graph, target)
    output = graph.outputs[0]
    kernels = [s.kernel for s in steps if s.kind == "kernel"]
    if training is not None:
        kernels += training.kernels
    namer = Namer(RESERVED_NAMES)
    sources = dedupe(kernels, target, namer)   # names every kernel, before host code refers to them
    prepare_of = prepare_lines
    if target == "cuda":
        device_prepare = cuda.PrepareKernels(namer)
        prepare_of = device_prepare.lines
    bindings = {graph.inputs[0]: "x"}
    bindings.update({p.name: f"params[{p.name!r}]" for p in graph.params})
    bindings.update({n.output: f"params[{n.output!r}]" for n in graph.nodes if is_prepare(n)})
    forward = plan_host(graph, steps, "forward", bindings, fresh={output},
                        taken={"params", "x", "y"}, target=target)
    forward.lines.append(f"return {forward.var[output]}")
    functions = [forward]
    prepare = [line for s in steps if s.kind == "prepare"
               for line in prepare_of(graph, s.node)]
    extra = {}
    if training is not None:
        functions += training.plan()
        extra = dict(optimizer=dict(training.training.hyper, rule=training.training.rule),
                     label_shape=tuple(training.training.labels_shape),
                     trainable_size=sum(p.size for p in training.trainable),
                     prepare_train=training.prepare_lines(training.train_graph,
                                                          training.train_steps, prepare_of),
                     prepare_eval=training.prepare_lines(training.eval_graph,
                                                         training.eval_steps, prepare_of))
    if target == "cuda":
        sources += device_prepare.sources
    seen = set()
    header_kernels = []
    for k in kernels:
        if k.name in seen:
            continue
        seen.add(k.name)
        header_kernels.append((k.name, _ops_text(k.group.nodes),
                               k.group.node.rule or "", textwrap.shorten(", ".join(
                                   dict.fromkeys(n.layer for n in k.group.nodes)), 70,
                                   placeholder=", ...")))
    params = [(p.name, p.shape, p.init, p.trainable) for p in graph.params]
    return render_code(
        f"{target}/module.py.j2", version=__version__, model=model, options=options,
        source_lines=[safe_comment(line) for line in model.source.splitlines()],
        source_name=safe_comment(options.source_name), header_kernels=header_kernels,
        kernels=sources, params=params, forward=forward, functions=functions,
        prepare=prepare, dtype=options.dtype, training=training,
        input_shape=tuple(model.input_type.shape), output_shape=tuple(graph.type(output).shape),
        repr=repr, **extra)


# Module-level names of the generated module that kernel functions must not take.
RESERVED_NAMES = frozenset({
    "forward", "forward_prepared", "forward_device", "prepare", "init_params", "np", "math",
    "cuda", "blocks", "split_k", "scratch", "to_device", "to_host", "DeviceParams",
    "param_views", "on_device", "as_device", "device_input", "device_params", "device_zeros",
    "view"})


def _ops_text(nodes) -> str:
    names = [n.op for n in nodes if not ops.get(n.op).view]
    if len(names) > 3 and len(set(names)) == 1:
        return f"{names[0]} x{len(names)}"
    return " + ".join(names)


def K_render(kernel: K.Kernel, target: str = "cpu") -> str:
    return render_code(f"{target}/{kernel.template}.j2", k=kernel.context).rstrip() + "\n"


_DOCSTRING = re.compile(r'"""(.*?)"""', re.DOTALL)


def dedupe(kernels: list[K.Kernel], target: str = "cpu", namer: Namer | None = None) -> list[str]:
    """Render the kernels; groups whose code is the same share one function.

    Kernels read sizes from their arrays, so layers with the same ops and window geometry
    (e.g. every 3x3/1 `same` conv2d + bias + relu) compile once. Functions are named after
    the ops they contain; the docstring lists every layer a shared kernel computes.
    """
    unique: dict[str, list[K.Kernel]] = {}
    for kernel in kernels:
        body = _DOCSTRING.sub("", K_render(kernel, target), count=1)
        unique.setdefault(body, []).append(kernel)
    namer = namer or Namer(RESERVED_NAMES)
    sources = []
    for users in unique.values():
        first = users[0]
        stem, suffix = first.group.function_name()
        name = namer(stem, suffix)
        for kernel in users:
            kernel.name = name
            kernel.context.name = name
        if len(users) > 1:
            first.context.doc = first.context.doc + [""] + textwrap.wrap(
                "Shared by the kernel groups of layers " + "; ".join(
                    ", ".join(dict.fromkeys(n.layer for n in k.group.nodes)) +
                    f" ({_shapes(k)})" for k in users) + ".", 88)
        sources.append(K_render(first, target))
    return sources


def _shapes(kernel: K.Kernel) -> str:
    return kernel.context.shapes
