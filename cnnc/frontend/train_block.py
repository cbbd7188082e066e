"""Checking a `train NAME { ... }` block: its keys, their values and tf.keras defaults.

Losses and optimizers (with their hyperparameters and defaults) are the tables of
:mod:`cnnc.ir.ops.training`; this module reads a block's settings against them and
returns a :class:`~cnnc.frontend.program.TrainConfig`.
"""

from __future__ import annotations

from ..errors import Diagnostics, did_you_mean
from ..ir.attrs import AttrError, Enum, Float, Int, Kind
from ..ir.ops.training import LOSSES, OPTIMIZERS
from . import ast
from .convert import convert, wrong
from .program import OptimizerConfig, TrainConfig

METRICS = ("accuracy",)
DATASETS = ("mnist", "fashion_mnist")


def _data(value: ast.Value) -> str:
    """A named dataset or a path string."""
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
    raise wrong("mnist, fashion_mnist or a path string", value)


def _metrics(value: ast.Value) -> tuple[str, ...]:
    items = value.items if isinstance(value, ast.List) else (value,)
    return tuple(dict.fromkeys(convert(Enum(METRICS), item) for item in items))


def _optimizer(value: ast.Value) -> OptimizerConfig:
    """`adam` or `adam(0.01, beta_1=0.8)`: an optimizer of the table and values for its
    hyperparameters (the learning rate may be given positionally), the others tf.keras's
    defaults."""
    if isinstance(value, ast.Ident):
        name, args = value.value, ()
    elif isinstance(value, ast.Call):
        name, args = value.name, value.args
    else:
        raise wrong("an optimizer (" + ", ".join(OPTIMIZERS) + ")", value)
    if name not in OPTIMIZERS:
        raise AttrError(f"unknown optimizer '{name}'",
                        did_you_mean(name, OPTIMIZERS) or
                        "optimizers are " + ", ".join(OPTIMIZERS), loc=value.loc)
    schema = OPTIMIZERS[name].hyper
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
            hyper[key] = convert(attr.kind, arg.value)
        except AttrError as e:
            raise AttrError(f"{name}: '{key}' {e.message}", e.hint, e.loc or arg.loc,
                            full=True)
    return OptimizerConfig(name, hyper)


def _of(kind: Kind):
    return lambda value: convert(kind, value)


# key -> how its value is read
KEYS = {
    "data": _data,
    "loss": _of(Enum(tuple(LOSSES))),
    "optimizer": _optimizer,
    "metrics": _metrics,
    "batch_size": _of(Int()),
    "epochs": _of(Int()),
    "seed": _of(Int(min=0, max=2**63 - 1)),
    "validation_split": _of(Float(0.0, 1.0, max_open=True)),
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
            values[setting.key] = KEYS[setting.key](setting.value)
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
