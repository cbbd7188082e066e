"""The example networks in PyTorch eager, loaded with a compiled cnnc model's parameters.

Built by hand for the benchmarks (not from cnnc's IR), in NCHW or channels_last memory
format. Dense layers after flatten take the Keras kernel with its rows permuted from
(h, w, c) to (c, h, w) order, so torch flattens natively and computes the same function.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _t(a):
    return torch.from_numpy(np.array(a, dtype=np.float32))


def _conv(w, b=None, **kw):
    conv = nn.Conv2d(w.shape[2], w.shape[3], (w.shape[0], w.shape[1]), bias=b is not None, **kw)
    conv.weight.data = _t(w).permute(3, 2, 0, 1).contiguous()
    if b is not None:
        conv.bias.data = _t(b)
    return conv


def _dense(w, b, chw=None):
    lin = nn.Linear(w.shape[0], w.shape[1])
    w = np.asarray(w)
    if chw is not None:                      # rows in Keras (h, w, c) order -> (c, h, w)
        c, h, wd = chw
        w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
    lin.weight.data = _t(w).T.contiguous()
    lin.bias.data = _t(b)
    return lin


class MnistCNN(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.conv = _conv(p["conv2d/kernel"], p["conv2d/bias"])
        self.fc1 = _dense(p["dense/kernel"], p["dense/bias"], chw=(32, 13, 13))
        self.fc2 = _dense(p["dense_1/kernel"], p["dense_1/bias"])

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.softmax(self.fc2(x), dim=1)


class ResnetTiny(nn.Module):
    def __init__(self, p):
        super().__init__()

        def bn(name):
            layer = nn.BatchNorm2d(len(p[f"{name}/gamma"]), eps=1e-3)
            layer.weight.data, layer.bias.data = _t(p[f"{name}/gamma"]), _t(p[f"{name}/beta"])
            layer.running_mean.data = _t(p[f"{name}/moving_mean"])
            layer.running_var.data = _t(p[f"{name}/moving_variance"])
            return layer

        def conv(i, stride=1):
            return _conv(p[f"conv2d{'_' + str(i) if i else ''}/kernel"], stride=stride,
                         padding=1 if stride == 1 else 0)

        names = ["batch_normalization"] + [f"batch_normalization_{i}" for i in range(1, 9)]
        self.convs = nn.ModuleList([conv(i, 2 if i in (3, 6) else 1) for i in range(9)])
        self.bns = nn.ModuleList([bn(n) for n in names])
        self.fc = _dense(p["dense/kernel"], p["dense/bias"])

    def _cbr(self, i, x, relu=True):
        if self.convs[i].stride == (2, 2):
            x = F.pad(x, (0, 1, 0, 1))          # TF 'same' for stride 2 on even sizes
        x = self.bns[i](self.convs[i](x))
        return F.relu(x) if relu else x

    def forward(self, x):
        x = self._cbr(0, x)
        for stage in range(3):
            first = 3 * stage
            if stage:
                x = self._cbr(first, x)
            y = self._cbr(first + 1, x)
            y = self._cbr(first + 2, y, relu=False)
            x = F.relu(x + y)
        x = x.mean(dim=(2, 3))
        return F.softmax(self.fc(x), dim=1)


class AlexNet(nn.Module):
    """examples/alexnet.cnn (dropout is the identity at inference)."""

    def __init__(self, p):
        super().__init__()
        names = ["conv2d"] + [f"conv2d_{i}" for i in range(1, 5)]
        pads = [0, 2, 1, 1, 1]                 # valid, then TensorFlow's same at stride 1
        self.convs = nn.ModuleList(
            _conv(p[f"{n}/kernel"], p[f"{n}/bias"], stride=4 if i == 0 else 1,
                  padding=pads[i]) for i, n in enumerate(names))
        self.fc1 = _dense(p["dense/kernel"], p["dense/bias"], chw=(256, 6, 6))
        self.fc2 = _dense(p["dense_1/kernel"], p["dense_1/bias"])
        self.fc3 = _dense(p["dense_2/kernel"], p["dense_2/bias"])

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i in (0, 1, 4):
                x = F.max_pool2d(x, 3, 2)
        x = F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))))
        return F.softmax(self.fc3(x), dim=1)


MODELS = {"mnist_cnn": MnistCNN, "resnet_tiny": ResnetTiny, "alexnet": AlexNet}


def build(name: str, params: dict, channels_last: bool):
    model = MODELS[name](params).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
