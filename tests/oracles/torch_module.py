"""An independent translator from a checked cnnc model to a real `torch.nn.Module`.

It reads only the checked model's IR *before* any pass (op names, attributes, value
types and parameter names) and builds the network out of stock torch.nn layers --
nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d/1d, nn.Linear, nn.Flatten,
nn.Softmax, ... -- nested as the model file nests them (a `Residual` module per residual
block). It shares no code with cnnc's kernels nor with tests/oracles/torch_ref.py (the
functional oracle) but the table naming torch's layer for each activation
(oracles/activations.py), so that the two oracles and cnnc are three separate
implementations.

Conventions bridged here, all in the translator and none in the layers:

* Layout: activations are NCHW inside; `forward` takes and returns Keras layouts (NHWC
  images, flat vectors in Keras's order).
* TF `same` padding: computed here from TF's rule (the extra row/column of an odd total
  goes to the bottom/right) and applied by an explicit pad layer (zeros before a
  convolution, -inf before max pooling). TF's average pooling with `same` padding divides
  by the number of window positions inside the input: a sum pool over the zero-padded
  input divided by a count computed here (`TFAvgPool2d`).
* Flatten: torch flattens NCHW in (C, H, W) order, Keras NHWC in (H, W, C) order. Each flat
  tensor carries `order` (Keras index of every torch position); parameters indexed by
  features (the rows of the next dense kernel, batchnorm vectors) and dropout masks are
  permuted to match, and a residual add whose operands disagree reorders its body's
  output.
* Parameters are copied from Keras layouts: conv kernels HWIO -> OIHW, dense kernels
  (in, out) -> (out, in), batchnorm gamma/beta/moving statistics -> weight/bias/running
  buffers. Gradients and values are mapped back the same way.
* Batchnorm: Keras's `momentum` m is torch's 1 - m; epsilon is passed through. In
  training mode torch normalizes with the biased batch variance (as Keras), but moves
  `running_var` with the unbiased one; `keras_moving_variance` gives the Keras update.
* Dropout: `MaskedDropout` multiplies by a mask given from outside (cnnc's, to compare
  one training step), or is the identity.

`keras_loss` holds tf.keras's losses, from probabilities and from logits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oracles.activations import TORCH_ACTIVATIONS


def tf_same_pads(size: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's `same` padding along one axis: (before, after)."""
    extent = (window - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _pads(attrs, hw) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of a windowed op on an input of height/width `hw`."""
    if attrs["padding"] == "valid":
        return 0, 0, 0, 0
    window = attrs["kernel"] if "kernel" in attrs else attrs["pool"]
    dilation = attrs.get("dilation", (1, 1))
    top, bottom = tf_same_pads(hw[0], window[0], attrs["strides"][0], dilation[0])
    left, right = tf_same_pads(hw[1], window[1], attrs["strides"][1], dilation[1])
    return left, right, top, bottom


class TFAvgPool2d(nn.Module):
    """Average pooling with TF's `same` padding: padded positions are not counted."""

    def __init__(self, pool, strides, pads, hw):
        super().__init__()
        left, right, top, bottom = pads
        self.pad = nn.ZeroPad2d(pads)
        self.sum = nn.AvgPool2d(pool, strides, divisor_override=1)

        def inside(size, window, stride, before, after):
            starts = np.arange(0, size + before + after - window + 1, stride) - before
            return np.minimum(starts + window, size) - np.maximum(starts, 0)

        rows = inside(hw[0], pool[0], strides[0], top, bottom)
        cols = inside(hw[1], pool[1], strides[1], left, right)
        self.register_buffer("count", torch.tensor(np.outer(rows, cols)[None, None]))

    def forward(self, x):
        return self.sum(self.pad(x)) / self.count


class MaskedDropout(nn.Module):
    """Dropout with masks set from outside (`mask`, NCHW or torch-ordered flat, already
    scaled by 1 / (1 - rate)); the identity when no mask is set or in eval mode."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate
        self.mask = None

    def forward(self, x):
        return x * self.mask if self.training and self.mask is not None else x

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class Residual(nn.Module):
    """body(x) + x; `index` reorders a flat body output to the skip's feature order."""

    def __init__(self, body: nn.Sequential, index: np.ndarray | None):
        super().__init__()
        self.body = body
        self.index = None if index is None else torch.tensor(index)

    def forward(self, x):
        y = self.body(x)
        return (y if self.index is None else y[:, self.index]) + x


@dataclass
class Binding:
    """How a Keras-layout parameter maps to a torch tensor (parameter or buffer)."""

    tensor: Callable[[], torch.Tensor]
    to_torch: Callable[[np.ndarray], np.ndarray]
    to_keras: Callable[[np.ndarray], np.ndarray]
    trainable: bool


def _reorder(have, want) -> np.ndarray | None:
    """The index taking a flat torch tensor in feature order `have` to order `want`
    (None: Keras's order), or None when they agree."""
    if have is None and want is None:
        return None
    n = len(have if have is not None else want)
    index = np.argsort(have) if have is not None else np.arange(n)
    if want is not None:
        index = index[want]
    return None if np.array_equal(index, np.arange(n)) else index


def _features(order):
    """(to_torch, to_keras) of a per-feature vector for a flat tensor of `order`."""
    if order is None:
        return (lambda a: a), (lambda a: a)
    inv = np.argsort(order)
    return (lambda a: a[order]), (lambda a: a[inv])


ACTIVATION_MODULES = TORCH_ACTIVATIONS


class TorchModel(nn.Module):
    """The model as torch.nn layers, in float64. See the module docstring."""

    def __init__(self, model):
        super().__init__()
        self.graph = model.graph
        self.bindings: dict[str, Binding] = {}
        self.dropouts: dict[str, tuple[MaskedDropout, str]] = {}
        self.orders: dict[str, np.ndarray | None] = {}    # flat values not in Keras order
        self.momentum: dict[str, float] = {}      # moving variance -> Keras momentum
        self.body = self._translate()
        out = self.graph.outputs[0]
        last = self.graph.producer(out)
        self.last_op = last.op if last is not None else None
        self.output_order = self.orders.get(out)
        self.logits_order = self.orders.get(last.inputs[0]) if last is not None else None
        self.double()

    # --- translation ---
    def _translate(self) -> nn.Sequential:
        g = self.graph
        skips = Counter(n.inputs[1] for n in g.nodes if n.op == "add")
        opened: Counter = Counter()
        frames: list[list[nn.Module]] = [[]]
        stack: list[str] = []               # the skip value of each open residual block
        absorbed: set[str] = set()          # bias_add nodes folded into their layer
        cur = g.inputs[0]
        for node in g.nodes:
            if node.name in absorbed:
                self.orders[node.output] = self.orders.get(cur)
                cur = node.output
                continue
            if node.op == "add":
                body_out, skip = node.inputs
                assert stack and stack[-1] == skip and body_out == cur, node
                stack.pop()
                mods = frames.pop()
                index = _reorder(self.orders.get(body_out), self.orders.get(skip))
                frames[-1].append(Residual(nn.Sequential(*mods), index))
                self.orders[node.output] = self.orders.get(skip)
                cur = node.output
                continue
            while opened[cur] < skips[cur]:    # residual blocks starting at this value
                opened[cur] += 1
                stack.append(cur)
                frames.append([])
            assert node.inputs[0] == cur, node
            consumers = g.consumers.get(node.output, [])
            bias = len(consumers) == 1 and consumers[0].op == "bias_add" and \
                node.op in ("conv2d", "dense")
            if bias:
                absorbed.add(consumers[0].name)
            frames[-1].append(self._module(node, consumers[0] if bias else None))
            cur = node.output
        assert not stack and len(frames) == 1
        return nn.Sequential(*frames[0])

    def _bind(self, name, tensor, to_torch, to_keras, trainable=True):
        self.bindings[name] = Binding(tensor, to_torch, to_keras, trainable)

    def _module(self, node, bias_node) -> nn.Module:
        g = self.graph
        x = node.inputs[0]
        shape = g.type(x).shape
        order = self.orders.get(x)
        self.orders[node.output] = order
        op, attrs = node.op, node.attrs
        if op == "conv2d":
            conv = nn.Conv2d(shape[2], attrs["filters"], attrs["kernel"], attrs["strides"],
                             dilation=attrs["dilation"], bias=bias_node is not None)
            self._bind(node.inputs[1], lambda: conv.weight,
                       lambda w: w.transpose(3, 2, 0, 1), lambda w: w.transpose(2, 3, 1, 0))
            if bias_node is not None:
                self._bind(bias_node.inputs[1], lambda: conv.bias, *_features(None))
            pads = _pads(attrs, shape[:2])
            return nn.Sequential(nn.ZeroPad2d(pads), conv) if any(pads) else conv
        if op == "dense":
            linear = nn.Linear(shape[0], attrs["units"], bias=bias_node is not None)
            rows = np.arange(shape[0]) if order is None else order

            def to_keras(w, rows=rows):
                out = np.empty_like(w.T)
                out[rows] = w.T
                return out
            self._bind(node.inputs[1], lambda: linear.weight, lambda w: w[rows].T, to_keras)
            if bias_node is not None:
                self._bind(bias_node.inputs[1], lambda: linear.bias, *_features(None))
            self.orders[node.output] = None
            return linear
        if op in ("maxpool2d", "avgpool2d"):
            pads = _pads(attrs, shape[:2])
            if op == "maxpool2d":
                pool = nn.MaxPool2d(attrs["pool"], attrs["strides"])
                return nn.Sequential(nn.ConstantPad2d(pads, -float("inf")), pool) \
                    if any(pads) else pool
            if any(pads):
                return TFAvgPool2d(attrs["pool"], attrs["strides"], pads, shape[:2])
            return nn.AvgPool2d(attrs["pool"], attrs["strides"])
        if op == "global_avgpool2d":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if op == "global_maxpool2d":
            return nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        if op == "flatten":
            h, w, c = shape
            self.orders[node.output] = np.arange(h * w * c).reshape(h, w, c) \
                .transpose(2, 0, 1).ravel()
            return nn.Flatten()
        if op == "dropout":
            module = MaskedDropout(attrs["rate"])
            self.dropouts[node.layer] = (module, x)
            return module
        if op == "batchnorm":
            _, gamma, beta, mean, var = node.inputs
            kind = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            bn = kind(shape[-1], eps=attrs["epsilon"], momentum=1.0 - attrs["momentum"])
            forward, backward = _features(order)
            self._bind(gamma, lambda: bn.weight, forward, backward)
            self._bind(beta, lambda: bn.bias, forward, backward)
            self._bind(mean, lambda: bn.running_mean, forward, backward, trainable=False)
            self._bind(var, lambda: bn.running_var, forward, backward, trainable=False)
            self.momentum[var] = attrs["momentum"]
            return bn
        if op in ACTIVATION_MODULES:
            return ACTIVATION_MODULES[op](attrs)
        raise NotImplementedError(f"no torch translation of op {op!r}")

    # --- parameters ---
    def load_keras(self, params: dict) -> None:
        """Copy Keras-layout parameters (and moving statistics) into the torch layers."""
        assert set(params) == set(self.bindings), sorted(set(params) ^ set(self.bindings))
        with torch.no_grad():
            for name, b in self.bindings.items():
                value = b.to_torch(np.asarray(params[name], np.float64))
                b.tensor().copy_(torch.from_numpy(np.ascontiguousarray(value)))
                if b.tensor().grad is not None:
                    b.tensor().grad = None

    def keras_values(self) -> dict[str, np.ndarray]:
        """Every parameter and moving statistic, in Keras layouts."""
        return {name: b.to_keras(b.tensor().detach().numpy())
                for name, b in self.bindings.items()}

    def keras_grads(self) -> dict[str, np.ndarray]:
        """The gradient of every trainable parameter, in Keras layouts."""
        out = {}
        for name, b in self.bindings.items():
            if b.trainable:
                grad = b.tensor().grad
                out[name] = b.to_keras(np.zeros(tuple(b.tensor().shape)) if grad is None
                                       else grad.numpy())
        return out

    def named_trainables(self) -> dict[str, torch.Tensor]:
        return {name: b.tensor() for name, b in self.bindings.items() if b.trainable}

    def keras_moving_variance(self, name: str, before: np.ndarray, count: int) -> np.ndarray:
        """Keras's moving variance `name` after one training step, from torch's.

        torch moves `running_var` with the unbiased batch variance s2u, Keras with the
        biased one s2u * (count - 1) / count, where count is the number of values per
        channel (batch x height x width). With Keras's momentum m both start from
        `before`: torch = m * before + (1 - m) * s2u, so keras = torch - (1 - m) * s2u /
        count = torch - (torch - m * before) / count."""
        b = self.bindings[name]
        now = b.to_keras(b.tensor().detach().numpy())
        return now - (now - self.momentum[name] * before) / count

    # --- running ---
    def set_dropout_masks(self, masks: dict | None) -> None:
        """Masks by dropout layer name, in Keras layout (N, H, W, C) or (N, features);
        None clears them."""
        for layer, (module, value) in self.dropouts.items():
            if masks is None or layer not in masks:
                module.mask = None
                continue
            mask = torch.from_numpy(np.asarray(masks[layer], np.float64))
            if mask.dim() == 4:
                mask = mask.permute(0, 3, 1, 2)
            elif self.orders.get(value) is not None:
                mask = mask[:, self.orders[value]]
            module.mask = mask

    def forward(self, x, logits: bool = False):
        """Output for Keras-layout input `x` (N, H, W, C); with `logits`, the input of the
        final softmax/sigmoid instead. The result is in Keras layout."""
        x = torch.as_tensor(np.asarray(x, np.float64)) if not torch.is_tensor(x) else x
        h = x.permute(0, 3, 1, 2)
        if logits:
            assert self.last_op in ("softmax", "sigmoid"), self.last_op
            layers, order = list(self.body)[:-1], self.logits_order
        else:
            layers, order = list(self.body), self.output_order
        for layer in layers:
            h = layer(h)
        if h.dim() == 4:
            return h.permute(0, 2, 3, 1)
        return h if order is None else h[:, torch.from_numpy(np.argsort(order))]


def keras_loss(name: str, y, labels: np.ndarray, from_logits: bool):
    """tf.keras's loss (the batch mean) of flat model outputs `y` (N, K).

    From probabilities, as tf.keras's backend: categorical cross-entropies normalize each
    row by its sum and clip to [1e-7, 1 - 1e-7]; binary cross-entropy clips and shifts its
    logs by 1e-7. From logits (what tf.keras uses when the output is a softmax/sigmoid):
    log-softmax and the stable sigmoid cross-entropy."""
    t = torch.from_numpy(np.asarray(labels, np.float64))
    eps = 1e-7
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        if name.startswith("sparse"):
            t = F.one_hot(t.long(), y.shape[1]).double()
        if from_logits:
            return -(t * F.log_softmax(y, dim=1)).sum(dim=1).mean()
        p = torch.clamp(y / y.sum(dim=1, keepdim=True), eps, 1 - eps)
        return -(t * torch.log(p)).sum(dim=1).mean()
    if name == "binary_crossentropy":
        if from_logits:
            return F.binary_cross_entropy_with_logits(y, t, reduction="none").mean(dim=1).mean()
        p = torch.clamp(y, eps, 1 - eps)
        return -(t * torch.log(p + eps) + (1 - t) * torch.log(1 - p + eps)).mean(dim=1).mean()
    if name == "mse":
        return ((y - t) ** 2).mean(dim=1).mean()
    raise NotImplementedError(name)
