"""An independent PyTorch implementation of cnnc's ops, for oracle tests.

It reads only the checked model's IR *before* any pass (ops, attributes, parameter
names), never cnnc's kernels, and computes in float64 with torch.nn.functional in NCHW.
TF's `same` padding (extra row/column at the bottom/right) is reproduced with an explicit
pad; average pooling divides by the number of non-padded positions, as TF does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from oracles.activations import TORCH_ACTIVATIONS



def _pads(attrs):
    pt, pb, pl, pr = attrs["pads"]
    return (pl, pr, pt, pb)


def _channel(vec, like):
    return vec.view(1, -1, 1, 1) if like.dim() == 4 else vec.view(1, -1)


def apply(op: str, attrs, ins: list, params: list):
    """One op in NCHW float64. `ins` are activations, `params` parameter tensors."""
    x = ins[0] if ins else None
    if op == "conv2d":
        w = params[0].permute(3, 2, 0, 1)                      # HWIO -> OIHW
        return F.conv2d(F.pad(x, _pads(attrs)), w, stride=attrs["strides"],
                        dilation=attrs["dilation"])
    if op == "bias_add":
        return x + _channel(params[0], x)
    if op == "maxpool2d":
        return F.max_pool2d(F.pad(x, _pads(attrs), value=-float("inf")), attrs["pool"],
                            attrs["strides"])
    if op == "avgpool2d":
        total = F.avg_pool2d(F.pad(x, _pads(attrs)), attrs["pool"], attrs["strides"],
                             divisor_override=1)
        count = F.avg_pool2d(F.pad(torch.ones_like(x), _pads(attrs)), attrs["pool"],
                             attrs["strides"], divisor_override=1)
        return total / count
    if op == "global_avgpool2d":
        return x.mean(dim=(2, 3))
    if op == "global_maxpool2d":
        return x.amax(dim=(2, 3))
    if op == "dense":
        return x @ params[0]
    if op == "flatten":
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)    # NHWC order, as Keras
    if op == "dropout":
        return x
    if op in TORCH_ACTIVATIONS:
        return TORCH_ACTIVATIONS[op](attrs)(x)
    if op == "batchnorm":
        gamma, beta, mean, var = params
        return (x - _channel(mean, x)) / torch.sqrt(_channel(var, x) + attrs["epsilon"]) \
            * _channel(gamma, x) + _channel(beta, x)
    if op == "add":
        return ins[0] + ins[1]
    raise NotImplementedError(op)


def forward(model, params: dict, x: np.ndarray) -> np.ndarray:
    """The model's output for NHWC `x`, computed in float64 by PyTorch."""
    graph = model.graph
    values = {graph.inputs[0]: torch.from_numpy(np.asarray(x, np.float64)).permute(0, 3, 1, 2)}
    p = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in params.items()}
    for node in graph.nodes:
        acts = [values[v] for v in node.inputs if v in values]
        prms = [p[v] for v in node.inputs if v in p]
        values[node.output] = apply(node.op, node.attrs, acts, prms)
    y = values[graph.outputs[0]]
    if y.dim() == 4:
        y = y.permute(0, 2, 3, 1)
    return y.numpy()


def random_params(model, seed: int, scale: float = 0.5) -> dict:
    """Parameters with every value non-trivial (biases, batchnorm statistics included)."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in model.graph.params:
        fan_in = int(np.prod(p.shape[:-1])) if len(p.shape) > 1 else 1
        if p.name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, p.shape)
        elif p.name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, p.shape)
        elif len(p.shape) > 1:
            value = rng.normal(0, scale / np.sqrt(fan_in), p.shape)
        else:
            value = rng.normal(0, 0.1, p.shape)
        out[p.name] = value.astype(np.float32)
    return out


# --- training -------------------------------------------------------------------------

def train_forward(model, params: dict, x: np.ndarray, masks: dict | None = None):
    """Forward in training mode (batch statistics, dropout masks given per layer in NHWC
    order); returns (output, params as leaf tensors requiring grad)."""
    graph = model.graph
    values = {graph.inputs[0]: torch.from_numpy(np.asarray(x, np.float64)).permute(0, 3, 1, 2)}
    p = {k: torch.tensor(np.array(v, dtype=np.float64), requires_grad=True)
         for k, v in params.items()}
    for node in graph.nodes:
        acts = [values[v] for v in node.inputs if v in values]
        prms = [p[v] for v in node.inputs if v in p]
        if node.op == "batchnorm":
            gamma, beta = prms[0], prms[1]
            xin = acts[0]
            dims = (0, 2, 3) if xin.dim() == 4 else (0,)
            mean = xin.mean(dim=dims)
            var = xin.var(dim=dims, unbiased=False)          # Keras: biased variance
            y = (xin - _channel(mean, xin)) / torch.sqrt(_channel(var, xin) +
                                                          node.attrs["epsilon"])
            values[node.output] = y * _channel(gamma, xin) + _channel(beta, xin)
        elif node.op == "dropout" and masks is not None and node.layer in masks:
            mask = torch.from_numpy(np.asarray(masks[node.layer], np.float64))
            if acts[0].dim() == 4:
                mask = mask.permute(0, 3, 1, 2)
            values[node.output] = acts[0] * mask
        else:
            values[node.output] = apply(node.op, node.attrs, acts, prms)
    y = values[graph.outputs[0]]
    return y, p


LOSSES = {}


def loss_value(name: str, y, labels: np.ndarray):
    """tf.keras's losses (batch mean) on the model output y (probabilities / values)."""
    t = torch.from_numpy(np.asarray(labels, np.float64))
    eps = 1e-7
    if name == "categorical_crossentropy":
        p = torch.clamp(y / y.sum(dim=1, keepdim=True), eps, 1 - eps)
        return -(t * torch.log(p)).sum(dim=1).mean()
    if name == "sparse_categorical_crossentropy":
        p = torch.clamp(y / y.sum(dim=1, keepdim=True), eps, 1 - eps)
        return -torch.log(p[torch.arange(len(t)), t.long()]).mean()
    if name == "binary_crossentropy":
        p = torch.clamp(y, eps, 1 - eps)
        return -(t * torch.log(p + eps) + (1 - t) * torch.log(1 - p + eps)).mean(dim=1).mean()
    if name == "mse":
        return ((y - t) ** 2).mean(dim=1).mean()
    raise NotImplementedError(name)


def logits_loss(name: str, z, labels: np.ndarray):
    """The same losses from logits (the model's last softmax/sigmoid removed)."""
    t = torch.from_numpy(np.asarray(labels, np.float64))
    if name == "categorical_crossentropy":
        return -(t * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
    if name == "sparse_categorical_crossentropy":
        return F.cross_entropy(z, t.long())
    if name == "binary_crossentropy":
        return F.binary_cross_entropy_with_logits(z, t, reduction="none").mean(dim=1).mean()
    raise NotImplementedError(name)


def gradients(model, params: dict, x, labels, loss: str, masks=None, from_logits=True):
    """(loss, {param: gradient}) by torch.autograd, in float64.

    With `from_logits` the model's last softmax (sigmoid for binary cross-entropy) is
    treated as Keras does with its logits: the loss is computed from its input."""
    graph = model.graph
    last = graph.producer(graph.outputs[0])
    absorbs = {"categorical_crossentropy": "softmax",
               "sparse_categorical_crossentropy": "softmax",
               "binary_crossentropy": "sigmoid"}.get(loss)
    if from_logits and absorbs and last is not None and last.op == absorbs:
        sub = model.graph.replace(nodes=graph.nodes[:-1], outputs=(last.inputs[0],))
        z, p = train_forward(_with_graph(model, sub), params, x, masks)
        value = logits_loss(loss, z.reshape(z.shape[0], -1), labels)
    else:
        y, p = train_forward(model, params, x, masks)
        value = loss_value(loss, y.reshape(y.shape[0], -1), labels)
    value.backward()
    grads = {k: v.grad.numpy() for k, v in p.items() if v.grad is not None}
    return float(value.detach()), grads


def _with_graph(model, graph):
    from dataclasses import replace
    return replace(model, graph=graph)
