"""The syntax tree of a .cnn file, as the parser builds it.

Every element keeps the :class:`~cnnc.errors.Loc` it came from so the checker can point at
it. Values stay close to the source: an integer is an :class:`Int`, a bare word an
:class:`Ident`, `(3, 5)` a :class:`Tuple`, `adam(learning_rate=0.001)` a :class:`Call`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..errors import Loc


@dataclass(frozen=True)
class Int:
    value: int
    loc: Loc


@dataclass(frozen=True)
class Float:
    value: float
    loc: Loc


@dataclass(frozen=True)
class Str:
    value: str
    loc: Loc


@dataclass(frozen=True)
class Bool:
    value: bool
    loc: Loc


@dataclass(frozen=True)
class Ident:
    value: str
    loc: Loc


@dataclass(frozen=True)
class Tuple:
    items: tuple["Value", ...]
    loc: Loc


@dataclass(frozen=True)
class List:
    items: tuple["Value", ...]
    loc: Loc


@dataclass(frozen=True)
class Arg:
    key: str | None          # None for a positional argument
    value: "Value"
    loc: Loc                 # of the key when given, else of the value


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Arg, ...]
    loc: Loc


Value = Union[Int, Float, Str, Bool, Ident, Tuple, List, Call]


@dataclass(frozen=True)
class Layer:
    op: str
    args: tuple[Arg, ...]
    loc: Loc                 # of the op name


@dataclass(frozen=True)
class Residual:
    body: tuple["Stmt", ...]
    loc: Loc


Stmt = Union[Layer, Residual]


@dataclass(frozen=True)
class ModelBlock:
    name: str
    body: tuple[Stmt, ...]
    loc: Loc                 # of the name
    first_line: int
    last_line: int


@dataclass(frozen=True)
class Setting:
    key: str
    value: Value
    loc: Loc


@dataclass(frozen=True)
class TrainBlock:
    model: str
    settings: tuple[Setting, ...]
    loc: Loc


@dataclass(frozen=True)
class File:
    models: tuple[ModelBlock, ...]
    trains: tuple[TrainBlock, ...]


def describe(value: Value) -> str:
    """How a value is named in an error message ('an integer', 'the name relu', ...)."""
    if isinstance(value, Bool):
        return "a boolean"
    if isinstance(value, Int):
        return "an integer"
    if isinstance(value, Float):
        return "a number"
    if isinstance(value, Str):
        return "a string"
    if isinstance(value, Ident):
        return f"the name '{value.value}'"
    if isinstance(value, Tuple):
        return f"a tuple of {len(value.items)}"
    if isinstance(value, List):
        return "a list"
    return f"a call of '{value.name}'"


def to_source(value: Value) -> str:
    """The value written back as source text (used in summaries and generated headers)."""
    if isinstance(value, Bool):
        return "true" if value.value else "false"
    if isinstance(value, (Int, Float)):
        return repr(value.value)
    if isinstance(value, Str):
        return '"' + value.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Ident):
        return value.value
    if isinstance(value, Tuple):
        return "(" + ", ".join(to_source(v) for v in value.items) + ")"
    if isinstance(value, List):
        return "[" + ", ".join(to_source(v) for v in value.items) + "]"
    args = ", ".join((f"{a.key}=" if a.key else "") + to_source(a.value) for a in value.args)
    return f"{value.name}({args})"
