"""`model.compile(...)` and `model.fit(...)` to a cnnc train block, with Keras 3's
defaults written out (cnnc's defaults are tf.keras's, but the text says what it means)."""

from __future__ import annotations

from .args import Obj, Refused, is_number, number

# Keras 3 optimizers: cnnc name, hyperparameters in Keras's positional order with their
# defaults, and the arguments cnnc has no counterpart for with their only accepted value.
OPTIMIZERS = {
    "sgd": ("sgd", {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
    "adam": ("adam", {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                      "epsilon": 1e-7, "amsgrad": False}),
    "rmsprop": ("rmsprop", {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0,
                            "epsilon": 1e-7, "centered": False}),
    "adadelta": ("adadelta", {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7}),
}
NOT_IN_CNNC = {"amsgrad": False, "centered": False}
OPTIMIZER_EXTRAS = {"weight_decay": None, "clipnorm": None, "clipvalue": None,
                    "global_clipnorm": None, "use_ema": False, "ema_momentum": 0.99,
                    "ema_overwrite_frequency": None, "loss_scale_factor": None,
                    "gradient_accumulation_steps": None}

LOSSES = {"categorical_crossentropy": "categorical_crossentropy",
          "categoricalcrossentropy": "categorical_crossentropy",
          "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
          "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
          "binary_crossentropy": "binary_crossentropy",
          "binarycrossentropy": "binary_crossentropy",
          "mse": "mse", "mean_squared_error": "mse", "meansquarederror": "mse"}
LOSS_DEFAULTS = {"from_logits": False, "label_smoothing": 0.0, "axis": -1,
                 "reduction": "sum_over_batch_size", "ignore_class": None, "fn": None}
METRICS = {"accuracy": "accuracy", "acc": "accuracy"}


def _named(value, kind: str, arg: str) -> tuple[str, dict]:
    """(class name, keyword arguments) of a loss or optimizer given as a string or an
    object (`Adam(learning_rate=...)`, a config's serialized object)."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Obj):
        return value.cls, dict(value.kwargs)
    raise Refused(f"{kind} {value!r} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind}",
                  arg=arg)


def optimizer_text(value, arg: str = "optimizer") -> str:
    cls, kwargs = _named(value, "optimizer", arg)
    entry = OPTIMIZERS.get(cls.lower())
    if entry is None:
        raise Refused(f"optimizer '{cls}' is not supported by cnnc (SGD, Adam, RMSprop, "
                      f"Adadelta)", arg=arg)
    name, defaults = entry
    if "lr" in kwargs:
        raise Refused(f"{cls}: the argument 'lr' was removed from Keras", arg="lr",
                      hint="write learning_rate=")
    kwargs.pop("name", None)
    for key, only in OPTIMIZER_EXTRAS.items():
        if key in kwargs and kwargs.pop(key) != only:
            raise Refused(f"{cls}: {key} is not supported by cnnc", arg=key)
    hyper = []
    for key, default in defaults.items():
        value = kwargs.pop(key, default)
        if key in NOT_IN_CNNC:
            if value != NOT_IN_CNNC[key]:
                raise Refused(f"{cls}: {key}={value!r} is not supported by cnnc", arg=key)
            continue
        if not (is_number(value) or isinstance(value, bool) and key == "nesterov"):
            raise Refused(f"{cls}: {key}={value!r} must be a number", arg=key)
        hyper.append(f"{key}={number(value)}")
    if kwargs:
        key = next(iter(kwargs))
        raise Refused(f"{cls}: argument '{key}' is not supported by cnnc", arg=key)
    return f"{name}({', '.join(hyper)})"


def loss_text(value, arg: str = "loss") -> str:
    cls, kwargs = _named(value, "loss", arg)
    name = LOSSES.get(cls.lower())
    if name is None:
        raise Refused(f"loss '{cls}' is not supported by cnnc (categorical_crossentropy, "
                      f"sparse_categorical_crossentropy, binary_crossentropy, mse)", arg=arg)
    kwargs.pop("name", None)
    kwargs.pop("fn", None)                          # tf.keras 2 configs: the function
    if kwargs.get("reduction") == "auto":           # tf.keras 2's name of the default
        kwargs.pop("reduction")
    for key, value in kwargs.items():
        if key not in LOSS_DEFAULTS or value != LOSS_DEFAULTS[key]:
            raise Refused(f"{cls}: {key}={value!r} is not supported by cnnc", arg=key,
                          hint="cnnc's losses take probabilities (from_logits=False) "
                               "without label smoothing" if key in
                               ("from_logits", "label_smoothing") else None)
    return name


def metrics_text(value, arg: str = "metrics") -> str:
    if value is None:
        return "[]"
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if not isinstance(item, str) or item not in METRICS:
            raise Refused(f"metric {item!r} is not supported by cnnc (only 'accuracy')",
                          arg=arg)
        if METRICS[item] not in out:
            out.append(METRICS[item])
    return "[" + ", ".join(out) + "]"


FIT_IGNORED = ("x", "y", "verbose", "validation_data")


def fit_settings(kwargs: dict) -> list[tuple[str, str]]:
    """batch_size, epochs and validation_split, at Keras's defaults when not given."""
    kwargs = dict(kwargs)
    for key in FIT_IGNORED:
        kwargs.pop(key, None)
    if kwargs.pop("shuffle", True) is not True:
        raise Refused("fit: shuffle=False is not supported by cnnc", arg="shuffle")
    out = []
    for key, default in (("batch_size", 32), ("epochs", 1)):
        value = kwargs.pop(key, default)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise Refused(f"fit: {key}={value!r} must be a positive integer", arg=key)
        out.append((key, str(value)))
    split = kwargs.pop("validation_split", 0.0)
    if not is_number(split):
        raise Refused(f"fit: validation_split={split!r} must be a number",
                      arg="validation_split")
    if split:
        out.append(("validation_split", number(split)))
    for key, value in kwargs.items():
        if value is not None:
            raise Refused(f"fit: argument '{key}' is not supported by cnnc", arg=key)
    return out


def train_text(model: str, settings: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in settings)
    body = "".join(f"    {k.ljust(width)} = {v}\n" for k, v in settings)
    return f"train {model} {{\n{body}}}\n"


def _float32(value):
    """Hyperparameters saved as float32 variables (0.0010000000474974513) at the value
    written in the code (0.001)."""
    import numpy as np
    if isinstance(value, float):
        return float(np.format_float_positional(np.float32(value), unique=True))
    return value


def compiled_settings(config: dict) -> list[tuple[str, str]]:
    """The train block of a saved model's compile config (`compile_config` of a .keras
    file, `training_config` of an .h5): loss, optimizer and metrics; Refused otherwise."""
    optimizer = config.get("optimizer") or config.get("optimizer_config")
    if isinstance(optimizer, Obj):
        kwargs = {k: _float32(v) for k, v in optimizer.kwargs.items()
                  if k not in ("jit_compile", "is_legacy_optimizer")}
        optimizer = Obj(optimizer.cls.removeprefix("Custom>"), kwargs)
    metrics = []
    for item in config.get("metrics") or []:
        for metric in item if isinstance(item, list) else [item]:
            metrics.append(metric.kwargs.get("name") if isinstance(metric, Obj) else metric)
    for key in ("loss_weights", "weighted_metrics"):
        if config.get(key):
            raise Refused(f"compile: {key} is not supported by cnnc", arg=key)
    return [("loss", loss_text(config.get("loss"))), ("optimizer", optimizer_text(optimizer)),
            ("metrics", metrics_text(metrics))]
