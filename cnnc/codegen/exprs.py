"""Composing the scalar expressions of elementwise ops into epilogue code.

An elementwise or broadcast op declares a Python expression over its inputs and
attributes (`max(x, ZERO)`, `x + b`). To apply a chain of such ops to a value, each
expression is parsed, its input names are replaced by the chain value or by an indexing
expression of the kernel's arguments, its attributes by float32 constants, and the
result is assigned to a fresh local. Substitution works on the Python AST, so it is exact
whatever the names are.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Splice:
    """Lines of code to splice into a kernel, and the variable holding the result."""

    code: str
    out: str


def f32(value: float) -> str:
    return f"DTYPE({float(value)!r})"


class _Replace(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def visit_Name(self, node):
        if node.id in self.names:
            return ast.parse(self.names[node.id], mode="eval").body
        return node


def substitute(expr: str, names: dict[str, str]) -> str:
    """`expr` with each free name in `names` replaced by the given Python expression."""
    return ast.unparse(_Replace(names).visit(ast.parse(expr, mode="eval")))
