"""Attribute kinds: the typed attributes an op declares, and the checks on their values.

Each op declares its attributes as :class:`Attr` records (name, kind, default, whether it
may be given positionally). A :class:`Kind` says what it accepts (`what`, for error
messages) and checks a Python value -- ranges, choices -- raising :class:`AttrError`
with a message and an optional hint. Reading a value from a model file is the front
end's business (:mod:`cnnc.frontend.convert`); every front end ends in these checks, so
each refuses the same values with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import did_you_mean

REQUIRED = object()


class AttrError(Exception):
    def __init__(self, message: str, hint: str | None = None, loc=None, full: bool = False):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.loc = loc
        self.full = full          # a complete message: callers add no prefix


class Kind:
    """What one attribute accepts."""

    what = "a value"

    def check(self, value: Any) -> Any:
        """`value` if it is acceptable (possibly normalized), else AttrError."""
        return value


@dataclass(frozen=True)
class Int(Kind):
    min: int | None = 1
    max: int | None = None

    @property
    def what(self):
        return "a positive integer" if self.min == 1 else "an integer"

    def check(self, value: int) -> int:
        if self.min is not None and value < self.min:
            if self.min == 1:
                raise AttrError(f"must be positive, got {value}")
            raise AttrError(f"must be at least {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise AttrError(f"must be at most {self.max}, got {value}")
        return value


@dataclass(frozen=True)
class Pair(Kind):
    """An integer pair; a single integer means the same for both (`kernel=3`)."""

    min: int = 1
    what: str = field(default="an integer or a pair of integers", init=False)

    @property
    def element(self) -> Int:
        """The kind of each of the two integers."""
        return Int(self.min, None)

    def check(self, value) -> tuple[int, int]:
        if isinstance(value, int):
            value = (value, value)
        return tuple(self.element.check(v) for v in value)


@dataclass(frozen=True)
class Float(Kind):
    min: float | None = None
    max: float | None = None
    min_open: bool = False     # min excluded
    max_open: bool = False     # max excluded
    what: str = field(default="a number", init=False)

    def check(self, value: int | float) -> float:
        v = float(value)
        if v != v or v in (float("inf"), float("-inf")):
            raise AttrError("must be a finite number")
        low_bad = self.min is not None and (v < self.min or (self.min_open and v == self.min))
        high_bad = self.max is not None and (v > self.max or (self.max_open and v == self.max))
        if low_bad or high_bad:
            lo = "" if self.min is None else f"{self.min} {'<' if self.min_open else '<='} "
            hi = "" if self.max is None else f" {'<' if self.max_open else '<='} {self.max}"
            raise AttrError(f"must satisfy {lo}value{hi}, got {value}")
        return v


@dataclass(frozen=True)
class Enum(Kind):
    choices: tuple[str, ...]

    @property
    def what(self):
        return "one of " + ", ".join(self.choices)

    def check(self, value: str) -> str:
        if value not in self.choices:
            raise AttrError(f"expects {self.what}, got '{value}'",
                            did_you_mean(value, self.choices))
        return value


@dataclass(frozen=True)
class Bool(Kind):
    what: str = field(default="true or false", init=False)


@dataclass(frozen=True)
class Str(Kind):
    what: str = field(default="a string", init=False)


@dataclass(frozen=True)
class Activation(Kind):
    """An activation function: an op of the table marked `activation`, with the values of
    the attributes it declares -- `relu`, `leaky_relu(alpha=0.1)`.

    Its value is `(name, ((attr, value), ...))`, every declared attribute present (the
    op's default where none was given): hashable, and ready to become node attributes.
    """

    what: str = field(default="an activation", init=False)


LINEAR = ("linear", ())       # the value of "no activation"


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
