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
    training: object = None       # a TrainingProgram when the model trains
    config: object = None         # its TrainConfig

    def source(self) -> str:
        return generate(self.model, self.graph, self.options, self.training)

    def forward_kernels(self) -> list[str]:
        """The kernel functions forward() calls, in order (shared ones repeat)."""
        import ast
        tree = ast.parse(self.source())
        runs_kernels = "forward_device" if self.options.target == "cuda" else "forward_prepared"
        forward = next(f for f in tree.body if isinstance(f, ast.FunctionDef)
                       and f.name == runs_kernels)
        return [n.func.id for n in ast.walk(forward) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id.endswith("_fwd")]

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
          fuse="all", train=None, dtype: str = "float32") -> Compiled:
    """Parse, check and optimize; `train` (a TrainConfig) overrides the file's train block."""
    from . import parse
    from .passes import run_inference, run_training

    if target not in TARGETS:
        raise CnncError(Diagnostic(f"unknown target '{target}' (cpu or cuda)"))
    program = parse(path_or_text)
    chosen = select_model(program, model)
    graph, report = run_inference(chosen.graph, fuse=fuse, target=target)
    options = Options(target=target, fuse=report.fuse_description,
                      source_name=Path(program.file).name if program.file != "<string>" else "",
                      dtype=dtype)
    config = train or program.trains.get(chosen.name)
    training = None
    if config is not None:
        from .codegen.training import TrainingProgram
        from .passes import parse_fuse
        from .train.autodiff import build_eval_graph, build_training_graph
        rules = parse_fuse(fuse)
        tg = build_training_graph(chosen, config.loss, config.optimizer,
                                  fuse_loss="loss" in rules)
        train_graph, _ = run_training(tg.graph, fuse=fuse, target=target)
        eval_graph, _ = run_inference(build_eval_graph(chosen, config.loss), fuse=fuse,
                                      target=target)
        training = TrainingProgram(tg, train_graph, eval_graph, config.loss, fuse, target)
    return Compiled(program, chosen, graph, options, report, training, config)


def compile(path_or_text, target: str = "cpu", *, model: str | None = None, fuse="all",
            loss: str | None = None, optimizer=None, dtype: str = "float32"):
    """Compile a model (a path or the text of a .cnn file) and load it.

    Returns a :class:`~cnnc.runtime.model.CompiledModel`. The generated module is cached
    under $CNNC_CACHE_DIR (with Numba's compiled kernels), keyed by the model, the options,
    the target and the cnnc version, so a second process starts without compiling.
    """
    from .runtime.cache import cache_key, ensure_module, import_module, module_path

    train = _train_override(path_or_text, model, loss, optimizer)
    compiled = lower(path_or_text, model=model, target=target, fuse=fuse, train=train,
                     dtype=dtype)
    if target == "cuda":
        from .runtime import cuda
        cuda.require()                # a GPU or the simulator, before the module loads
        model_class = cuda.CudaCompiledModel
    else:
        from .runtime.model import CompiledModel as model_class
    key = cache_key(source=compiled.model.source, name=compiled.model.name,
                    file=compiled.options.source_name, target=target,
                    fuse=compiled.options.fuse, train=repr(compiled.config), dtype=dtype)
    path = module_path(compiled.model.name, key)
    source = ensure_module(path, compiled.source)
    module = import_module(path, f"cnnc_{compiled.model.name}_{key}")
    if target == "cpu":
        from .runtime.kernel_store import link
        link(module, source)
    return model_class(compiled.model, compiled.graph, module, path, source,
                         compiled.options, compiled.program, compiled.report, compiled.config)


def _train_override(path_or_text, model, loss, optimizer):
    """A TrainConfig from keyword arguments (`loss=`, `optimizer=` like the train block's
    values, e.g. optimizer="adam(learning_rate=0.01)"), or None to use the file's."""
    if loss is None and optimizer is None:
        return None
    from . import parse
    from .train.config import check_train_block
    from .frontend.parser import parse_text
    from .errors import Diagnostics
    program = parse(path_or_text)
    name = select_model(program, model).name
    base = program.trains.get(name)
    text = (f"train {name} {{ loss = {loss or (base.loss if base else 'mse')} "
            f"optimizer = {optimizer or (str(base.optimizer) if base else 'adam')} }}")
    diags = Diagnostics("<arguments>", text.splitlines())
    tree = parse_text(text, diags)
    diags.raise_if_any()
    config = check_train_block(tree.trains[0], diags)
    diags.raise_if_any()
    if base is not None:
        from dataclasses import replace
        config = replace(base, loss=config.loss, optimizer=config.optimizer)
    return config
