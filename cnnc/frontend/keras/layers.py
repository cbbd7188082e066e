"""The one table from Keras layers to cnnc layer statements, shared by the code and file
readers.

A reader turns each Keras layer into a :class:`KLayer` -- its class name and its arguments
by their Keras names (Python values: numbers, strings, tuples, None, or :class:`Obj` for
initializer, regularizer and activation objects) -- and :func:`convert` turns the list
into cnnc statements. Every argument is either expressed in the statement, checked to be
a value cnnc has built in, or refused with an error naming it: nothing is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .args import (ALIASES, MISSING, Args, Context, KLayer, Obj, Refused,  # noqa: F401
                   keras_base_name, pair_text)


@dataclass(frozen=True)
class Rule:
    """One Keras class: its positional arguments (in Keras's order), the shape it needs
    ("image", "flat" or "any"), the shape it gives ("image", "flat" or "same"), its
    weights in Keras's order, and `build`, which returns the statement's arguments."""

    op: str
    positional: tuple[str, ...]
    needs: str
    gives: str
    build: object
    weights: object = ()           # a tuple, or a function of the argument dict


def _conv(a: Args):
    out = [a.integer("filters")]
    out.append("kernel=" + (a.pair("kernel_size") or "1"))
    if (s := a.pair("strides", (1, 1))):
        out.append(f"strides={s}")
    if a.padding() == "same":
        out.append("padding=same")
    if (d := a.pair("dilation_rate", (1, 1))):
        out.append(f"dilation={d}")
    a.fixed("data_format", None, "channels_last")
    a.fixed("groups", 1)
    _dense_common(a, out)
    return out


def _dense_common(a: Args, out: list):
    if (act := a.activation()):
        out.append(f"activation={act}")
    if not a.boolean("use_bias", True):
        out.append("use_bias=false")
    a.initializers("kernel_initializer", "bias_initializer")
    a.none("kernel_regularizer", "bias_regularizer", "activity_regularizer",
           "kernel_constraint", "bias_constraint", "lora_rank")
    a.fixed("lora_alpha", None)
    a.fixed("quantization_config", None)


def _dense(a: Args):
    out = [a.integer("units")]
    _dense_common(a, out)
    return out


def _pool(a: Args):
    pool = a.take("pool_size", (2, 2))
    out = [pair_text(pool, lambda: a.refuse(f"pool_size={pool!r} is not valid", "pool_size"))]
    strides = a.take("strides", None)
    if strides is not None:
        text = pair_text(strides, lambda: a.refuse(f"strides={strides!r} is not valid",
                                                   "strides"))
        if text != out[0]:
            out.append(f"strides={text}")
    if a.padding() == "same":
        out.append("padding=same")
    a.fixed("data_format", None, "channels_last")
    return out


def _global_pool(a: Args):
    a.fixed("data_format", None, "channels_last")
    a.fixed("keepdims", False)
    return []


def _flatten(a: Args):
    a.fixed("data_format", None, "channels_last")
    return []


def _dropout(a: Args):
    rate = a.num("rate")
    a.fixed("noise_shape", None)
    a.take("seed", None)            # cnnc draws masks from the train block's seed
    return [rate]


def _batchnorm(a: Args):
    axis = a.take("axis", -1)
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if axis not in (-1, a.ctx_last_axis):
        a.refuse(f"axis={axis!r} is not supported (cnnc normalizes the last axis)", "axis")
    out = [f"momentum={a.num('momentum', 0.99)}", f"epsilon={a.num('epsilon', 0.001)}"]
    for key in ("center", "scale"):
        if a.take(key, True) is not True:
            a.refuse(f"{key}=False is not supported (cnnc's batchnorm always has gamma "
                     f"and beta)", key)
    a.fixed("synchronized", False)
    a.fixed("renorm", False)
    a.fixed("renorm_clipping", None)
    a.take("renorm_momentum", None)          # used only with renorm=True
    a.fixed("fused", None, True)
    a.fixed("virtual_batch_size", None)
    a.fixed("adjustment", None)
    a.initializers("gamma_initializer", "beta_initializer", "moving_mean_initializer",
                   "moving_variance_initializer")
    a.none("gamma_regularizer", "beta_regularizer", "gamma_constraint", "beta_constraint")
    return out


def _activation(a: Args):
    act = a.activation()
    return [act or "linear"]


def _fixed_activation(text):
    def build(a: Args):
        return [text]
    return build


def _relu(a: Args):
    a.fixed("max_value", None)
    a.fixed("negative_slope", 0.0, 0)
    a.fixed("threshold", 0.0, 0)
    return ["relu"]


def _leaky_relu(a: Args):
    slope = a.left.pop("negative_slope", MISSING)
    alpha = a.left.pop("alpha", MISSING)          # tf.keras 2's name, still accepted by Keras 3
    value = alpha if slope is MISSING else slope
    a.left["negative_slope"] = 0.3 if value is MISSING else value
    return ["leaky_relu", f"alpha={a.num('negative_slope')}"]


def _elu(a: Args):
    return ["elu", f"alpha={a.num('alpha', 1.0)}"]


def _softmax(a: Args):
    a.fixed("axis", -1)
    return ["softmax"]


def _dense_weights(args) -> tuple:
    return ("kernel", "bias") if args.get("use_bias", True) else ("kernel",)


BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")

RULES: dict[str, Rule] = {
    "Conv2D": Rule("conv2d", ("filters", "kernel_size", "strides", "padding", "data_format",
                              "dilation_rate", "groups", "activation", "use_bias"),
                   "image", "image", _conv, _dense_weights),
    "Dense": Rule("dense", ("units", "activation", "use_bias"), "flat", "flat", _dense,
                  _dense_weights),
    "MaxPooling2D": Rule("maxpool2d", ("pool_size", "strides", "padding", "data_format"),
                         "image", "image", _pool),
    "AveragePooling2D": Rule("avgpool2d", ("pool_size", "strides", "padding",
                                           "data_format"), "image", "image", _pool),
    "GlobalAveragePooling2D": Rule("global_avgpool2d", ("data_format", "keepdims"),
                                   "image", "flat", _global_pool),
    "GlobalMaxPooling2D": Rule("global_maxpool2d", ("data_format", "keepdims"),
                               "image", "flat", _global_pool),
    "Flatten": Rule("flatten", ("data_format",), "any", "flat", _flatten),
    "Dropout": Rule("dropout", ("rate", "noise_shape", "seed"), "any", "same", _dropout),
    "BatchNormalization": Rule("batchnorm", ("axis", "momentum", "epsilon", "center",
                                             "scale"), "any", "same", _batchnorm,
                               BN_WEIGHTS),
    "Activation": Rule("activation", ("activation",), "any", "same", _activation),
    "ReLU": Rule("activation", ("max_value", "negative_slope", "threshold"), "any",
                 "same", _relu),
    "LeakyReLU": Rule("activation", ("negative_slope",), "any", "same", _leaky_relu),
    "ELU": Rule("activation", ("alpha",), "any", "same", _elu),
    "Softmax": Rule("activation", ("axis",), "any", "same", _softmax),
}
INPUT_CLASSES = ("InputLayer", "Input")


@dataclass(frozen=True)
class Statement:
    text: str                  # the cnnc statement
    name: str                  # the layer name
    weights: tuple[str, ...]   # parameter names in Keras's weight order
    layer: KLayer


def assign_names(layers: list[KLayer]) -> list[str]:
    """Names as Keras gives them in a fresh process: a counter per base name, explicit
    names left alone (the input layer counts too, as `input_layer`)."""
    counters: dict[str, int] = {}
    names = []
    for layer in layers:
        base = keras_base_name(layer.cls)
        counters[base] = counters.get(base, 0) + 1
        if layer.name is not None:
            names.append(layer.name)
        else:
            n = counters[base]
            names.append(base if n == 1 else f"{base}_{n - 1}")
    return names


NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")


def convert(layers: list[KLayer], ctx: Context, names: list[str]) -> list[Statement]:
    """cnnc statements for the layers after the input (Refused on the first problem)."""
    shape = "image"
    out, seen = [], {}
    for layer, name in zip(layers, names):
        rule = RULES.get(layer.cls)
        if rule is None:
            raise Refused(f"layer class '{layer.cls}' is not supported by cnnc (supported: "
                          + ", ".join(RULES) + ")", layer)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise Refused(f"{layer.cls}: layer name {name!r} is not a valid cnnc layer name "
                          f"(1 to 64 letters, digits, '_', '.', '-', starting with a letter "
                          f"or '_')", layer, "name")
        if name in seen:
            raise Refused(f"{layer.cls}: two layers are named '{name}'", layer, "name")
        seen[name] = layer
        if rule.needs == "flat" and shape != "flat":
            raise Refused(f"{layer.cls} on an image tensor (H, W, C): Keras applies it to "
                          f"the last axis; cnnc's {rule.op} needs a flat input", layer,
                          hint="add Flatten() or a global pooling layer before it")
        if rule.needs == "image" and shape != "image":
            raise Refused(f"{layer.cls} needs an image tensor (H, W, C), but its input is "
                          f"flat", layer)
        args = Args(layer, ctx)
        args.ctx_last_axis = 3 if shape == "image" else 1
        parts = rule.build(args)
        args.finish()
        parts.append(f'name="{name}"')
        weights = rule.weights(layer.args) if callable(rule.weights) else rule.weights
        out.append(Statement(f"{rule.op}({', '.join(parts)})", name, tuple(weights), layer))
        if rule.gives != "same":
            shape = rule.gives
    return out
