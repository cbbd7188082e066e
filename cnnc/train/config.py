"""The `train NAME { ... }` block: keys, their kinds and tf.keras defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Diagnostics, Loc
from ..frontend import ast
from ..ir.attrs import Attr, AttrError, Bool, Enum, Float, Int, Kind, did_you_mean

LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy",
          "binary_crossentropy", "mse")
METRICS = ("accuracy",)
DATASETS = ("mnist", "fashion_mnist")

# Optimizer hyperparameters with tf.keras defaults.
OPTIMIZERS: dict[str, tuple[Attr, ...]] = {
    "sgd": (Attr("learning_rate", Float(0.0, None, min_open=True), 0.01, positional=True),
            Attr("momentum", Float(0.0, 1.0), 0.0),
            Attr("nesterov", Bool(), False)),
    "adam": (Attr("learning_rate", Float(0.0, None, min_open=True), 0.001, positional=True),
             Attr("beta_1", Float(0.0, 1.0, max_open=True), 0.9),
             Attr("beta_2", Float(0.0, 1.0, max_open=True), 0.999),
             Attr("epsilon", Float(0.0, None, min_open=True), 1e-7)),
    "adadelta": (Attr("learning_rate", Float(0.0, None, min_open=True), 0.001, positional=True),
                 Attr("rho", Float(0.0, 1.0, max_open=True), 0.95),
                 Attr("epsilon", Float(0.0, None, min_open=True), 1e-7)),
    "rmsprop": (Attr("learning_rate", Float(0.0, None, min_open=True), 0.001, positional=True),
                Attr("rho", Float(0.0, 1.0, max_open=True), 0.9),
                Attr("momentum", Float(0.0, 1.0), 0.0),
                Attr("epsilon", Float(0.0, None, min_open=True), 1e-7)),
}


@dataclass(frozen=True)
class OptimizerConfig:
    name: str
    hyper: dict

    def __str__(self) -> str:
        def text(v):
            return ("true" if v else "false") if isinstance(v, bool) else repr(v)
        return f"{self.name}(" + ", ".join(f"{k}={text(v)}" for k, v in self.hyper.items()) + ")"


@dataclass(frozen=True)
class TrainConfig:
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


class _Data(Kind):
    what = "mnist, fashion_mnist or a path string"

    def convert(self, value):
        if isinstance(value, ast.Str):
            if not value.value:
                raise AttrError("data path is empty", loc=value.loc)
            return value.value
        if isinstance(value, ast.Ident):
            if value.value not in DATASETS:
                raise AttrError(f"unknown dataset '{value.value}'",
                                did_you_mean(value.value, DATASETS) or
                                'known datasets are mnist and fashion_mnist; '
                                'give a path as a string ("data/")', loc=value.loc)
            return value.value
        raise self.wrong(value)


class _Metrics(Kind):
    what = "a list of metrics such as [accuracy]"

    def convert(self, value):
        items = value.items if isinstance(value, ast.List) else (value,)
        out = []
        for item in items:
            out.append(Enum(METRICS).convert(item))
        return tuple(dict.fromkeys(out))


class _Optimizer(Kind):
    what = "an optimizer (sgd, adam, adadelta, rmsprop)"

    def convert(self, value):
        if isinstance(value, ast.Ident):
            name, args = value.value, ()
        elif isinstance(value, ast.Call):
            name, args = value.name, value.args
        else:
            raise self.wrong(value)
        if name not in OPTIMIZERS:
            raise AttrError(f"unknown optimizer '{name}'",
                            did_you_mean(name, OPTIMIZERS) or
                            "optimizers are " + ", ".join(OPTIMIZERS), loc=value.loc)
        schema = OPTIMIZERS[name]
        hyper = {a.name: a.default for a in schema}
        seen: set[str] = set()
        positional = [a for a in schema if a.positional]
        keyword_seen = False
        for i, arg in enumerate(args):
            key = arg.key
            keyword_seen |= key is not None
            if key is None:
                if keyword_seen:
                    raise AttrError("positional argument after a keyword argument",
                                    loc=arg.loc, full=True)
                if i >= len(positional):
                    raise AttrError(f"{name} takes at most {len(positional)} positional "
                                    f"argument", loc=arg.loc, full=True)
                key = positional[i].name
            attr = next((a for a in schema if a.name == key), None)
            if attr is None:
                raise AttrError(f"unknown argument '{key}' for {name}",
                                did_you_mean(key, [a.name for a in schema]) or
                                f"{name} takes " + ", ".join(a.name for a in schema),
                                loc=arg.loc, full=True)
            if key in seen:
                raise AttrError(f"{name}: argument '{key}' given twice", loc=arg.loc, full=True)
            seen.add(key)
            try:
                hyper[key] = attr.kind.convert(arg.value)
            except AttrError as e:
                raise AttrError(f"{name}: '{key}' {e.message}", e.hint, e.loc or arg.loc,
                                full=True)
        return OptimizerConfig(name, hyper)


KEYS: dict[str, Kind] = {
    "data": _Data(),
    "loss": Enum(LOSSES),
    "optimizer": _Optimizer(),
    "metrics": _Metrics(),
    "batch_size": Int(),
    "epochs": Int(),
    "seed": Int(min=0, max=2**63 - 1),
    "validation_split": Float(0.0, 1.0, max_open=True),
}
REQUIRED_KEYS = ("loss", "optimizer")


def check_train_block(block: ast.TrainBlock, diags: Diagnostics) -> TrainConfig | None:
    values: dict = {}
    locs: dict = {}
    ok = True
    for setting in block.settings:
        if setting.key not in KEYS:
            diags.error(f"unknown train setting '{setting.key}'", setting.loc,
                        did_you_mean(setting.key, KEYS) or "settings are " + ", ".join(KEYS))
            ok = False
            continue
        if setting.key in values or setting.key in locs:
            diags.error(f"train setting '{setting.key}' given twice", setting.loc,
                        notes=(diags.note("first given here", locs[setting.key]),))
            ok = False
            continue
        locs[setting.key] = setting.value.loc
        try:
            values[setting.key] = KEYS[setting.key].convert(setting.value)
        except AttrError as e:
            message = e.message if e.full or e.message.startswith(("unknown", "data")) \
                else f"'{setting.key}' {e.message}"
            diags.error(message, e.loc or setting.value.loc, e.hint)
            ok = False
    for key in REQUIRED_KEYS:
        if key not in values and key not in locs:
            diags.error(f"train block for '{block.model}' has no '{key}'", block.loc,
                        f"add e.g. '{key} = " +
                        ("categorical_crossentropy" if key == "loss" else "adam()") + "'")
            ok = False
    if not ok:
        return None
    return TrainConfig(model=block.model, loc=block.loc, locs=locs, **values)
