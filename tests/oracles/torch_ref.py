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

TOL = {"float32": 1e-4}          # absolute tolerance against float64 references


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
    if op in ("dropout", "linear"):
        return x
    if op == "relu":
        return F.relu(x)
    if op == "sigmoid":
        return torch.sigmoid(x)
    if op == "tanh":
        return torch.tanh(x)
    if op == "elu":
        return F.elu(x, alpha=attrs["alpha"])
    if op == "leaky_relu":
        return F.leaky_relu(x, negative_slope=attrs["alpha"])
    if op == "softmax":
        return torch.softmax(x, dim=1)                          # channels are dim 1
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
