"""A Keras model, read by either reader, to the text of a .cnn file, checked by cnnc."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import CnncError, Diagnostic
from .layers import Context, KLayer, Refused, Statement, assign_names, convert


@dataclass(frozen=True)
class KerasImport:
    """What `cnnc.import_keras` returns: the .cnn text, the parameters in cnnc's layout
    (None without weights), and the model's name."""

    text: str
    params: dict | None
    model_name: str


@dataclass
class Generated:
    text: str
    statements: list[Statement]
    model_name: str
    shapes: dict          # parameter -> shape, as cnnc built the model


def model_name(name) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(name or "sequential"))
    return name if re.match(r"[A-Za-z_]", name) else f"model_{name}"


def input_text(shape, refuse) -> str:
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else shape
    if not (isinstance(shape, tuple) and len(shape) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        refuse(f"input shape {shape!r}: cnnc models take images (height, width, channels)")
    return f"input({shape[0]}, {shape[1]}, {shape[2]})"


def generate(*, header: str, name, input_shape, layers: list[KLayer], ctx: Context,
             train: list | None, refuse_input, refuse_layer, file: str) -> Generated:
    """The .cnn text; `refuse_layer(Refused)` and `refuse_input(message)` raise the
    reader's diagnostic. The text is checked by cnnc's own front end."""
    from .. import checker
    name = model_name(name)
    first = input_text(input_shape, refuse_input)
    try:
        statements = convert(layers, ctx, assign_names(layers))
    except Refused as e:
        refuse_layer(e)
    lines = [f"# {line}" for line in header.splitlines()]
    lines.append(f"model {name} {{")
    lines.append(f"    {first}")
    start = len(lines) + 1                       # line number of the first layer
    lines += [f"    {s.text}" for s in statements]
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if train:
        from .train import train_text
        text += "\n" + train_text(name, train)
    try:
        program = checker.check(text, "<generated>")
    except CnncError as e:
        diag = e.diagnostics[0]
        index = diag.loc.line - start if diag.loc is not None else -1
        if 0 <= index < len(statements):
            refuse_layer(Refused(diag.message, statements[index].layer, hint=diag.hint))
        raise CnncError(Diagnostic(f"the imported model is not valid in cnnc: "
                                   f"{diag.message}", file, hint=diag.hint)) from None
    shapes = {p.name: tuple(p.shape) for p in program.model().graph.params}
    return Generated(text, statements, name, shapes)
