"""Checking a parsed file and lowering its models to IR graphs.

Each model block becomes a :class:`~cnnc.ir.graph.Graph`. A DSL layer lowers to its op,
then ``bias_add`` when it has a bias, then its activation op, so that the fusion pass has
real work to do and ``fuse="none"`` is an honest baseline. Errors are collected, not
raised one by one: a layer with bad arguments leaves the shape unknown and later shape
checks of that model are skipped, so one mistake does not cascade.
"""

from __future__ import annotations

import re

from ..errors import CnncError, Diagnostic, Diagnostics, Loc, did_you_mean
from ..ir import ops
from ..ir.attrs import LINEAR, AttrError, Str
from ..ir.builder import GraphBuilder
from ..ir.graph import INPUT, Attrs, TensorType
from ..ir.ops.training import LOSSES
from . import ast, limits
from .convert import convert
from .parser import parse_text
from .program import LayerInfo, Model, Program
from .train_block import check_train_block

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,%d}\Z" % (limits.MAX_NAME - 1))


def decode(data: bytes, file: str) -> str:
    """UTF-8 text of a model file; a clear error pointing at the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        end = data.find(b"\n", e.start)
        shown = data[start:end if end >= 0 else len(data)]
        col = len(data[start:e.start].decode("utf-8", "replace")) + 1
        raise CnncError(Diagnostic(f"file is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                                   file, Loc(line, col), shown.decode("utf-8", "replace"),
                                   hint="save the file as UTF-8")) from None
    # Windows (CR LF) and old Mac (CR) line endings read as LF: lines and columns agree
    # with what an editor shows.
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def check(text: str, file: str = "<string>") -> Program:
    diags = Diagnostics(file, text.splitlines())
    if not re.sub(r"#[^\n]*", "", text).strip():
        diags.error("the file is empty: expected 'model NAME { ... }'", Loc(1, 1),
                    "start with e.g. 'model net { input(28, 28, 1) ... }'")
        diags.raise_if_any()
    limits.check_source(text, diags)
    tree = parse_text(text, diags)
    if tree is None:
        diags.raise_if_any()
    if not tree.models and not diags:
        diags.error("no model in this file: expected 'model NAME { ... }'", Loc(1, 1))
    models: dict[str, Model] = {}
    lines = text.splitlines()
    for block in tree.models:
        if len(block.name) > limits.MAX_NAME:
            diags.error(f"model name of {len(block.name)} characters: at most "
                        f"{limits.MAX_NAME}", block.loc)
            continue
        if block.name in models:
            diags.error(f"duplicate model name '{block.name}'", block.loc,
                        notes=(diags.note("first defined here", models[block.name].loc),))
            continue
        model = _ModelChecker(block, diags, file, lines).check()
        if model is not None:
            models[block.name] = model
    model_names = {b.name for b in tree.models}
    trains = {}
    for block in tree.trains:
        if block.model not in model_names:
            diags.error(f"train block names unknown model '{block.model}'", block.loc,
                        did_you_mean(block.model, model_names) or
                        ("models in this file: " + ", ".join(sorted(model_names))
                         if model_names else None))
            continue
        if block.model in trains:
            diags.error(f"second train block for model '{block.model}'", block.loc,
                        notes=(diags.note("first given here", trains[block.model].loc),))
            continue
        config = check_train_block(block, diags)
        if config is None:
            continue
        trains[block.model] = config
        if block.model in models:
            _check_loss(config, models[block.model], diags)
    diags.raise_if_any()
    return Program(file, text, models, trains)


def _check_loss(config, model: Model, diags: Diagnostics) -> None:
    """A cross-entropy over classes needs a model that ends with a distribution."""
    if not LOSSES[config.loss].needs_distribution:
        return
    graph = model.graph
    last = graph.producer(graph.outputs[0])
    if last is not None and ops.get(last.op).distribution:
        return
    if not model.layers:
        diags.error(f"{config.loss} needs a model whose last layer is softmax, but "
                    f"'{model.name}' has no layers", config.locs["loss"],
                    "end the model with dense(..., activation=softmax)")
        return
    layer = model.layers[-1]
    diags.error(f"{config.loss} needs a model whose last layer is softmax, but "
                f"'{layer.name}' ends with {last.op}", config.locs["loss"],
                "end the model with dense(..., activation=softmax)",
                notes=(diags.note(f"last layer of '{model.name}'", layer.loc),))


class _ModelChecker:
    def __init__(self, block: ast.ModelBlock, diags: Diagnostics, file: str, lines: list[str]):
        self.block = block
        self.diags = diags
        self.file = file
        self.lines = lines
        self.builder = GraphBuilder()
        self.layers: list[LayerInfo] = []
        self.names: dict[int, str] = {}        # id(layer stmt) -> layer name
        self.errors_before = len(diags.items)

    # --- entry ---
    def check(self) -> Model | None:
        block = self.block
        body = block.body
        first = body[0] if body else None
        if not (isinstance(first, ast.Layer) and first.op == "input"):
            self.diags.error(f"model '{block.name}' must start with input(height, width, "
                             f"channels)", first.loc if first else block.loc,
                             "add e.g. 'input(28, 28, 1)' as the first line of the model")
            x = None
        else:
            x = self._input(first)
            body = body[1:]
        self._assign_names(body)
        x = self._lower_block(body, x, depth=0)
        if len(self.diags.items) > self.errors_before or x is None:
            return None
        graph = self.builder.build([x])
        limits.check_model(graph, self.layers, block.name, self.diags)
        if len(self.diags.items) > self.errors_before:
            return None
        source = "\n".join(self.lines[block.first_line - 1:block.last_line])
        return Model(block.name, graph, tuple(self.layers), block.loc, self.file, source,
                     graph.type(graph.inputs[0]))

    # --- names ---
    def _assign_names(self, body) -> None:
        explicit: dict[str, ast.Arg] = {}
        order: list[ast.Layer] = []

        def visit(stmts):
            for stmt in stmts:
                if isinstance(stmt, ast.Residual):
                    visit(stmt.body)        # the inner block's add is created first
                    order.append(stmt)
                    continue
                order.append(stmt)
                named = None
                for arg in stmt.args:
                    if arg.key != "name":
                        continue
                    if named is not None:
                        self.diags.error("argument 'name' given twice", arg.loc,
                                         notes=(self.diags.note("first given here",
                                                                named.loc),))
                        continue
                    named = arg
                    try:
                        name = convert(Str(), arg.value)
                    except AttrError as e:
                        self.diags.error(f"'name' {e.message}", e.loc)
                        continue
                    if not NAME_RE.match(name):
                        self.diags.error(
                            f"invalid layer name {_quote(name)}", arg.value.loc,
                            "names are 1 to 64 letters, digits, '_', '.' or '-', "
                            "starting with a letter or '_'")
                    elif name == "input":
                        self.diags.error("the layer name 'input' is reserved for the model's "
                                         "input", arg.value.loc)
                    elif name in explicit:
                        self.diags.error(f"duplicate layer name '{name}'", arg.value.loc,
                                         notes=(self.diags.note("first used here",
                                                                explicit[name].value.loc),))
                    else:
                        explicit[name] = arg
                        self.names[id(stmt)] = name
        visit(body)
        counters: dict[str, int] = {}
        for stmt in order:
            if id(stmt) in self.names:
                continue
            if isinstance(stmt, ast.Residual):
                base = "add"
            else:
                op = ops.OPS.get(stmt.op)
                base = op.keras_name if op is not None and op.dsl else stmt.op
            while True:
                i = counters.get(base, 0)
                counters[base] = i + 1
                name = base if i == 0 else f"{base}_{i}"
                if name not in explicit:
                    break
            self.names[id(stmt)] = name

    # --- lowering ---
    def _input(self, stmt: ast.Layer) -> str | None:
        dims = []
        for arg in stmt.args:
            if arg.key is None:
                dims.append(arg.value)
            elif arg.key == "shape" and len(stmt.args) == 1 and \
                    isinstance(arg.value, (ast.Tuple, ast.List)):
                dims.extend(arg.value.items)
            else:
                what = f"argument '{arg.key}'" if arg.key != "shape" else "'shape' here"
                self.diags.error(f"unexpected {what} for input", arg.loc,
                                 "write input(height, width, channels) or "
                                 "input(shape=(height, width, channels))")
                return None
        if len(dims) != 3:
            self.diags.error(f"input expects 3 sizes (height, width, channels), got "
                             f"{len(dims)}", stmt.loc, "write e.g. input(28, 28, 1)")
            return None
        sizes = []
        for d in dims:
            if not isinstance(d, ast.Int):
                self.diags.error(f"input sizes must be integers, got {ast.describe(d)}", d.loc)
                return None
            if d.value <= 0:
                self.diags.error(f"input sizes must be positive, got {d.value}", d.loc)
                return None
            if d.value > limits.MAX_INT:
                self.diags.error(f"input sizes must be at most {limits.MAX_INT}, got "
                                 f"{d.value}", d.loc)
                return None
            sizes.append(d.value)
        return self.builder.input("input", TensorType(tuple(sizes)), INPUT)

    def _lower_block(self, body, x: str | None, depth: int) -> str | None:
        for stmt in body:
            if isinstance(stmt, ast.Residual):
                x = self._residual(stmt, x, depth)
            elif stmt.op == "input":
                self.diags.error("input(...) may only be the first statement of a model",
                                 stmt.loc)
                x = None
            else:
                x = self._layer(stmt, x, depth)
        return x

    def _residual(self, stmt: ast.Residual, x: str | None, depth: int) -> str | None:
        name = self.names[id(stmt)]
        if depth + 1 > limits.MAX_DEPTH:
            self.diags.error(f"residual blocks nested deeper than {limits.MAX_DEPTH}",
                             stmt.loc)
            return None
        if not stmt.body:
            self.diags.error("empty residual block: it would add its input to itself",
                             stmt.loc, "put the layers of the block inside the braces")
            return None
        y = self._lower_block(stmt.body, x, depth + 1)
        if x is None or y is None:
            return None
        tx, ty = self.builder.type(x), self.builder.type(y)
        if tx != ty:
            self.diags.error(f"residual block changes the shape from {tx} to {ty}, so its "
                             f"output cannot be added to its input", stmt.loc,
                             "keep the block's output shape equal to its input "
                             "(padding=same, strides 1, same filters)")
            return None
        out = self.builder.node("add", [y, x], layer=name, loc=stmt.loc)
        flops = ops.get("add").flops(Attrs(), [tx, tx], ty)
        self.layers.append(LayerInfo(name, "residual", stmt.loc, ty, (), (out,), flops, depth))
        return out

    def _layer(self, stmt: ast.Layer, x: str | None, depth: int) -> str | None:
        op = ops.OPS.get(stmt.op)
        if op is None or not op.dsl:
            names = list(ops.dsl_ops()) + ["residual", "input"]
            hint = "residual takes a block: residual { ... }" if stmt.op == "residual" \
                else did_you_mean(stmt.op, names) or "ops are " + ", ".join(sorted(ops.dsl_ops()))
            self.diags.error(f"unknown op '{stmt.op}'", stmt.loc, hint)
            return None
        name = self.names[id(stmt)]
        attrs = self._bind(op, stmt)
        if attrs is None or x is None:
            return None
        before = len(self.builder.nodes)
        nparams = len(self.builder.params)
        try:
            y = self._emit(op, attrs, x, name, stmt.loc)
        except ops.ShapeError as e:
            self.diags.error(f"{stmt.op} '{name}': {e.message}", stmt.loc, e.hint)
            return None
        new_nodes = self.builder.nodes[before:]
        flops = sum(ops.get(n.op).flops(n.attrs, [self.builder.type(i) for i in n.inputs],
                                        self.builder.type(n.output)) for n in new_nodes)
        self.layers.append(LayerInfo(name, stmt.op, stmt.loc, self.builder.type(y),
                                     tuple(self.builder.params[nparams:]),
                                     tuple(n.name for n in new_nodes), flops, depth))
        return y

    def _bind(self, op: ops.OpDef, stmt: ast.Layer) -> dict | None:
        """Match arguments to the op's attributes; None after reporting errors."""
        given: dict[str, ast.Arg] = {}
        ok = True
        positional = [a for a in op.attrs if a.positional]
        npos = 0
        for arg in stmt.args:
            if arg.key == "name":
                continue
            if arg.key is None:
                if given and any(a.key is not None and a.key != "name" for a in given.values()):
                    self.diags.error("positional argument after a keyword argument", arg.loc)
                    ok = False
                    continue
                if npos >= len(positional):
                    self.diags.error(f"{stmt.op} takes {_count(len(positional))} positional "
                                     f"argument{'s' if len(positional) != 1 else ''}, "
                                     f"got more", arg.loc,
                                     "name the argument: " + ", ".join(
                                         f"{a.name}=" for a in op.attrs if not a.positional)
                                     if len(op.attrs) > len(positional) else None)
                    ok = False
                    continue
                key = positional[npos].name
                npos += 1
            else:
                key = arg.key
                if not any(a.name == key for a in op.attrs):
                    choices = [a.name for a in op.attrs] + ["name"]
                    self.diags.error(f"unknown argument '{key}' for {stmt.op}", arg.loc,
                                     did_you_mean(key, choices) or
                                     f"{stmt.op} takes " + ", ".join(choices))
                    ok = False
                    continue
            if key in given:
                self.diags.error(f"argument '{key}' given twice", arg.loc,
                                 notes=(self.diags.note("first given here", given[key].loc),))
                ok = False
                continue
            given[key] = arg
        attrs: dict = {}
        for attr in op.attrs:
            if attr.name not in given:
                if attr.required and ok:
                    self.diags.error(f"{stmt.op} needs '{attr.name}'"
                                     + (f" ({attr.doc})" if attr.doc else ""), stmt.loc,
                                     f"e.g. {stmt.op}({op.example})")
                    ok = False
                else:
                    attrs[attr.name] = attr.default
                continue
            arg = given[attr.name]
            try:
                attrs[attr.name] = convert(attr.kind, arg.value)
            except AttrError as e:
                message = f"{stmt.op}: {e.message}" if e.message.startswith("unknown") \
                    else f"{stmt.op}: '{attr.name}' {e.message}"
                self.diags.error(message, e.loc or arg.loc, e.hint)
                ok = False
        if not ok:
            return None
        return self._post_attrs(op, stmt, attrs, given)

    def _post_attrs(self, op, stmt, attrs, given) -> dict | None:
        if op.window is not None and attrs.get("strides") is None:
            attrs["strides"] = attrs[op.window.size]          # strides default to the window
        if op.window is not None and op.window.dilated and attrs["dilation"] != (1, 1) and \
                attrs["strides"] != (1, 1):
            self.diags.error(f"{op.name}: strides > 1 cannot be combined with dilation > 1 "
                             "(as in tf.keras)", given.get("dilation", given.get("strides")).loc)
            return None
        if "alpha" in attrs and "fn" in attrs:          # activation(fn, alpha=...)
            fn, params = attrs["fn"]
            if attrs["alpha"] is not None:
                if "alpha" not in dict(params):
                    takes = [name for name, a in ops.activation_ops().items()
                             if any(p.name == "alpha" for p in a.attrs)]
                    self.diags.error(f"'alpha' applies only to {' and '.join(takes)}, not {fn}",
                                     given["alpha"].loc)
                    return None
                params = tuple((k, attrs["alpha"] if k == "alpha" else v) for k, v in params)
            attrs = {"fn": (fn, params)}
        return attrs

    def _emit(self, op: ops.OpDef, attrs: dict, x: str, name: str, loc: Loc) -> str:
        b = self.builder
        if "fn" in attrs:                        # activation(fn): the function's own op
            return self._activation(attrs["fn"], x, name, loc, main=True)
        node_attrs = {k: v for k, v in attrs.items() if k not in op.layer_options}
        x_type = b.type(x)
        if op.window is not None and len(x_type.shape) == 3:
            node_attrs["pads"] = op.window.pads(Attrs(node_attrs), x_type)
        # Shape first (ShapeError before any parameter is created).
        out_type = op.infer(Attrs(node_attrs), [x_type] + [
            TensorType(s.shape, batched=False) for s in (op.params(Attrs(node_attrs), x_type)
                                                         if op.params else [])])
        param_values = [b.param(name, spec) for spec in
                        (op.params(Attrs(node_attrs), x_type) if op.params else [])]
        y = b.node(op.name, [x] + param_values, node_attrs, layer=name, loc=loc, name=name,
                   out_type=out_type)
        if attrs.get("use_bias"):
            bias = b.param(name, ops.ParamSpec("bias", (out_type.shape[-1],), "zeros"))
            y = b.node("bias_add", [y, bias], layer=name, loc=loc, name=f"{name}/bias_add")
        fn = attrs.get("activation", LINEAR)
        if fn != LINEAR:
            y = self._activation(fn, y, name, loc, main=False)
        return y

    def _activation(self, fn, x, layer, loc, main: bool) -> str:
        """The activation op of `fn` = (name, parameter values); the layer's own node when
        the layer is activation(fn), else named after the layer and the function."""
        kind, params = fn
        return self.builder.node(kind, [x], dict(params), layer=layer, loc=loc,
                                 name=layer if main else f"{layer}/{kind}")


def _quote(name: str) -> str:
    text = name if len(name) <= 40 else name[:37] + "..."
    return repr(text)


def _count(n: int) -> str:
    return {0: "no", 1: "one", 2: "two", 3: "three"}.get(n, str(n))

