"""The values and arguments of one Keras layer as the table in layers.py takes them:
KLayer, Obj, the Args helper (each argument taken, checked or refused by name) and the
activation, pair and number spellings of the .cnn text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MISSING = object()


@dataclass(frozen=True)
class Obj:
    """A Keras object given as an argument: `keras.initializers.HeNormal()` in code, or a
    `{"class_name": ..., "config": ...}` dict in a config. `cls` is the class name."""

    cls: str
    kwargs: dict = field(default_factory=dict)
    module: str = "keras"


@dataclass
class KLayer:
    cls: str                       # the Keras class name, aliases resolved
    args: dict                     # Keras argument name -> value
    name: str | None = None        # an explicit name; None: Keras's automatic one
    where: object = None           # the reader's position (a Loc for code)
    arg_where: dict = field(default_factory=dict)   # argument -> position


class Refused(Exception):
    """A layer or argument cnnc cannot express: (message, layer, argument, hint)."""

    def __init__(self, message: str, layer: KLayer | None = None, arg: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message, self.layer, self.arg, self.hint = message, layer, arg, hint


ALIASES = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
           "GlobalAvgPool2D": "GlobalAveragePooling2D",
           "GlobalMaxPool2D": "GlobalMaxPooling2D", "Convolution2D": "Conv2D"}


def keras_base_name(cls: str) -> str:
    """Keras's automatic name prefix of a class (keras.src.utils.naming.to_snake_case)."""
    name = re.sub(r"\W+", "", cls)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# Keras activation names -> cnnc activation text; None: no activation.
ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax",
               "linear": None, "elu": "elu", "leaky_relu": "leaky_relu(alpha=0.2)",
               "gelu": "gelu", "silu": "silu", "swish": "silu",
               "hard_sigmoid": "hard_sigmoid"}
KERAS2_HARD_SIGMOID = ("tf.keras 2 defines hard_sigmoid as 0.2 * x + 0.5 clipped to [0, 1]; "
                       "cnnc's (and Keras 3's) is x / 6 + 0.5 clipped: the model would "
                       "compute something else")

INIT_DEFAULTS = {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
                 "gamma_initializer": "ones", "beta_initializer": "zeros",
                 "moving_mean_initializer": "zeros", "moving_variance_initializer": "ones"}


@dataclass(frozen=True)
class Context:
    with_weights: bool         # weights are imported: initializers do not matter
    keras2: bool = False       # tf.keras 2 semantics (a file saved by Keras 2.x)


class Args:
    """The arguments of one layer, taken one by one; `finish` refuses what is left."""

    def __init__(self, layer: KLayer, ctx: Context):
        self.layer, self.ctx = layer, ctx
        self.left = dict(layer.args)

    def refuse(self, message: str, arg: str | None = None, hint: str | None = None):
        raise Refused(f"{self.layer.cls}: {message}", self.layer, arg, hint)

    def take(self, key: str, default=MISSING):
        value = self.left.pop(key, default)
        if value is MISSING:
            self.refuse(f"missing argument '{key}'", None)
        return value

    def fixed(self, key: str, *allowed):
        """An argument cnnc supports only at the given values (the first is Keras's
        default)."""
        value = self.left.pop(key, allowed[0])
        if isinstance(value, list):
            value = tuple(value)
        if value not in allowed:
            self.refuse(f"{key}={value!r} is not supported (cnnc supports only "
                        f"{key}={allowed[0]!r})", key)

    def none(self, *keys):
        for key in keys:
            if self.left.pop(key, None) is not None:
                self.refuse(f"{key} is not supported (cnnc has no regularizers or "
                            f"constraints)", key)

    def initializers(self, *keys):
        for key in keys:
            value = self.left.pop(key, None)
            name = _initializer_name(value)
            if name is None or name == INIT_DEFAULTS[key] or self.ctx.with_weights:
                continue
            self.refuse(f"{key}={name} differs from cnnc's {INIT_DEFAULTS[key]}", key,
                        "import the trained weights with it (--weights), or use the "
                        "default initializer")

    def pair(self, key: str, default=MISSING) -> str | None:
        value = self.take(key, default)
        if value is None:
            return None
        text = pair_text(value, lambda: self.refuse(f"{key}={value!r} is not a positive "
                                                    f"integer or a pair of them", key))
        if default is not MISSING and text == pair_text(default, None):
            return None
        return text

    def integer(self, key: str) -> str:
        value = self.take(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.refuse(f"{key}={value!r} is not a positive integer", key)
        return str(value)

    def num(self, key: str, default=MISSING) -> str:
        value = self.take(key, default)
        if not is_number(value):
            self.refuse(f"{key}={value!r} is not a number", key)
        return number(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.take(key, default)
        if not isinstance(value, bool):
            self.refuse(f"{key}={value!r} is not True or False", key)
        return value

    def padding(self) -> str:
        value = self.take("padding", "valid")
        if not isinstance(value, str) or value.lower() not in ("valid", "same"):
            self.refuse(f"padding={value!r} is not supported (valid or same)", "padding")
        return value.lower()

    def activation(self, key: str = "activation") -> str | None:
        value = self.left.pop(key, None)
        return activation_text(value, self, key)

    def finish(self):
        for key in ("name", "trainable", "dtype"):
            value = self.left.pop(key, None)
            if key == "trainable" and value is False:
                self.refuse("trainable=False is not supported (every cnnc parameter "
                            "trains)", key)
            if key == "dtype" and _dtype_name(value) not in (None, "float32"):
                self.refuse(f"dtype {_dtype_name(value)} is not supported (cnnc computes "
                            f"in float32)", key)
        if self.left:
            key = next(iter(self.left))
            self.refuse(f"argument {key}={self.left[key]!r} cannot be expressed in cnnc",
                        key)


def _dtype_name(value):
    if isinstance(value, Obj):
        return value.kwargs.get("name")
    return value


def _initializer_name(value) -> str | None:
    if value is None:
        return None
    return keras_base_name(value.cls if isinstance(value, Obj) else str(value))


def pair_text(value, bad) -> str:
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, bool) or not isinstance(value, (int, tuple)):
        bad()
    if isinstance(value, int):
        value = (value, value)
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                  for v in value):
        bad()
    return str(value[0]) if value[0] == value[1] else f"({value[0]}, {value[1]})"


def activation_text(value, args: Args, key: str) -> str | None:
    if isinstance(value, Obj):
        if value.cls in ACTIVATIONS and not value.kwargs and \
                (value.module == "keras" or value.module.startswith("keras.")):
            value = value.cls
        else:
            args.refuse(f"{key}: '{value.cls}' is not a Keras activation cnnc has", key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in ACTIVATIONS:
        args.refuse(f"{key}={value!r} is not an activation cnnc has (" +
                    ", ".join(a for a in ACTIVATIONS) + ")", key)
    if value == "hard_sigmoid" and args.ctx.keras2:
        args.refuse(f"{key}=hard_sigmoid: {KERAS2_HARD_SIGMOID}", key)
    return ACTIVATIONS[value]


def is_number(value) -> bool:
    import math
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def number(value) -> str:
    """A number as a .cnn file writes it: 0.5, 1e-7 (not Python's 1e-07)."""
    if isinstance(value, bool):
        return str(value).lower()
    return re.sub(r"e([-+])0*(\d)", r"e\1\2", repr(float(value))).replace("e+", "e")
