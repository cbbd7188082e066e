"""Keras models in: Keras code (read with ast, never run) and Keras files (.keras, .h5;
config as JSON, weights with h5py) to .cnn text and parameters. See docs/keras.md."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from ...errors import CnncError, Diagnostic, FileError
from ...version import __version__
from .layers import Context, Refused
from .model import KerasImport, generate

__all__ = ["KerasImport", "import_keras", "parse_defines"]

MAX_CODE = 16 * 2**20


def parse_defines(items) -> dict:
    """`NAME=VALUE` strings (the --define option) to a dict; VALUE is a Python literal
    read with ast.literal_eval (never eval)."""
    out = {}
    for item in items or ():
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise CnncError(Diagnostic(f"--define {item}: expected NAME=VALUE"))
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise CnncError(Diagnostic(
                f"--define {item}: '{text}' is not a Python literal (a number, a tuple, "
                f"a quoted string, True or False)")) from None
        if not _literal_ok(value):
            raise CnncError(Diagnostic(f"--define {item}: only numbers, strings, booleans, "
                                       f"None and tuples or lists of them"))
        out[name] = value
    return out


def _literal_ok(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_literal_ok(v) for v in value)
    return value is None or isinstance(value, (int, float, str, bool))


def import_keras(path, weights=None, defines: dict | None = None) -> KerasImport:
    """A Keras model as .cnn text and, when `weights` are given or the file holds them,
    its parameters as {"<layer>/<param>": float32 array} (Keras's own layouts).

    `path` is Keras code (`.py`, read with ast and never run), a `.keras` file or a
    legacy `.h5` file; `weights` a `.weights.h5` or weights-only `.h5` file; `defines`
    gives values to names the code uses without defining. Raises CnncError (bad input)
    or CnncRuntimeError (h5py missing)."""
    path = os.fspath(path)
    suffix = Path(path).suffix.lower()
    if not Path(path).is_file():
        raise FileError(path, "no such file" if not Path(path).exists() else "not a file")
    if weights is not None and not Path(weights).is_file():
        raise FileError(os.fspath(weights), "no such file")
    if suffix == ".py":
        generated, source = _from_code(path, weights is not None, defines)
    elif suffix in (".keras", ".h5", ".hdf5"):
        if defines:
            raise CnncError(Diagnostic("--define applies to Keras code (.py) only", path))
        try:
            generated, source = _from_file(path, suffix, weights is not None)
        except RecursionError:                   # JSON (or its objects) nested absurdly
            raise FileError(path, "the model config is nested too deeply") from None
    else:
        raise FileError(path, "not a Keras model: expected Keras code (.py), a .keras file "
                              "or an .h5 file")
    params = None
    if weights is not None:
        source = os.fspath(weights)
    if source is not None:
        from .weights import read_weights
        label = path if isinstance(source, bytes) else source
        params = read_weights(source, label, generated.statements, generated.shapes)
    return KerasImport(generated.text, params, generated.model_name)


def _from_code(path: str, with_weights: bool, defines):
    from ..checker import decode
    from .code import read_code
    from .train import fit_settings, loss_text, metrics_text, optimizer_text
    if Path(path).stat().st_size > MAX_CODE:
        raise FileError(path, f"is larger than {MAX_CODE // 2**20} MiB: not Keras code cnnc "
                              f"reads")
    text = decode(Path(path).read_bytes(), path).replace("\r\n", "\n")
    try:
        model, reader = read_code(text, path, defines)
    except (RecursionError, MemoryError):
        raise FileError(path, "expressions nested too deeply") from None

    def refuse_layer(e: Refused):
        layer = e.layer
        node = layer.arg_where.get(e.arg, layer.where) if layer is not None else None
        reader.error(e.message, node, e.hint)

    def refuse_input(message):
        reader.error(message, model.input_node)

    train = None
    if model.compile is not None:
        args = model.compile
        try:
            train = []
            if model.data:
                train.append(("data", model.data))
            if "loss" not in args or "optimizer" not in args:
                raise Refused("model.compile needs loss= and optimizer= for a train block",
                              arg=None)
            train.append(("loss", loss_text(args["loss"][0])))
            train.append(("optimizer", optimizer_text(args["optimizer"][0])))
            train.append(("metrics", metrics_text(args.get("metrics", (None,))[0])))
            for key in args:
                if key not in ("loss", "optimizer", "metrics"):
                    raise Refused(f"compile: argument '{key}' is not supported by cnnc",
                                  arg=key)
            fit = {k: v for k, (v, _) in (model.fit or {}).items()}
            train += fit_settings(fit)
        except Refused as e:
            nodes = {**{k: n for k, (_, n) in args.items()},
                     **{k: n for k, (_, n) in (model.fit or {}).items()}}
            node = nodes.get(e.arg) or _owner(e.arg, args) or model.input_node
            reader.error(e.message, node, e.hint)
    elif model.fit is not None:
        reader.error("model.fit without model.compile", None)
    header = f"Imported by cnnc {__version__} from {path} (Keras code, read as Keras 3)"
    generated = generate(header=header, name=model.name, input_shape=model.input_shape,
                         layers=model.layers, ctx=Context(with_weights), train=train,
                         refuse_input=refuse_input, refuse_layer=refuse_layer, file=path)
    return generated, None


def _owner(arg, args: dict):
    """The compile argument (optimizer, loss) whose object has the argument `arg`."""
    from .layers import Obj
    for value, node in args.values():
        if isinstance(value, Obj) and arg in value.kwargs:
            for k in getattr(node, "keywords", ()):
                if k.arg == arg:
                    return k.value
            return node
    return None


def _from_file(path: str, suffix: str, with_weights: bool):
    from .files import compile_config, model_layers, read_h5_config, read_keras_zip
    from .train import compiled_settings
    if suffix == ".keras":
        config, metadata, weights = read_keras_zip(path)
        version = str(metadata.get("keras_version", ""))
        source = weights
    else:
        config, version, has_weights = read_h5_config(path)
        source = path if has_weights else None
    try:
        name, input_shape, layers = model_layers(config, path)
        compiled = compile_config(config)
    except (TypeError, KeyError, AttributeError, ValueError, IndexError) as e:
        raise FileError(path, f"the model config is not one Keras writes "
                              f"({type(e).__name__}: {e})") from None
    keras2 = version.startswith("2.")

    def refuse_layer(e: Refused):
        where = e.layer.name if e.layer is not None else None
        where = f"layer '{where}': " if where else ""
        raise CnncError(Diagnostic(f"{where}{e.message}", path, hint=e.hint))

    def refuse_input(message):
        raise FileError(path, message)

    shown = f"Keras {version}" if version else "Keras (version not recorded)"
    header = f"Imported by cnnc {__version__} from {path} ({shown})"
    train = None
    if compiled is not None:
        try:
            train = compiled_settings(compiled)
        except Refused as e:                # the model is still usable: say why, in the text
            header += f"\nNo train block: {e.message}"
        except (TypeError, AttributeError, ValueError, KeyError) as e:
            header += f"\nNo train block: its compile config is not one Keras writes ({e})"
    ctx = Context(with_weights or source is not None, keras2)
    generated = generate(header=header, name=name, input_shape=input_shape, layers=layers,
                         ctx=ctx, train=train, refuse_input=refuse_input,
                         refuse_layer=refuse_layer, file=path)
    return generated, source
