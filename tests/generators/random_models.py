"""A generator of random valid model files, for property and differential tests.

`random_model(seed)` returns the text of one model drawn from the whole catalogue of the
language: an input of random size and channel count, then a random sequence of

* conv2d: kernel (square or not), strides, valid/same padding, dilation, activation
  (every one, softmax over the channels included, with or without alpha), bias or not;
* maxpool2d / avgpool2d: window, strides (default, square or not), valid/same padding;
* batchnorm (default or chosen momentum and epsilon), dropout, activation layers
  (written `activation(fn)`, `activation(fn, alpha=a)` or `activation(fn(alpha=a))`);
* residual blocks (shape-preserving bodies, possibly nested),

then a head: flatten or global pooling (max or avg), dense layers with any activation,
batchnorm, dropout and residual blocks over the flat tensor, and a final layer (a dense
layer with softmax, sigmoid, tanh or no activation, a separate `activation(softmax)`,
or a residual block, so that models do not all end alike). Some layers get an explicit
`name=`. Shapes are tracked as layers are drawn, so every model checks; a budget of
FLOPs and of activation elements per sample bounds the size.

`random_model(seed, profile="tiny")` draws from the same catalogue with small inputs,
channel counts and budgets: models whose generated kernels run quickly with the JIT
disabled (the differential CI set). The vocabulary of window geometries is kept small on
purpose, so that kernels repeat across models and the shared kernel store keeps compile
times low.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ACTIVATIONS = ["relu", "tanh", "sigmoid", "elu", "leaky_relu", "linear"]
ALPHA_ACTIVATIONS = {"leaky_relu": (0.1, 0.2), "elu": (0.5, 2.0)}


@dataclass(frozen=True)
class Profile:
    """Sizes and budgets a model is drawn within (per sample)."""

    flops: int                      # FLOP budget of the conv2d and dense layers
    elements: int                   # largest activation tensor
    size: tuple[int, int]           # input height and width, inclusive range
    channels: tuple[int, ...]       # input channel counts
    filters: tuple[int, ...]        # conv2d output channels
    units: tuple[int, ...]          # hidden dense units
    classes: tuple[int, ...]        # final dense units
    body: tuple[int, int]           # number of feature-map layers drawn, inclusive range
    residual_depth: int = 2         # deepest nesting of residual blocks


PROFILES = {
    "default": Profile(flops=3_000_000, elements=40_000, size=(4, 14), channels=(1, 2, 3, 4),
                       filters=(2, 3, 4, 6, 8), units=(3, 8, 16), classes=(2, 5, 10),
                       body=(1, 6)),
    "tiny": Profile(flops=12_000, elements=160, size=(2, 7), channels=(1, 2, 3),
                    filters=(1, 2, 3, 4), units=(2, 3, 5), classes=(2, 3, 4),
                    body=(1, 5)),
}


@dataclass
class Shape:
    h: int
    w: int
    c: int

    @property
    def size(self) -> int:
        return self.h * self.w * self.c


def _same_out(n, s):
    return -(-n // s)


def _valid_out(n, k, s, d=1):
    ext = (k - 1) * d + 1
    return (n - ext) // s + 1 if n >= ext else 0


def _pair(a: int, b: int) -> str:
    return str(a) if a == b else f"({a}, {b})"


class Generator:
    def __init__(self, seed: int, profile: str = "default"):
        self.rng = random.Random(seed)
        self.profile = PROFILES[profile]
        self.flops = 0
        self.lines: list[str] = []
        self.names = 0

    # --- pieces ---
    def act(self, softmax: bool = True) -> str:
        """An activation as written in `activation=` (alpha sometimes given)."""
        rng = self.rng
        if softmax and rng.random() < 0.06:
            return "softmax"
        a = rng.choice(ACTIVATIONS)
        if a in ALPHA_ACTIVATIONS and rng.random() < 0.5:
            return f"{a}(alpha={rng.choice(ALPHA_ACTIVATIONS[a])})"
        return a

    def activation_layer(self) -> str:
        fn = self.act()
        if "(" in fn and self.rng.random() < 0.5:        # the keyword form of alpha
            name, alpha = fn.rstrip(")").split("(alpha=")
            return f"activation({name}, alpha={alpha})"
        return f"activation({fn})"

    def named(self, text: str) -> str:
        """Sometimes give a layer an explicit name (letters, digits, '_', '.', '-')."""
        if self.rng.random() >= 0.05:
            return text
        self.names += 1
        name = f"{self.rng.choice(['my', 'L', '_x'])}.layer-{self.names}"
        return text[:-1] + (", " if not text.endswith("()") else "") + f'name="{name}")'

    def batchnorm(self) -> str:
        rng = self.rng
        if rng.random() < 0.7:
            return "batchnorm()"
        return f"batchnorm(momentum={rng.choice([0.0, 0.5, 0.9])}, " \
               f"epsilon={rng.choice([1e-05, 0.01, 0.1])})"

    def dropout(self) -> str:
        return f"dropout({self.rng.choice([0.1, 0.25, 0.5])})"

    def append(self, depth: int, text: str) -> None:
        self.lines.append("    " * (depth + 1) + text)

    # --- feature maps ---
    def conv(self, shape: Shape, keep_shape: bool) -> tuple[str, Shape] | None:
        rng = self.rng
        k = rng.choice([1, 2, 3])
        kw = k if rng.random() < 0.85 else rng.choice([1, 2, 3])
        if keep_shape:
            s = sw = 1
            pad, d, filters = "same", rng.choice([1, 1, 2]), shape.c
        else:
            s = rng.choice([1, 1, 2])
            sw = s if rng.random() < 0.85 else rng.choice([1, 2])
            pad = rng.choice(["valid", "same"])
            d = rng.choice([1, 2]) if s == sw == 1 else 1
            filters = rng.choice(self.profile.filters)
        if pad == "same":
            oh, ow = _same_out(shape.h, s), _same_out(shape.w, sw)
        else:
            oh, ow = _valid_out(shape.h, k, s, d), _valid_out(shape.w, kw, sw, d)
        if oh < 1 or ow < 1:
            return None
        out = Shape(oh, ow, filters)
        cost = 2 * out.size * k * kw * shape.c
        if out.size > self.profile.elements or self.flops + cost > self.profile.flops:
            return None
        self.flops += cost
        args = [str(filters), f"kernel={_pair(k, kw)}"]
        if (s, sw) != (1, 1):
            args.append(f"strides={_pair(s, sw)}")
        if pad != "valid":
            args.append(f"padding={pad}")
        if d != 1:
            args.append(f"dilation={d}")
        if rng.random() < 0.6:
            args.append(f"activation={self.act()}")
        if rng.random() < 0.2:
            args.append("use_bias=false")
        return f"conv2d({', '.join(args)})", out

    def pool(self, shape: Shape) -> tuple[str, Shape] | None:
        rng = self.rng
        op = rng.choice(["maxpool2d", "avgpool2d"])
        p = rng.choice([2, 2, 3])
        pw = p if rng.random() < 0.85 else rng.choice([1, 2, 3])
        s = rng.choice([None, 1, 2])
        sw = s if s is None or rng.random() < 0.85 else rng.choice([1, 2])
        pad = rng.choice(["valid", "valid", "same"])
        stride = (s or p, sw or pw)
        if pad == "same":
            oh, ow = _same_out(shape.h, stride[0]), _same_out(shape.w, stride[1])
        else:
            oh, ow = _valid_out(shape.h, p, stride[0]), _valid_out(shape.w, pw, stride[1])
        if oh < 1 or ow < 1:
            return None
        args = [_pair(p, pw)] + ([f"strides={_pair(s, sw)}"] if s else []) + \
            ([f"padding={pad}"] if pad != "valid" else [])
        return f"{op}({', '.join(args)})", Shape(oh, ow, shape.c)

    def residual(self, depth: int, draw_body) -> None:
        """A residual block whose body `draw_body(depth)` keeps the shape."""
        self.append(depth, "residual {")
        opened = len(self.lines)
        draw_body(depth + 1)
        if len(self.lines) == opened:          # nothing drawn: the block needs a layer
            self.append(depth + 1, self.activation_layer())
        self.append(depth, "}")

    def body(self, shape: Shape, count: int, depth: int, keep_shape: bool) -> Shape:
        """Append up to `count` feature-map layers; returns the final shape."""
        for _ in range(count):
            choice = self.rng.random()
            if choice < 0.40:
                drawn = self.conv(shape, keep_shape)
            elif choice < 0.52 and not keep_shape:
                drawn = self.pool(shape)
            elif choice < 0.64:
                drawn = (self.batchnorm(), shape)
            elif choice < 0.74:
                drawn = (self.activation_layer(), shape)
            elif choice < 0.80:
                drawn = (self.dropout(), shape)
            elif depth < self.profile.residual_depth:
                self.residual(depth, lambda d, inner=shape: self.body(
                    inner, self.rng.randint(1, 3), d, keep_shape=True))
                continue
            else:
                drawn = None
            if drawn is None:
                continue
            text, new = drawn
            assert not keep_shape or new == shape
            shape = new
            self.append(depth, self.named(text))
        return shape

    # --- flat tensors ---
    def dense(self, width: int, units: int, softmax: bool = True) -> str | None:
        if self.flops + 2 * width * units > self.profile.flops:
            return None
        self.flops += 2 * width * units
        rng = self.rng
        args = [str(units)]
        if rng.random() < 0.7:
            args.append(f"activation={self.act(softmax)}")
        if rng.random() < 0.15:
            args.append("use_bias=false")
        return f"dense({', '.join(args)})"

    def flat(self, width: int, count: int, depth: int, keep_width: bool) -> int:
        """Append up to `count` layers on a flat tensor; returns the final width."""
        rng = self.rng
        for _ in range(count):
            choice = rng.random()
            if choice < 0.45:
                units = width if keep_width else rng.choice(self.profile.units)
                text = self.dense(width, units)
                if text is None:
                    continue
                width = units
            elif choice < 0.60:
                text = self.batchnorm()
            elif choice < 0.70:
                text = self.dropout()
            elif choice < 0.80:
                text = self.activation_layer()
            elif depth < self.profile.residual_depth and width <= 64:
                self.residual(depth, lambda d, inner=width: self.flat(
                    inner, rng.randint(1, 2), d, keep_width=True))
                continue
            else:
                continue
            self.append(depth, self.named(text))
        return width

    def head(self, width: int) -> None:
        """The last layer(s): mostly a dense classifier, sometimes something else."""
        rng = self.rng
        choice = rng.random()
        classes = rng.choice(self.profile.classes)
        if choice < 0.08 and width <= 16:                # the flat tensor itself
            self.append(0, f"activation({rng.choice(['softmax', 'sigmoid', 'tanh'])})")
            return
        if choice < 0.16:
            self.append(0, f"dense({classes})")
            self.append(0, "activation(softmax)")
            return
        if choice < 0.22:                                # ends with a residual add
            self.append(0, f"dense({classes})")
            self.residual(0, lambda d: self.append(d, f"dense({classes}, activation=tanh)"))
            return
        last = rng.choice(["softmax", "softmax", "sigmoid", "linear", "tanh"])
        self.append(0, f"dense({classes}, activation={last})")

    def model(self, name: str = "random_net") -> str:
        rng = self.rng
        lo, hi = self.profile.size
        shape = Shape(rng.randint(lo, hi), rng.randint(lo, hi), rng.choice(self.profile.channels))
        self.lines = [f"    input({shape.h}, {shape.w}, {shape.c})"]
        shape = self.body(shape, rng.randint(*self.profile.body), 0, keep_shape=False)
        if rng.random() < 0.5:
            self.append(0, "flatten()")
            width = shape.size
        else:
            self.append(0, f"{rng.choice(['global_avgpool2d', 'global_maxpool2d'])}()")
            width = shape.c
        width = self.flat(width, rng.randint(0, 3), 0, keep_width=False)
        self.head(width)
        return f"model {name} {{\n" + "\n".join(self.lines) + "\n}\n"


def random_model(seed: int, profile: str = "default") -> str:
    """The text of random model number `seed` of `profile` ("default" or "tiny")."""
    return Generator(seed, profile).model()
