"""The compile driver: source -> checked model -> passes -> generated module -> loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .codegen.module import Options, generate
from .errors import CnncError, Diagnostic
from .ir.attrs import did_you_mean
from .program import Model, Program

TARGETS = ("cpu", "cuda")


@dataclass
class Compiled:
    """What compiling one model produced, before it is loaded."""

    program: Program
    model: Model
    graph: object
    options: Options
    report: object = None

    def source(self) -> str:
        return generate(self.model, self.graph, self.options)

    def kernel_groups(self) -> int:
        """How many kernels forward() runs (fused groups count once)."""
        from .ir import ops
        return sum(1 for n in self.graph.nodes if self.graph.type(n.outputs[0]).batched
                   and not (ops.get(n.op).view and not n.body))


def select_model(program: Program, name: str | None) -> Model:
    if name is None:
        return program.model()
    if name not in program.models:
        raise CnncError(Diagnostic(f"no model named '{name}'", program.file,
                                   hint=did_you_mean(name, program.models) or
                                   "models: " + ", ".join(program.models)))
    return program.models[name]


def lower(path_or_text, *, model: str | None = None, target: str = "cpu",
          fuse="all") -> Compiled:
    from . import parse
    from .passes import run_inference

    if target not in TARGETS:
        raise CnncError(Diagnostic(f"unknown target '{target}' (cpu or cuda)"))
    if target == "cuda":
        from .errors import CnncRuntimeError
        raise CnncRuntimeError("the cuda target is not available in this version of cnnc")
    program = parse(path_or_text)
    chosen = select_model(program, model)
    graph, report = run_inference(chosen.graph, fuse=fuse)
    options = Options(target=target, fuse=report.fuse_description,
                      source_name=Path(program.file).name if program.file != "<string>" else "")
    return Compiled(program, chosen, graph, options, report)


def compile(path_or_text, target: str = "cpu", *, model: str | None = None, fuse="all"):
    """Compile a model (a path or the text of a .cnn file) and load it.

    Returns a :class:`~cnnc.runtime.model.CompiledModel`. The generated module is cached
    under $CNNC_CACHE_DIR (with Numba's compiled kernels), keyed by the model, the options,
    the target and the cnnc version, so a second process starts without compiling.
    """
    from .runtime.cache import cache_key, import_module, module_path
    from .runtime.model import CompiledModel

    compiled = lower(path_or_text, model=model, target=target, fuse=fuse)
    key = cache_key(source=compiled.model.source, name=compiled.model.name,
                    file=compiled.options.source_name, target=target,
                    fuse=compiled.options.fuse)
    path = module_path(compiled.model.name, key)
    from .runtime.cache import ensure_module
    source = ensure_module(path, compiled.source)
    module = import_module(path, f"cnnc_{compiled.model.name}_{key}")
    from .runtime.kernel_store import link
    link(module, source)
    return CompiledModel(compiled.model, compiled.graph, module, path, source,
                         compiled.options, compiled.program, compiled.report)
