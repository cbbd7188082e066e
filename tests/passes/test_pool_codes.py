"""pool_codes: a training step's max pooling saves the codes of its maxima, and its
gradient (with a relu gradient folded in) reads them instead of the pooling's input."""

from __future__ import annotations

import cnnc
import numpy as np
from cnnc.ir.ops.pool import CODE_POSITIVE
from cnnc.passes import run_training
from cnnc.passes.options import NONE
from cnnc.train.autodiff import build_training_graph
from conftest import EXAMPLES
from helpers import compare_gradients

# relu -> maxpool(2) (folds); maxpool(3) of a tanh (codes, no relu to fold); an
# overlapping maxpool (keeps its input)
TEXT = """
model m {
    input(12, 12, 2)
    conv2d(4, kernel=3, activation=relu)
    maxpool2d(2)
    conv2d(3, kernel=1, activation=tanh)
    maxpool2d(3, strides=2)
    flatten()
    dense(3, activation=softmax)
}
train m {
    loss = categorical_crossentropy
    optimizer = sgd
}
"""
TILING = TEXT.replace("maxpool2d(3, strides=2)", "maxpool2d(3)")
# both poolings after a relu: the second convolution (4 input channels) a GEMM
RELUS = TILING.replace("activation=tanh", "activation=relu")
# codes from a pooling kernel of their own (a tanh's gradient reads the pre-pool tensor)
TANH = """
model t {
    input(6, 6, 2)
    conv2d(3, kernel=1, activation=tanh)
    maxpool2d(2)
    flatten()
    dense(2, activation=softmax)
}
"""


def training_graph(path_or_text, pack: bool = True):
    program = cnnc.parse(path_or_text)
    model = program.model()
    config = next(iter(program.trains.values()))
    tg = build_training_graph(model, config.loss, config.optimizer)
    return run_training(tg.graph, NONE, pack)


def ops_of(graph):
    return [n.op for n in graph.nodes]


def test_max_pooling_saves_codes_and_the_relu_gradient_folds_in():
    graph, report = training_graph(EXAMPLES / "mnist_cnn.cnn")
    pool = next(n for n in graph.nodes if n.op == "maxpool2d_code")
    y, code = pool.outputs
    assert graph.type(code).dtype == "uint8" and graph.type(code).shape == (13, 13, 32)
    grad = next(n for n in graph.nodes if n.op == "maxpool2d_grad_code")
    assert grad.inputs[1] == code and grad.attrs["relu"] is True
    # the relu gradient of the convolution's output is gone, and nothing in the backward
    # pass reads that output any more: only the forward pooling does
    assert not any(n.op == "relu_grad" and pool.inputs[0] in n.inputs for n in graph.nodes)
    assert [n.op for n in graph.consumers[pool.inputs[0]]] == ["maxpool2d_code"]
    assert any(p == "pool_codes" and "folded" in text for p, text in report.notes)
    # the CUDA kernels keep reading the input
    cuda, _ = training_graph(EXAMPLES / "mnist_cnn.cnn", pack=False)
    assert "maxpool2d_code" not in ops_of(cuda) and "maxpool2d_grad" in ops_of(cuda)


def test_only_tiling_windows_get_codes():
    graph, report = training_graph(TEXT)
    assert ops_of(graph).count("maxpool2d_code") == 1
    assert ops_of(graph).count("maxpool2d_grad") == 1          # the overlapping one
    assert any("overlap" in text for p, text in report.notes if p == "pool_codes")
    tiling, _ = training_graph(TILING)
    grads = [n for n in tiling.nodes if n.op == "maxpool2d_grad_code"]
    assert len(grads) == 2 and sorted(g.attrs["relu"] for g in grads) == [False, True]


def test_the_convolution_computes_the_codes_when_the_pooling_joins_it():
    """With the pre-pool tensor read by nothing else, the pooling joins the
    convolution's kernel (the `pool` rule), which writes the codes: the one-channel
    `window` schedule and the GEMM schedule's pooled rows."""
    from cnnc.reports.explain import explain_training
    program = cnnc.parse(RELUS)
    exp = explain_training(program.model(), program.trains["m"])
    joined = [" + ".join(g.ops) for g in exp.groups if "maxpool2d_code" in g.ops]
    assert joined == ["conv2d + bias_add + relu + maxpool2d_code"] * 2, joined
    # a tanh's gradient reads the pre-pool tensor: it is written, the pooling apart
    tanh = cnnc.parse(TILING)
    exp = explain_training(tanh.model(), tanh.trains["m"])
    assert [" + ".join(g.ops) for g in exp.groups if "maxpool2d_code" in g.ops] == [
        "conv2d + bias_add + relu + maxpool2d_code", "maxpool2d_code"]
    off = explain_training(program.model(), program.trains["m"],
                           fuse="epilogue,row,elementwise,loss,siblings,updates")
    assert [g.ops for g in off.groups if "maxpool2d_code" in g.ops] == [
        ["maxpool2d_code"], ["maxpool2d_code"]]


def test_gradients_agree_with_torch_with_ties():
    """Against torch.autograd (float64), with ties: parameters and inputs of a few values
    make windows with several maxima (the first, row-major, takes the gradient, as in
    torch). A tanh before the pooling: the codes from a kernel of their own, no relu
    gradient folded in. (The codes written by a convolution's GEMM schedule with the
    relu gradient folded: tests/train/test_gradients.py's first compiled model; by its
    `window` schedule: its mnist_cnn case.)"""
    from oracles import torch_ref
    from oracles.tolerances import GRADIENT
    model = compare_gradients(TANH, batch=4)
    assert "maxpool2d_grad_code" in model.source
    assert ">= np.uint8(128)" not in model.source          # no relu gradient folded in
    params = torch_ref.random_params(model.model, 1)
    for name, value in params.items():
        params[name] = np.round(value * 2).astype(np.float32) / 2
    model.set_params(params)
    rng = np.random.default_rng(3)
    x = rng.integers(-1, 2, size=(4, 6, 6, 2)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 4)]
    _, grads = model.gradients(x, y)
    _, ref = torch_ref.gradients(model.model, params, x, y, "categorical_crossentropy")
    for name, g in grads.items():
        bound = GRADIENT * np.maximum(1.0, np.abs(ref[name]))
        assert np.all(np.abs(g - ref[name]) <= bound), name


def test_codes_are_positions_and_signs():
    """The forward kernel's codes: the first maximum's position in its window, row-major,
    + CODE_POSITIVE when the maximum is above zero."""
    text = ("model p { input(4, 4, 1) conv2d(1, kernel=1) maxpool2d(2) flatten() "
            "dense(2, activation=softmax) }")
    model = cnnc.compile(text, loss="categorical_crossentropy", optimizer="sgd",
                         fuse="none")
    fused = [name for name in vars(model.module) if name.startswith("maxpool_")
             and name.endswith("_fwd") and "code" in
             getattr(model.module, name).py_func.__code__.co_varnames]
    assert fused, "no forward pooling kernel writes codes"
    kernel = getattr(model.module, fused[0])
    x = np.array([[1, 3, -2, -1],
                  [3, 2, -3, -1],
                  [0, 0, 1, 2],
                  [0, 0, 5, 5]], dtype=np.float32).reshape(1, 4, 4, 1)
    y = np.empty((1, 2, 2, 1), np.float32)
    code = np.empty((1, 2, 2, 1), np.uint8)
    kernel(x, y, code)
    np.testing.assert_array_equal(y[0, :, :, 0], [[3, -1], [0, 5]])
    np.testing.assert_array_equal(code[0, :, :, 0],
                                  [[1 + CODE_POSITIVE, 1], [0, 2 + CODE_POSITIVE]])
