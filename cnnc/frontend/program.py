"""What checking a .cnn file produces: a :class:`Program` of models and train configs."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Loc
from ..ir.graph import Graph, Param, TensorType


@dataclass(frozen=True)
class OptimizerConfig:
    """An optimizer of the table (cnnc.ir.ops.training.OPTIMIZERS) and its hyperparameters."""

    name: str
    hyper: dict

    def __str__(self) -> str:
        def text(v):
            return ("true" if v else "false") if isinstance(v, bool) else repr(v)
        return f"{self.name}(" + ", ".join(f"{k}={text(v)}" for k, v in self.hyper.items()) + ")"


@dataclass(frozen=True)
class TrainConfig:
    """A checked train block (keys at tf.keras's defaults where not given)."""

    model: str
    loss: str
    optimizer: OptimizerConfig
    data: str | None = None
    metrics: tuple[str, ...] = ()
    batch_size: int = 32
    epochs: int = 1
    seed: int = 0
    validation_split: float = 0.0
    loc: Loc | None = None
    locs: dict = field(default_factory=dict, compare=False)   # key -> Loc of its value


@dataclass(frozen=True)
class LayerInfo:
    """One layer as written in the model file, and what it became."""

    name: str
    op: str                      # the DSL op (conv2d, maxpool2d, residual, ...)
    loc: Loc
    output: TensorType
    params: tuple[Param, ...]
    nodes: tuple[str, ...]       # IR nodes the layer lowered to
    flops: int                   # per sample
    depth: int = 0               # nesting depth inside residual blocks

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.params)


@dataclass(frozen=True)
class Model:
    name: str
    graph: Graph                  # inference semantics, one node per op, before any pass
    layers: tuple[LayerInfo, ...]
    loc: Loc
    file: str
    source: str                   # the text of the model block
    input_type: TensorType

    @property
    def output_type(self) -> TensorType:
        return self.graph.type(self.graph.outputs[0])

    @property
    def param_count(self) -> int:
        return sum(p.size for p in self.graph.params)

    @property
    def trainable_count(self) -> int:
        return sum(p.size for p in self.graph.params if p.trainable)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    def layer(self, name: str) -> LayerInfo:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


@dataclass(frozen=True)
class Program:
    file: str
    text: str
    models: dict[str, Model]
    trains: dict[str, TrainConfig] = field(default_factory=dict)    # by model name

    def model(self, name: str | None = None) -> Model:
        """The named model, or the only (first) one."""
        if name is None:
            return next(iter(self.models.values()))
        return self.models[name]
