"""A generator of random valid model files, for property and differential tests.

`random_model(seed)` returns the text of one model: an input of random size, then a
random sequence of conv2d (kernel, strides, padding, dilation, activation, bias), pools,
batchnorm, dropout, activations and residual blocks (shape-preserving, possibly nested),
then a head (flatten or global pooling, dense layers, a final dense). Shapes are tracked
as layers are drawn, so every model checks; a FLOP and memory budget bounds the size.
The vocabulary of window geometries is kept small on purpose, so that kernels repeat
across models and the shared kernel store keeps test compile times low.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ACTIVATIONS = ["relu", "tanh", "sigmoid", "elu", "leaky_relu", "linear"]
FLOP_BUDGET = 3_000_000          # per sample
ELEMENT_BUDGET = 40_000          # largest activation tensor, per sample


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


class Generator:
    def __init__(self, seed: int, residual_depth: int = 2):
        self.rng = random.Random(seed)
        self.flops = 0
        self.lines: list[str] = []
        self.residual_depth = residual_depth

    def act(self) -> str:
        a = self.rng.choice(ACTIVATIONS)
        if a == "leaky_relu" and self.rng.random() < 0.5:
            return "leaky_relu(alpha=0.2)"
        return a

    def conv(self, shape: Shape, keep_shape: bool) -> tuple[str, Shape] | None:
        rng = self.rng
        k = rng.choice([1, 2, 3])
        if keep_shape:
            s, pad, d, filters = 1, "same", rng.choice([1, 1, 2]), shape.c
        else:
            s = rng.choice([1, 1, 2])
            pad = rng.choice(["valid", "same"])
            d = rng.choice([1, 2]) if s == 1 else 1
            filters = rng.choice([2, 3, 4, 6, 8])
        if pad == "same":
            oh, ow = _same_out(shape.h, s), _same_out(shape.w, s)
        else:
            oh, ow = _valid_out(shape.h, k, s, d), _valid_out(shape.w, k, s, d)
        if oh < 1 or ow < 1:
            return None
        out = Shape(oh, ow, filters)
        cost = 2 * out.size * k * k * shape.c
        if out.size > ELEMENT_BUDGET or self.flops + cost > FLOP_BUDGET:
            return None
        self.flops += cost
        args = [str(filters), f"kernel={k}"]
        if s != 1:
            args.append(f"strides={s}")
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
        s = rng.choice([None, 1, 2])
        pad = rng.choice(["valid", "valid", "same"])
        stride = s or p
        if pad == "same":
            oh, ow = _same_out(shape.h, stride), _same_out(shape.w, stride)
        else:
            oh, ow = _valid_out(shape.h, p, stride), _valid_out(shape.w, p, stride)
        if oh < 1 or ow < 1:
            return None
        args = [str(p)] + ([f"strides={s}"] if s else []) + \
            ([f"padding={pad}"] if pad != "valid" else [])
        return f"{op}({', '.join(args)})", Shape(oh, ow, shape.c)

    def body(self, shape: Shape, count: int, depth: int, keep_shape: bool) -> Shape:
        """Append up to `count` feature-map layers; returns the final shape."""
        for _ in range(count):
            choice = self.rng.random()
            if choice < 0.40:
                drawn = self.conv(shape, keep_shape)
            elif choice < 0.52 and not keep_shape:
                drawn = self.pool(shape)
            elif choice < 0.64:
                drawn = ("batchnorm()", shape)
            elif choice < 0.74:
                drawn = (f"activation({self.act()})", shape)
            elif choice < 0.80:
                drawn = (f"dropout({self.rng.choice([0.1, 0.5])})", shape)
            elif depth < self.residual_depth:
                self.lines.append("    " * (depth + 1) + "residual {")
                opened = len(self.lines)
                inner = self.body(shape, self.rng.randint(1, 3), depth + 1, keep_shape=True)
                if len(self.lines) == opened:          # nothing drawn: the block needs a layer
                    self.lines.append("    " * (depth + 2) + f"activation({self.act()})")
                assert (inner.h, inner.w, inner.c) == (shape.h, shape.w, shape.c)
                self.lines.append("    " * (depth + 1) + "}")
                continue
            else:
                drawn = None
            if drawn is None:
                continue
            text, shape = drawn
            self.lines.append("    " * (depth + 1) + text)
        return shape

    def model(self, name: str = "random_net") -> str:
        rng = self.rng
        shape = Shape(rng.randint(4, 14), rng.randint(4, 14), rng.choice([1, 2, 3, 4]))
        self.lines = [f"    input({shape.h}, {shape.w}, {shape.c})"]
        shape = self.body(shape, rng.randint(1, 6), 0, keep_shape=False)
        if rng.random() < 0.5:
            self.lines.append("    flatten()")
            width = shape.size
        else:
            self.lines.append(f"    {rng.choice(['global_avgpool2d', 'global_maxpool2d'])}()")
            width = shape.c
        for _ in range(rng.randint(0, 2)):
            units = rng.choice([3, 8, 16])
            if self.flops + 2 * width * units > FLOP_BUDGET:
                break
            self.flops += 2 * width * units
            act = f", activation={self.act()}" if rng.random() < 0.7 else ""
            self.lines.append(f"    dense({units}{act})")
            if rng.random() < 0.3:
                self.lines.append("    batchnorm()")
            width = units
        classes = rng.choice([2, 5, 10])
        last = rng.choice(["softmax", "softmax", "sigmoid", "linear"])
        self.lines.append(f"    dense({classes}, activation={last})")
        return f"model {name} {{\n" + "\n".join(self.lines) + "\n}\n"


def random_model(seed: int) -> str:
    return Generator(seed).model()
