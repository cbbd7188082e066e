"""Attribute kinds: how a DSL value becomes a typed attribute, with clear errors.

Each op declares its attributes as :class:`Attr` records (name, kind, default, whether it
may be given positionally). :meth:`Kind.convert` turns a syntax-tree value into a Python
value or raises :class:`AttrError` with a message and an optional hint.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ..frontend import ast

REQUIRED = object()

ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "linear", "elu", "leaky_relu")
ACTIVATION_ALPHA = {"leaky_relu": 0.3, "elu": 1.0}   # tf.keras defaults


class AttrError(Exception):
    def __init__(self, message: str, hint: str | None = None, loc=None, full: bool = False):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.loc = loc
        self.full = full          # a complete message: callers add no prefix


def did_you_mean(word: str, choices) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class Kind:
    """How one attribute kind reads a value."""

    what = "a value"

    def convert(self, value: ast.Value) -> Any:
        raise NotImplementedError

    def wrong(self, value: ast.Value) -> AttrError:
        return AttrError(f"expects {self.what}, got {ast.describe(value)}", loc=value.loc)


@dataclass(frozen=True)
class Int(Kind):
    min: int | None = 1
    max: int | None = None

    @property
    def what(self):
        return "a positive integer" if self.min == 1 else "an integer"

    def convert(self, value):
        if not isinstance(value, ast.Int):
            raise self.wrong(value)
        return _check_range(value.value, self.min, self.max, value)


@dataclass(frozen=True)
class Pair(Kind):
    """An integer pair; a single integer means the same for both (`kernel=3`)."""

    min: int = 1
    what: str = field(default="an integer or a pair of integers", init=False)

    def convert(self, value):
        if isinstance(value, ast.Int):
            v = _check_range(value.value, self.min, None, value)
            return (v, v)
        if isinstance(value, ast.Tuple) and len(value.items) == 2 and \
                all(isinstance(i, ast.Int) for i in value.items):
            return tuple(_check_range(i.value, self.min, None, i) for i in value.items)
        raise self.wrong(value)


@dataclass(frozen=True)
class Float(Kind):
    min: float | None = None
    max: float | None = None
    min_open: bool = False     # min excluded
    max_open: bool = False     # max excluded
    what: str = field(default="a number", init=False)

    def convert(self, value):
        if not isinstance(value, (ast.Int, ast.Float)) or isinstance(value, ast.Bool):
            raise self.wrong(value)
        v = float(value.value)
        if v != v or v in (float("inf"), float("-inf")):
            raise AttrError("must be a finite number", loc=value.loc)
        low_bad = self.min is not None and (v < self.min or (self.min_open and v == self.min))
        high_bad = self.max is not None and (v > self.max or (self.max_open and v == self.max))
        if low_bad or high_bad:
            lo = "" if self.min is None else f"{self.min} {'<' if self.min_open else '<='} "
            hi = "" if self.max is None else f" {'<' if self.max_open else '<='} {self.max}"
            raise AttrError(f"must satisfy {lo}value{hi}, got {value.value}", loc=value.loc)
        return v


@dataclass(frozen=True)
class Enum(Kind):
    choices: tuple[str, ...]

    @property
    def what(self):
        return "one of " + ", ".join(self.choices)

    def convert(self, value):
        if not isinstance(value, ast.Ident):
            raise self.wrong(value)
        if value.value not in self.choices:
            raise AttrError(f"expects {self.what}, got '{value.value}'",
                            did_you_mean(value.value, self.choices), loc=value.loc)
        return value.value


@dataclass(frozen=True)
class Bool(Kind):
    what: str = field(default="true or false", init=False)

    def convert(self, value):
        if not isinstance(value, ast.Bool):
            raise self.wrong(value)
        return value.value


@dataclass(frozen=True)
class Str(Kind):
    what: str = field(default="a string", init=False)

    def convert(self, value):
        if not isinstance(value, ast.Str):
            raise self.wrong(value)
        return value.value


@dataclass(frozen=True)
class Activation(Kind):
    """An activation: `relu`, or with its parameter `leaky_relu(alpha=0.1)`.

    Converts to a tuple `(name, alpha)`; alpha is None for activations without one.
    """

    what: str = field(default="an activation (" + ", ".join(ACTIVATIONS) + ")", init=False)

    def convert(self, value):
        if isinstance(value, ast.Ident):
            name, args = value.value, ()
        elif isinstance(value, ast.Call):
            name, args = value.name, value.args
        else:
            raise self.wrong(value)
        if name not in ACTIVATIONS:
            raise AttrError(f"unknown activation '{name}'",
                            did_you_mean(name, ACTIVATIONS) or
                            "activations are " + ", ".join(ACTIVATIONS), loc=value.loc)
        alpha = ACTIVATION_ALPHA.get(name)
        if args and name not in ACTIVATION_ALPHA:
            raise AttrError(f"activation '{name}' takes no arguments", loc=args[0].loc)
        if len(args) > 1:
            raise AttrError(f"activation '{name}' takes one argument, alpha", loc=args[1].loc)
        for arg in args:
            if arg.key not in (None, "alpha"):
                raise AttrError(f"activation '{name}' takes only 'alpha'", loc=arg.loc)
            alpha = Float().convert(arg.value)
        return (name, alpha)


def _check_range(v: int, lo: int | None, hi: int | None, node) -> int:
    if lo is not None and v < lo:
        if lo == 1:
            raise AttrError(f"must be positive, got {v}", loc=node.loc)
        raise AttrError(f"must be at least {lo}, got {v}", loc=node.loc)
    if hi is not None and v > hi:
        raise AttrError(f"must be at most {hi}, got {v}", loc=node.loc)
    return v


@dataclass(frozen=True)
class Attr:
    name: str
    kind: Kind
    default: Any = REQUIRED
    positional: bool = False   # may be given without its name, in declaration order
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED
