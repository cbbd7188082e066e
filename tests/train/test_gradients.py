"""Gradients against torch.autograd (float64), within 1e-4 absolute or relative.

* Every op over its configuration grid (the forward parity grid: pairwise in CI, full
  with --long), run with the JIT disabled: the generated kernels execute as Python,
  which checks their logic on ~50 models in seconds (tests/tools/grad_grid.py).
* Compiled kernels: a few of the same models, and every example model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import EXAMPLES, ROOT
from helpers import compare_gradients


def run_grid(tmp_path, *extra) -> list[dict]:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/grad_grid.py"), *extra],
                            env=env, capture_output=True, text=True, timeout=3000)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records, result.stderr[-3000:]
    bad = [r for r in records if not r["ok"]]
    assert not bad, json.dumps(bad[:2], indent=1)
    return records


def test_every_op_grid_without_jit(tmp_path):
    records = run_grid(tmp_path)
    cases = " ".join(r["case"] for r in records)
    for needle in ("conv2d", "pool {'op': 'maxpool2d'", "pool {'op': 'avgpool2d'",
                   "global_avgpool2d", "global_maxpool2d", "activation elu", "softmax",
                   "batchnorm", "residual", "dropout", "loss mse", "loss binary_crossentropy",
                   "loss sparse_categorical_crossentropy fuse=none"):
        assert needle in cases, needle
    assert len(records) >= 45


@pytest.mark.long
def test_every_op_full_grid_without_jit(tmp_path):
    run_grid(tmp_path, "--full")


COMPILED = [
    ("model m { input(6, 7, 3) conv2d(4, kernel=3, activation=relu) maxpool2d(2) flatten() "
     "dense(5, activation=softmax) }", "categorical_crossentropy"),
    ("model m { input(6, 7, 2) conv2d(3, kernel=1) conv2d(4, kernel=3, strides=2, "
     "padding=same, activation=tanh) avgpool2d(2, padding=same) flatten() dense(4) "
     "batchnorm() activation(relu) dense(3, activation=softmax) }",
     "sparse_categorical_crossentropy"),
    ("model m { input(5, 5, 2) conv2d(3, kernel=2, dilation=2, padding=same) batchnorm() "
     "activation(elu) residual { conv2d(3, kernel=3, padding=same) activation(leaky_relu) } "
     "global_avgpool2d() dense(2, activation=sigmoid) }", "binary_crossentropy"),
    ("model m { input(4, 4, 2) conv2d(3, kernel=3, padding=same) global_maxpool2d() "
     "dense(3) dropout(0.5) dense(2) }", "mse"),
]


@pytest.mark.parametrize("text, loss", COMPILED, ids=[c[1] for c in COMPILED])
def test_compiled_kernels(text, loss):
    compare_gradients(text, loss, dropout=True)


@pytest.mark.parametrize("name, batch", [("mnist_cnn", 4), ("lenet5", 3), ("resnet_tiny", 2)])
def test_example_models(name, batch):
    compare_gradients(open(EXAMPLES / f"{name}.cnn").read(), "categorical_crossentropy",
                      batch=batch, dropout=True)


@pytest.mark.long
def test_alexnet():
    compare_gradients(open(EXAMPLES / "alexnet.cnn").read(), "categorical_crossentropy",
                      batch=1, dropout=True)


@pytest.mark.parametrize("fuse", ["all", "epilogue,pool,row,elementwise,loss,updates"])
def test_bias_gradients_with_and_without_siblings(fuse):
    """db computed in the weight gradient's kernel (a padded, strided convolution: the
    sample buffer's ones channel; dense: the sums taken while packing dy) and in a kernel
    of its own agree with torch."""
    model = compare_gradients(COMPILED[1][0], COMPILED[1][1], batch=5, fuse=fuse)
    siblings = fuse == "all"
    assert ("def conv2d_grad_weight_bias_grad_bwd(" in model.source) == siblings
    assert ("def dense_grad_weight_bias_grad_bwd(" in model.source) == siblings
    assert ("def bias_grad_bwd(" in model.source) != siblings


def test_mnist_with_fusion_off():
    compare_gradients(open(EXAMPLES / "mnist_cnn.cnn").read(), "categorical_crossentropy",
                      batch=4, dropout=True, fuse="none")
