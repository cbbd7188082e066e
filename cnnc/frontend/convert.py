"""Reading attribute values from the syntax tree: `kernel=3`, `strides=(2, 1)`,
`activation=leaky_relu(alpha=0.1)`.

`convert(kind, value)` turns a syntax value into the Python value an attribute of that
:mod:`kind <cnnc.ir.attrs>` holds, or raises AttrError pointing at the value: the wrong
sort of value ("expects a positive integer, got a string") here, out-of-range values by
the kind's own check.
"""

from __future__ import annotations

from typing import Any

from ..errors import did_you_mean
from ..ir import ops
from ..ir.attrs import Activation, AttrError, Bool, Enum, Float, Int, Kind, Pair, Str
from . import ast
from .limits import MAX_INT


def convert(kind: Kind, value: ast.Value) -> Any:
    return _READERS[type(kind)](kind, value)


def wrong(what: str, value: ast.Value) -> AttrError:
    return AttrError(f"expects {what}, got {ast.describe(value)}", loc=value.loc)


def checked(kind: Kind, python_value, node) -> Any:
    """`kind.check(python_value)`, its error pointing at `node`."""
    try:
        return kind.check(python_value)
    except AttrError as e:
        raise AttrError(e.message, e.hint, e.loc or node.loc, e.full) from None


def _bounded(kind: Int) -> Int:
    """An integer kind with the language's limit where it sets none (limits.MAX_INT)."""
    return kind if kind.max is not None else Int(kind.min, MAX_INT)


def _int(kind: Int, value):
    if not isinstance(value, ast.Int):
        raise wrong(kind.what, value)
    return checked(_bounded(kind), value.value, value)


def _pair(kind: Pair, value):
    element = _bounded(kind.element)
    if isinstance(value, ast.Int):
        v = checked(element, value.value, value)
        return (v, v)
    if isinstance(value, ast.Tuple) and len(value.items) == 2 and \
            all(isinstance(i, ast.Int) for i in value.items):
        return tuple(checked(element, i.value, i) for i in value.items)
    raise wrong(kind.what, value)


def _float(kind: Float, value):
    if not isinstance(value, (ast.Int, ast.Float)):
        raise wrong(kind.what, value)
    return checked(kind, value.value, value)


def _enum(kind: Enum, value):
    if not isinstance(value, ast.Ident):
        raise wrong(kind.what, value)
    return checked(kind, value.value, value)


def _bool(kind: Bool, value):
    if not isinstance(value, ast.Bool):
        raise wrong(kind.what, value)
    return value.value


def _str(kind: Str, value):
    if not isinstance(value, ast.Str):
        raise wrong(kind.what, value)
    return value.value


def _activation(kind: Activation, value):
    """`fn` or `fn(arg, key=arg)`: an activation op and values for its declared attributes
    (positionally in declaration order, or by name), the others at their defaults."""
    table = ops.activation_ops()
    if isinstance(value, ast.Ident):
        name, args = value.value, ()
    elif isinstance(value, ast.Call):
        name, args = value.name, value.args
    else:
        raise wrong(f"{kind.what} ({', '.join(table)})", value)
    if name not in table:
        raise AttrError(f"unknown activation '{name}'",
                        did_you_mean(name, table) or "activations are " + ", ".join(table),
                        loc=value.loc)
    declared = table[name].attrs
    if args and not declared:
        raise AttrError(f"activation '{name}' takes no arguments", loc=args[0].loc)
    if len(args) > len(declared):
        names = ", ".join(a.name for a in declared)
        raise AttrError(f"activation '{name}' takes {_count(len(declared))} argument"
                        f"{'s' if len(declared) > 1 else ''}, {names}",
                        loc=args[len(declared)].loc)
    values = {a.name: a.default for a in declared}
    for i, arg in enumerate(args):
        key = arg.key or declared[i].name
        attr = next((a for a in declared if a.name == key), None)
        if attr is None:
            raise AttrError(f"activation '{name}' takes only " +
                            " and ".join(f"'{a.name}'" for a in declared), loc=arg.loc)
        values[key] = convert(attr.kind, arg.value)
    return (name, tuple(values.items()))


def _count(n: int) -> str:
    return {1: "one", 2: "two", 3: "three"}.get(n, str(n))


_READERS = {Int: _int, Pair: _pair, Float: _float, Enum: _enum, Bool: _bool, Str: _str,
            Activation: _activation}
