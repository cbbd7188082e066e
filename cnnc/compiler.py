"""The compile driver: source -> checked model -> passes -> generated module -> loaded.

Options are read once here -- the target (`targets.get`), the fusion rules
(`Fusion.parse`) -- and passed on as values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from . import targets
from .codegen.module import GeneratedModule, Options, generate
from .codegen.training import TrainingProgram
from .errors import CnncError, Diagnostic, Diagnostics, did_you_mean
from .frontend import parse
from .frontend.program import Model, Program, TrainConfig
from .ir import ops
from .passes import run_inference, run_training
from .passes.options import Fusion
from .train.autodiff import build_eval_graph, build_training_graph


@dataclass
class Compiled:
    """What compiling one model produced, before it is loaded."""

    program: Program
    model: Model
    graph: object                 # the inference graph after the passes
    options: Options
    report: object = None
    training: TrainingProgram | None = None    # when the model trains
    config: TrainConfig | None = None          # its train block

    @cached_property
    def generated(self) -> GeneratedModule:
        return generate(self.model, self.graph, self.options, self.training)

    def generate(self) -> GeneratedModule:
        return self.generated

    def source(self) -> str:
        return self.generated.source

    def forward_kernels(self) -> list[str]:
        """The kernel functions forward() calls, in order (shared ones repeat)."""
        return self.generated.forward_kernels

    def kernel_groups(self) -> int:
        """How many kernels forward() runs (fused groups count once)."""
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


def lower(path_or_text, *, model: str | None = None, target="cpu", fuse="all",
          train: TrainConfig | None = None, dtype: str = "float32") -> Compiled:
    """Parse, check and optimize; `train` overrides the file's train block."""
    target = targets.get(target)
    fusion = Fusion.parse(fuse)
    program = parse(path_or_text)
    chosen = select_model(program, model)
    return lower_model(program, chosen, target, fusion, train, dtype)


def lower_model(program: Program, chosen: Model, target, fusion: Fusion,
                train: TrainConfig | None = None, dtype: str = "float32",
                profile: bool = False) -> Compiled:
    """lower() of a model already checked; `profile`: the profiled variant."""
    graph, report = run_inference(chosen.graph, fusion, target.packs_kernels)
    options = Options(target, fusion,
                      Path(program.file).name if program.file != "<string>" else "", dtype,
                      profile)
    config = train or program.trains.get(chosen.name)
    training = None
    if config is not None:
        tg = build_training_graph(chosen, config.loss, config.optimizer)
        train_graph, _ = run_training(tg.graph, fusion, target.packs_kernels)
        eval_graph, _ = run_inference(build_eval_graph(chosen, config.loss), fusion,
                                      target.packs_kernels)
        training = TrainingProgram(tg, train_graph, eval_graph, config.loss, target)
    return Compiled(program, chosen, graph, options, report, training, config)


def compile(path_or_text, target="cpu", *, model: str | None = None, fuse="all",
            loss: str | None = None, optimizer=None, dtype: str = "float32"):
    """Compile a model (a path or the text of a .cnn file) and load it.

    Returns a :class:`~cnnc.runtime.model.CompiledModel`. The generated module is cached
    under $CNNC_CACHE_DIR (with Numba's compiled kernels), keyed by the model, the target,
    the fusion rules (their canonical spelling), the train block and the compiler itself,
    so a second process starts without compiling.
    """
    target = targets.get(target)
    compiled = lowered(path_or_text, target, model, fuse, loss, optimizer, dtype)
    target.require()              # what running needs (a GPU or the simulator), said now
    module, path, source = _load(compiled)
    loaded = target.model_class(compiled.model, compiled.graph, module, path, source,
                                compiled.options, compiled.program, compiled.report,
                                compiled.config)
    loaded._load_profiled = lambda: profiled_module(loaded)   # model.profile() builds it
    return loaded


def lowered(path_or_text, target, model, fuse, loss, optimizer, dtype) -> Compiled:
    """What compile() lowers, before it loads: also what a model loaded straight from
    the cache (runtime/direct.py) lowers when asked for its graph."""
    train = _train_override(path_or_text, model, loss, optimizer)
    return lower(path_or_text, model=model, target=target, fuse=fuse, train=train,
                 dtype=dtype)


def _load(compiled: Compiled):
    """(module, path, source) of a lowered model, through the module cache."""
    from .runtime.cache import cache_key, ensure_module, module_path

    options = compiled.options
    # The profiled variant has a key of its own: it never replaces the normal module.
    variant = {"variant": "profile"} if options.profile else {}
    key = cache_key(source=compiled.model.source, name=compiled.model.name,
                    file=options.source_name, target=options.target.name,
                    fuse=str(options.fusion), train=repr(compiled.config),
                    dtype=options.dtype, **variant)
    path = module_path(compiled.model.name, key)
    source = ensure_module(path, compiled.source)
    module = options.target.load(path, f"cnnc_{compiled.model.name}_{key}", source,
                                 compiled.generate)
    return module, path, source


def profiled_module(model):
    """The profiled variant of a compiled model's module (cnnc/codegen/instrument.py):
    the same kernels (shared with the normal module), every kernel call timed. Lowered
    again from the model's checked IR with its options and train block."""
    compiled = lower_model(model.program, model.model, model.options.target,
                           model.options.fusion, model.config, model.options.dtype,
                           profile=True)
    return _load(compiled)[0]


def _train_override(path_or_text, model, loss, optimizer) -> TrainConfig | None:
    """A TrainConfig from keyword arguments (`loss=`, `optimizer=` like the train block's
    values, e.g. optimizer="adam(learning_rate=0.01)"), or None to use the file's."""
    if loss is None and optimizer is None:
        return None
    from .frontend.parser import parse_text
    from .frontend.train_block import check_train_block
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
        config = replace(base, loss=config.loss, optimizer=config.optimizer)
    return config
