"""Keras model files: `.keras` (a zip of config.json, metadata.json, model.weights.h5) and
legacy whole-model `.h5` (a `model_config` JSON attribute and `model_weights/`).

The config is read as JSON and interpreted here: Keras is never asked to deserialize it,
and nothing in it is run. Zip members are read into memory through a bounded reader
(never extracted to disk); a member whose declared size passes the bound, or whose
compression ratio is absurd, is refused before it is inflated.
"""

from __future__ import annotations

import json
import zipfile

from ...errors import FileError
from ..limits import human
from .layers import ALIASES, KLayer, Obj

MAX_JSON = 64 * 2**20               # config.json, metadata.json
MAX_WEIGHTS = 4 * 2**30             # model.weights.h5
MAX_RATIO = 200                     # inflated / compressed, for members over 1 MiB
LAMBDA = ("Lambda", "TFOpLambda", "SlicingOpLambda")


def read_keras_zip(path: str) -> tuple[dict, dict, bytes]:
    """(config, metadata, weights bytes) of a `.keras` file."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            if "config.json" not in members:
                raise FileError(path, "not a Keras 3 .keras file (no config.json in the zip)")
            config = _json(_member(zf, members["config.json"], MAX_JSON, path), path,
                           "config.json")
            metadata = {}
            if "metadata.json" in members:
                metadata = _json(_member(zf, members["metadata.json"], MAX_JSON, path),
                                 path, "metadata.json")
            weights = None
            if "model.weights.h5" in members:
                weights = _member(zf, members["model.weights.h5"], MAX_WEIGHTS, path)
            return config, metadata, weights
    except FileNotFoundError:
        raise FileError(path, "no such file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise FileError(path, f"not a valid .keras file ({e})") from None


def _member(zf, info: zipfile.ZipInfo, limit: int, path: str) -> bytes:
    name = info.filename
    if info.file_size > limit:
        raise FileError(path, f"zip member {name} declares {human(info.file_size)}, more "
                              f"than cnnc reads ({human(limit)})")
    if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise FileError(path, f"zip member {name} inflates {info.compress_size:,} bytes to "
                              f"{info.file_size:,}: a compression ratio over {MAX_RATIO} "
                              f"(a zip bomb?); refused")
    with zf.open(info) as f:
        data = f.read(min(limit, info.file_size) + 1)
    if len(data) > info.file_size:
        raise FileError(path, f"zip member {name} inflates past its declared size; refused")
    return data


def _json(data: bytes, path: str, member: str):
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FileError(path, f"{member} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise FileError(path, f"{member} is not a JSON object")
    return value


def read_h5_config(path: str):
    """(config, keras version, whether it holds weights) of a legacy whole-model .h5."""
    from .weights import check_file, open_h5
    f, size = open_h5(path, path)
    with f:
        check_file(f, size, path)
        if "model_config" not in f.attrs:
            raise FileError(path, "holds no model_config: a weights-only file? Give the "
                                  "model as code or a .keras file, with --weights " + path)
        raw = f.attrs["model_config"]
        training = f.attrs.get("training_config")
        version = f.attrs.get("keras_version", "")
        has_weights = "model_weights" in f
    config = _json(_attr(raw, path), path, "model_config")
    if training is not None:
        config["compile_config"] = _json(_attr(training, path), path, "training_config")
    version = version.decode() if isinstance(version, bytes) else str(version)
    return config, version, has_weights


def _attr(raw, path: str) -> bytes:
    raw = raw.encode() if isinstance(raw, str) else bytes(raw)
    if len(raw) > MAX_JSON:
        raise FileError(path, "a JSON attribute of the file is too large")
    return raw


def compile_config(config: dict) -> dict | None:
    """The saved compile() arguments, objects as Obj; None when the model was not compiled."""
    value = config.get("compile_config")
    if not isinstance(value, dict):
        return None
    return {k: _value(v) for k, v in value.items()}


def _value(v):
    """Config JSON values as the layer table takes them: objects become Obj."""
    if isinstance(v, dict) and "class_name" in v:
        if not isinstance(v["class_name"], str) or not isinstance(v.get("module", ""), str):
            raise ValueError(f"an object of class {v['class_name']!r}")
        config = v.get("config")
        kwargs = {k: _value(x) for k, x in config.items()} if isinstance(config, dict) else {}
        if isinstance(config, str):          # a serialized function: {"config": "relu"}
            return Obj(config, {}, v.get("module") or "keras")
        return Obj(v["class_name"], kwargs, v.get("module") or "keras")
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v


def _keras_module(module) -> bool:
    return module is None or module == "keras" or str(module).startswith("keras.")


def model_layers(config: dict, path: str) -> tuple[str, object, list[KLayer]]:
    """(model name, input shape, layers after the input) of a Sequential config, or of a
    Functional one that is a plain chain."""
    cls = config.get("class_name")
    body = config.get("config") if isinstance(config.get("config"), dict) else {}
    if not _keras_module(config.get("module")) or config.get("registered_name") not in \
            (None, cls):
        custom = config.get("registered_name") or cls
        raise FileError(path, f"the model is a custom class ({custom}); cnnc imports "
                              f"Keras's own classes only")
    if cls not in ("Sequential", "Functional", "Model"):
        raise FileError(path, f"the model is a {cls}; cnnc imports Sequential models")
    entries = body.get("layers")
    if not isinstance(entries, list) or not entries:
        raise FileError(path, "the model config has no layers")
    for entry in entries:
        _check_class(entry, path)
    if cls != "Sequential":
        _check_chain(entries, body, path)
    input_shape = None
    layers = []
    for i, entry in enumerate(entries):
        conf = dict(entry.get("config") or {})
        name = conf.get("name")
        if entry["class_name"] == "InputLayer":
            if i != 0:
                raise FileError(path, f"layer '{name}': an InputLayer after the first layer")
            shape = conf.get("batch_shape") or conf.get("batch_input_shape") or \
                [None] + list(conf.get("shape") or ())
            input_shape = tuple(shape[1:])
            continue
        for key in ("batch_input_shape", "batch_shape"):
            if key in conf:
                shape = conf.pop(key)
                if input_shape is None and not layers:
                    input_shape = tuple(shape[1:])
        conf.pop("batch_size", None)
        conf.pop("input_dim", None)
        cls_name = ALIASES.get(entry["class_name"], entry["class_name"])
        layers.append(KLayer(cls_name, {k: _value(v) for k, v in conf.items()}, name,
                             where=name))
    if input_shape is None:
        build = body.get("build_input_shape")
        if isinstance(build, list) and build:
            input_shape = tuple(build[1:])
    if input_shape is None:
        raise FileError(path, "the model config gives no input shape")
    return body.get("name") or "sequential", input_shape, layers


def _check_class(entry, path: str) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise FileError(path, "a layer entry of the config is not a Keras layer")
    cls = entry["class_name"]
    name = (entry.get("config") or {}).get("name", "?")
    if cls in LAMBDA:
        raise FileError(path, f"layer '{name}' is a {cls} layer: it holds Python code, "
                              f"which cnnc never runs")
    registered = entry.get("registered_name")
    if not _keras_module(entry.get("module")) or (registered not in (None, cls)):
        raise FileError(path, f"layer '{name}' is a custom class "
                              f"({registered or entry.get('module')}.{cls}); cnnc imports "
                              f"Keras's own layers only")


def _inbound(entry) -> list[list[str]]:
    """The layer names feeding each call of a layer (Keras 3 and tf.keras 2 formats)."""
    nodes = entry.get("inbound_nodes") or []
    out = []
    for node in nodes:
        names = []

        def walk(v):
            if isinstance(v, dict):
                hist = v.get("keras_history")
                if isinstance(hist, list) and hist:
                    names.append(hist[0])
                    return
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                if len(v) >= 3 and isinstance(v[0], str) and isinstance(v[1], int):
                    names.append(v[0])
                    return
                for x in v:
                    walk(x)
        walk(node)
        out.append(names)
    return out


def _check_chain(entries: list, body: dict, path: str) -> None:
    names = [(e.get("config") or {}).get("name") for e in entries]
    for i, entry in enumerate(entries[1:], 1):
        if _inbound(entry) != [[names[i - 1]]]:
            raise FileError(path, f"layer '{names[i]}': the Functional model is not a "
                                  f"simple chain of layers; cnnc imports chains only")
    outputs = body.get("output_layers")
    flat = json.dumps(outputs)
    if outputs is not None and (names[-1] not in flat or flat.count('"') > 2):
        raise FileError(path, "the Functional model's output is not its last layer")
