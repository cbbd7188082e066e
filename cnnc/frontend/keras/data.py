"""The statements about the data that Keras code may hold and cnnc skips unread
(docs/keras.md lists them): `x_train = x_train.astype("float32") / 255`,
`y = keras.utils.to_categorical(y, 10)`, `print(x_train.shape)`, ... They are checked to be
made only of allowed parts -- names, constants, attributes that are not private, the few
functions and methods below -- so nothing else can hide in them."""

from __future__ import annotations

import ast
from dataclasses import dataclass

DATA = object()            # a variable holding data (x_train, ...): never evaluated
DATA_FUNCS = {"keras.utils.to_categorical", "numpy.expand_dims", "numpy.reshape"}
DATA_METHODS = {"astype", "reshape"}


@dataclass(frozen=True)
class Ref:
    """A name that refers into keras, tensorflow or numpy (canonical: tf.keras -> keras)."""

    path: str


class DataStatements:
    """Part of CodeReader: checks of data expressions (uses its env, value and error)."""

    def data_arg(self, node):
        """A data argument of fit: a name (defined or not), a tuple of them, or data."""
        if isinstance(node, (ast.Tuple, ast.List)):
            for e in node.elts:
                self.data_arg(e)
        elif not isinstance(node, ast.Name):
            self.data_expr(node)

    def data_expr(self, node):
        """Check an expression about the data: skipped, but only if made of allowed parts."""
        if isinstance(node, ast.Name):
            if node.id in self.env or node.id in self.defines:
                return
            self.value(node)                        # the undefined-name error
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                self.error(f"'{node.attr}' is not allowed (no private or special names)",
                           node)
            if self.mentions_data(node.value):
                return self.data_expr(node.value)
            self.value(node)
            return
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and self.mentions_data(f.value):
                if f.attr not in DATA_METHODS:
                    self.error(f"method '{f.attr}' is not allowed on data (only " +
                               ", ".join(sorted(DATA_METHODS)) + ")", f)
                self.data_expr(f.value)
            else:
                func = self.value(f)
                if not (isinstance(func, Ref) and func.path in DATA_FUNCS):
                    self.error("only " + ", ".join(sorted(DATA_FUNCS)) +
                               " may be called on data", f)
            for arg in list(node.args) + [k.value for k in node.keywords]:
                self.data_expr(arg)
            return
        if isinstance(node, (ast.Tuple, ast.List)):
            for e in node.elts:
                self.data_expr(e)
            return
        if isinstance(node, ast.BinOp):
            self.data_expr(node.left)
            return self.data_expr(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.data_expr(node.operand)
        if isinstance(node, ast.Subscript) and self.mentions_data(node.value):
            self.data_expr(node.value)
            return self.data_expr(node.slice)
        if isinstance(node, ast.Slice):
            for part in (node.lower, node.upper, node.step):
                if part is not None:
                    self.data_expr(part)
            return
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                self.data_expr(part.value if isinstance(part, ast.FormattedValue) else part)
            return
        self.refuse_kind(node)
