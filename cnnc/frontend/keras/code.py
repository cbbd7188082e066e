"""Keras Python code, read with `ast` and never run.

Only an allow-list of statements and expressions is understood (docs/keras.md): imports
of keras, tensorflow and numpy; constants; one Sequential model built from Keras layers;
its compile and fit calls; and a few statements about the data that are recognised and
skipped. Anything else is an error at file:line:col, before anything could run.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from ...errors import CnncError, Diagnostic, Loc
from .layers import ALIASES, INPUT_CLASSES, KLayer, Obj, RULES
from .data import DATA, DataStatements, Ref
from .train import OPTIMIZERS

BUILTINS = set(dir(builtins))
ROOTS = {"keras", "tensorflow", "numpy"}
NAMESPACES = {"keras", "tensorflow", "numpy", "keras.layers", "keras.models",
              "keras.optimizers", "keras.losses", "keras.initializers", "keras.regularizers",
              "keras.constraints", "keras.activations", "keras.datasets", "keras.utils",
              "keras.datasets.mnist", "keras.datasets.fashion_mnist"}
LEAF_PARENTS = {"keras.layers", "keras.optimizers", "keras.losses", "keras.initializers",
                "keras.regularizers", "keras.constraints", "keras.activations"}
FUNCTIONS = {"keras.Input", "keras.Sequential", "keras.models.Sequential",
             "keras.datasets.mnist.load_data", "keras.datasets.fashion_mnist.load_data",
             "keras.utils.to_categorical", "numpy.expand_dims", "numpy.float32",
             "numpy.reshape"}
MODEL_METHODS = {"add", "compile", "fit", "summary", "evaluate", "save", "save_weights"}
GUESSES = {"num_classes": "10", "input_shape": "(28, 28, 1)", "batch_size": "128",
           "epochs": "12", "img_rows": "28", "img_cols": "28"}
KINDS = {ast.Lambda: "a lambda", ast.ListComp: "a comprehension",
         ast.GeneratorExp: "a comprehension", ast.DictComp: "a comprehension",
         ast.SetComp: "a comprehension", ast.Subscript: "a subscript",
         ast.JoinedStr: "an f-string", ast.For: "a loop", ast.While: "a loop",
         ast.If: "an if statement", ast.FunctionDef: "a function definition",
         ast.ClassDef: "a class definition", ast.With: "a with statement",
         ast.Try: "a try statement", ast.Dict: "a dict", ast.Starred: "a starred argument",
         ast.NamedExpr: "an assignment expression", ast.IfExp: "a conditional expression",
         ast.Await: "await", ast.Yield: "yield", ast.Compare: "a comparison",
         ast.BoolOp: "a boolean operation", ast.Set: "a set"}


@dataclass
class Input:
    shape: object
    node: ast.AST


@dataclass
class CodeModel:
    name: str
    input_shape: object
    input_node: ast.AST | None
    layers: list
    compile: dict | None      # argument -> (value, node)
    fit: dict | None
    data: str | None
    uses_tf: bool


def canonical(path: str) -> str:
    if path == "tensorflow.keras" or path.startswith("tensorflow.keras."):
        return "keras" + path[len("tensorflow.keras"):]
    return path


class CodeReader(DataStatements):
    def __init__(self, text: str, file: str, defines: dict | None):
        self.file, self.lines = file, text.splitlines()
        self.text = text
        self.env: dict = {}
        self.defines = dict(defines or {})
        self.model_var: str | None = None
        self.model: CodeModel | None = None
        self.uses_tf = False
        self.data: str | None = None

    # --- errors ---
    def loc(self, node) -> Loc | None:
        if node is None or not hasattr(node, "lineno"):
            return None
        line = self.lines[node.lineno - 1] if node.lineno <= len(self.lines) else ""
        raw = line.encode("utf-8")
        col = len(raw[:node.col_offset].decode("utf-8", "replace")) + 1
        end = getattr(node, "end_col_offset", None)
        length = 1
        if end is not None and getattr(node, "end_lineno", node.lineno) == node.lineno:
            length = max(1, len(raw[node.col_offset:end].decode("utf-8", "replace")))
        return Loc(node.lineno, col, length)

    def error(self, message: str, node, hint: str | None = None):
        loc = self.loc(node)
        line = self.lines[loc.line - 1] if loc and loc.line <= len(self.lines) else None
        raise CnncError(Diagnostic(message, self.file, loc, line, hint))

    def refuse_kind(self, node):
        kind = KINDS.get(type(node), f"'{type(node).__name__}'")
        self.error(f"{kind} is not allowed here: cnnc reads Keras code without running it "
                   f"and understands only constants, Keras layers and Keras objects", node)

    # --- statements ---
    def read(self) -> CodeModel:
        try:
            tree = ast.parse(self.text, self.file)
        except SyntaxError as e:
            line = e.lineno or 1
            raise CnncError(Diagnostic(f"Python syntax error: {e.msg}", self.file,
                                       Loc(line, e.offset or 1),
                                       self.lines[line - 1] if line <= len(self.lines)
                                       else None)) from None
        for stmt in tree.body:
            self.statement(stmt)
        if self.model is None:
            raise CnncError(Diagnostic("no Keras model found (expected `model = "
                                       "keras.Sequential(...)`)", self.file))
        self.model.uses_tf, self.model.data = self.uses_tf, self.data
        return self.model

    def statement(self, stmt):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return self.imports(stmt)
        if isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                return None                                       # a docstring
            if isinstance(stmt.value, ast.Call):
                return self.call_statement(stmt.value, None)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            return self.assign(stmt.targets[0], stmt.value)
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            if self.env.get(stmt.target.id) is DATA:
                return self.data_expr(stmt.value)
            value = ast.BinOp(ast.Name(stmt.target.id, ast.Load()), stmt.op, stmt.value)
            ast.copy_location(value, stmt)
            self.bind(stmt.target.id, self.value(value), stmt)
            return None
        return self.refuse_kind(stmt)

    def imports(self, stmt):
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                self.check_module(alias.name, stmt)
                if alias.asname:
                    self.env[alias.asname] = self.ref(canonical(alias.name), stmt)
                else:
                    root = alias.name.split(".")[0]
                    self.env[root] = Ref(root)
            return
        if stmt.module == "__future__":
            return
        if stmt.level or not stmt.module:
            self.error("relative imports are not allowed", stmt)
        self.check_module(stmt.module, stmt)
        for alias in stmt.names:
            if alias.name == "*":
                self.error("`import *` is not allowed: name what you import", stmt)
            self.env[alias.asname or alias.name] = self.ref(
                canonical(f"{stmt.module}.{alias.name}"), stmt)

    def check_module(self, name: str, node):
        if name.split(".")[0] not in ROOTS:
            self.error(f"import of '{name}' is not allowed (only keras, tensorflow and "
                       f"numpy)", node)
        if name.split(".")[0] == "tensorflow":
            self.uses_tf = True

    def ref(self, path: str, node) -> Ref:
        last = path.rpartition(".")[2]
        if last.startswith("_"):
            self.error(f"'{last}' is not allowed (no private or special names)", node)
        parent = path.rpartition(".")[0]
        if path in NAMESPACES or path in FUNCTIONS or parent in LEAF_PARENTS:
            return Ref(path)
        self.error(f"'{path}' is not something cnnc knows in Keras code", node)

    def bind(self, name: str, value, node):
        if name in self.defines:
            return                              # --define wins over the file
        if name == self.model_var:
            self.error(f"'{name}' holds the model and cannot be reassigned", node)
        self.env[name] = value

    def assign(self, target, value):
        if isinstance(value, ast.Call):
            func = self.callee(value.func)
            if isinstance(func, Ref) and func.path in ("keras.Sequential",
                                                       "keras.models.Sequential"):
                if not isinstance(target, ast.Name):
                    self.error("assign the model to a plain name", target)
                return self.sequential(target.id, value)
            if isinstance(func, Ref) and func.path.endswith(".load_data"):
                self.data = func.path.split(".")[2]
                if value.args or value.keywords:
                    self.error("load_data() takes no arguments here", value)
                return self.bind_data(target)
            if isinstance(func, tuple):                      # model.fit(...) etc.
                self.call_statement(value, func)
                return self.bind_data(target)
        if self.mentions_data(value):
            self.data_expr(value)
            return self.bind_data(target)
        result = self.value(value)
        if isinstance(result, (KLayer, Input)):
            self.error("create layers inside keras.Sequential([...]) or model.add(...)",
                       value)
        if isinstance(target, ast.Name):
            return self.bind(target.id, result, target)
        if isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
            if not isinstance(result, tuple) or len(result) != len(target.elts):
                self.error(f"cannot unpack {result!r} into {len(target.elts)} names", value)
            for t, v in zip(target.elts, result):
                self.bind(t.id, v, t)
            return None
        self.error("only assignments to names are allowed", target)

    def bind_data(self, target):
        if isinstance(target, ast.Name):
            self.bind(target.id, DATA, target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                self.bind_data(t)
        else:
            self.error("only assignments to names are allowed", target)

    def mentions_data(self, node) -> bool:
        return any(isinstance(n, ast.Name) and self.env.get(n.id) is DATA
                   for n in ast.walk(node))

    def callee(self, func):
        """A Ref, or (model method, node) for `model.method`, or None."""
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                func.value.id == self.model_var and self.model_var is not None:
            if func.attr not in MODEL_METHODS:
                self.error(f"model.{func.attr}() is not understood by cnnc", func)
            return (func.attr, func)
        if isinstance(func, ast.Name) and func.id == "print" and "print" not in self.env:
            return ("print", func)
        if isinstance(func, (ast.Name, ast.Attribute)):
            value = self.value(func)
            return value if isinstance(value, Ref) else None
        return None

    def call_statement(self, call: ast.Call, func):
        func = func or self.callee(call.func)
        if not isinstance(func, tuple):
            self.error("only model.add/compile/fit/summary/evaluate/save and print calls "
                       "are allowed as statements", call)
        method = func[0]
        if method in ("print", "evaluate", "summary", "save", "save_weights"):
            for arg in list(call.args) + [k.value for k in call.keywords]:
                self.data_expr(arg)
            return None
        if any(k.arg is None for k in call.keywords) or \
                any(isinstance(a, ast.Starred) for a in call.args):
            self.error("`*` and `**` arguments are not allowed", call)
        if method == "add":
            if len(call.args) != 1 or call.keywords:
                self.error("model.add() takes one layer", call)
            return self.add_layer(call.args[0])
        data_args = ("x", "y", "validation_data") if method == "fit" else ()
        kwargs = {k.arg: (self.value(k.value), k.value) for k in call.keywords
                  if k.arg not in data_args}
        if method == "compile":
            names = ("optimizer", "loss", "loss_weights", "metrics")
            for name, arg in zip(names, call.args):
                kwargs[name] = (self.value(arg), arg)
            for name, (value, arg) in kwargs.items():
                if isinstance(value, Ref):
                    kwargs[name] = (self.function_name(value, arg), arg)
            self.model.compile = kwargs
        else:                                                     # fit
            # x, y and validation_data are data: names there need no definition
            for arg in list(call.args) + [k.value for k in call.keywords
                                          if k.arg in ("x", "y", "validation_data")]:
                self.data_arg(arg)
            self.model.fit = kwargs
        return None

    # --- the model ---
    def sequential(self, var: str, call: ast.Call):
        if self.model is not None:
            self.error("a second model: cnnc imports one model per file", call)
        self.model_var = var
        name = "sequential"
        self.model = CodeModel(name, None, None, [], None, None, None, False)
        for k in call.keywords:
            if k.arg == "name":
                self.model.name = self.value(k.value)
            elif k.arg != "layers":
                self.error(f"Sequential argument '{k.arg}' is not understood", k.value)
        layers = [k.value for k in call.keywords if k.arg == "layers"] + list(call.args)
        if len(layers) > 1:
            self.error("Sequential takes one list of layers", call)
        if layers:
            if not isinstance(layers[0], (ast.List, ast.Tuple)):
                self.error("the layers of Sequential must be a list written out", layers[0])
            for element in layers[0].elts:
                self.add_layer(element)

    def add_layer(self, node):
        value = self.value(node)
        if isinstance(value, Input):
            if self.model.layers or self.model.input_shape is not None:
                self.error("the input must come first", node)
            self.model.input_shape, self.model.input_node = value.shape, value.node
            return
        if not isinstance(value, KLayer):
            self.error("expected a Keras layer", node)
        shape = None
        for key in ("input_shape", "batch_input_shape", "batch_shape", "input_dim"):
            if key in value.args:
                given = value.args.pop(key)
                shape = tuple(given)[1:] if key.startswith("batch") else given
                if key == "input_dim":
                    shape = (given,)
                where = value.arg_where.get(key, node)
                if self.model.layers or self.model.input_shape is not None:
                    self.error(f"{key} is allowed on the first layer only", where)
                self.model.input_shape, self.model.input_node = shape, where
        if value.cls == "InputLayer":
            if shape is None and "shape" in value.args:
                self.model.input_shape = value.args.pop("shape")
                self.model.input_node = node
            return
        self.model.layers.append(value)

    # --- expressions ---
    def value(self, node):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float, str, bool)) or node.value is None:
                return node.value
            self.refuse_kind(node)
        if isinstance(node, (ast.Tuple, ast.List)):
            items = tuple(self.value(e) for e in node.elts)
            return items if isinstance(node, ast.Tuple) else list(items)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand)
            if not _is_number(operand):
                self.error("`-` applies to numbers only", node)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self.arithmetic(node)
        if isinstance(node, ast.Name):
            if node.id in self.defines:
                return self.defines[node.id]
            if node.id not in self.env and (node.id.startswith("__") or
                                            node.id in BUILTINS):
                self.error(f"'{node.id}' is not allowed: cnnc reads Keras code without "
                           f"running it, and Python's built-ins are not available", node)
            if node.id not in self.env:
                define = f"{node.id}={GUESSES.get(node.id, 'VALUE')}"
                if not define.replace("_", "").replace("=", "").isalnum():
                    define = f"'{define}'"                # ready for the shell
                self.error(f"name '{node.id}' is not defined", node,
                           f"give its value: --define {define}")
            value = self.env[node.id]
            if value is DATA:
                self.error(f"'{node.id}' holds data; it cannot be used here", node)
            return value
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            if not isinstance(base, Ref):
                self.error(f"attribute '{node.attr}' of something that is not a module",
                           node)
            if base.path == "tensorflow" and node.attr == "keras":
                self.uses_tf = True
            return self.ref(canonical(f"{base.path}.{node.attr}"), node)
        if isinstance(node, ast.Call):
            return self.call(node)
        self.refuse_kind(node)

    def arithmetic(self, node: ast.BinOp):
        a, b = self.value(node.left), self.value(node.right)
        if not (_is_number(a) and _is_number(b)):
            self.error("arithmetic on numbers only", node)
        if abs(a) > 2**63 or abs(b) > 2**63:
            self.error("number too large", node)
        ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
               ast.Div: lambda: a / b, ast.FloorDiv: lambda: a // b}
        if type(node.op) not in ops:
            self.error("only +, -, *, / and // are allowed", node)
        try:
            return ops[type(node.op)]()
        except ZeroDivisionError:
            self.error("division by zero", node)

    def call(self, node: ast.Call):
        func = self.value(node.func)
        if not isinstance(func, Ref):
            self.error("only Keras layers and objects may be called", node.func)
        if any(k.arg is None for k in node.keywords) or \
                any(isinstance(a, ast.Starred) for a in node.args):
            self.error("`*` and `**` arguments are not allowed", node)
        path = func.path
        parent, _, cls = path.rpartition(".")
        args = [self.value(a) for a in node.args]
        kwargs = {k.arg: self.value(k.value) for k in node.keywords}
        where = {k.arg: k.value for k in node.keywords}
        if path in ("keras.Input", "keras.layers.Input"):
            extra = set(kwargs) - {"shape", "batch_size", "name", "dtype"}
            if extra or len(args) > 1:
                self.error(f"keras.Input: argument '{sorted(extra)[0] if extra else 'args'}' "
                           f"is not understood", node)
            return Input(args[0] if args else kwargs.get("shape"), node)
        if parent == "keras.layers":
            cls = ALIASES.get(cls, cls)
            if cls not in RULES and cls not in INPUT_CLASSES:
                self.error(f"layer class '{cls}' is not supported by cnnc (supported: " +
                           ", ".join(RULES) + ")", node.func)
            positional = RULES[cls].positional if cls in RULES else ("shape",)
            if len(args) > len(positional):
                self.error(f"{cls}: too many positional arguments", node)
            for key, value, arg in zip(positional, args, node.args):
                kwargs[key], where[key] = value, arg
            for key, value in list(kwargs.items()):
                if isinstance(value, Ref):
                    kwargs[key] = self.function_name(value, node)
            name = kwargs.get("name")
            return KLayer(cls, kwargs, name, node, where)
        if parent in LEAF_PARENTS:
            order = tuple(OPTIMIZERS.get(cls.lower(), (None, {}))[1]) \
                if parent == "keras.optimizers" else ()
            if parent == "keras.optimizers" and len(args) > len(order):
                self.error(f"{cls}: give the arguments by name", node)
            kwargs.update(zip(order or [f"arg{i}" for i in range(len(args))], args))
            return Obj(cls, kwargs)
        self.error(f"call to '{path}' is not allowed here", node)

    def function_name(self, ref: Ref, node) -> str:
        parent, _, name = ref.path.rpartition(".")
        if parent in ("keras.activations", "keras.losses", "keras.optimizers"):
            return name
        self.error(f"'{ref.path}' is not a value cnnc understands", node)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_code(text: str, file: str, defines: dict | None) -> tuple[CodeModel, CodeReader]:
    reader = CodeReader(text, file, defines)
    return reader.read(), reader
