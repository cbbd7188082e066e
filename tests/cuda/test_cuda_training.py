"""The CUDA target's training kernels against PyTorch: gradients, optimizer steps, fit.

On a GPU when there is one, else in Numba's CUDA simulator (tests/conftest.py decides).

* Gradients of every op against torch.autograd in float64 (|g - g_torch| <= 1e-4 *
  max(1, |g_torch|)): the CPU target's gradient grid (tests/tools/grad_grid.py), its
  window-geometry rows thinned to a fourth (the forward tests cover the geometry
  pairwise).
* Whole random models (tests/tools/differential.py's checks: forward with fuse none and
  all, every gradient, one optimizer step with dropout against torch.optim, moving
  statistics) for seeds chosen to cover every training template, loss and optimizer.
"""

from __future__ import annotations

import pytest

import cnnc
from conftest import ROOT
from helpers import compare_gradients
from ops import table
from tools import differential, grad_grid

def cuda_cases():
    """The CPU target's gradient grid (tests/tools/grad_grid.py) with every fourth row of
    the conv2d and pooling geometry grids (the forward tests run them pairwise), and the
    activations of the op table stacked in a model per position rather than one model
    each."""
    for name, text, loss, kw in grad_grid.cases(False):
        if name.startswith(("conv2d {", "pool {")) and kw.get("seed", 0) % 4:
            continue
        if name.startswith("activation "):
            continue
        yield name, text, loss, kw
    dense = " ".join(f"dense(6, activation={a})" for a in table.activation_variants())
    yield "every activation", (f"model m {{ {grad_grid.BODY} {dense} "
                               f"dense(3, activation=softmax) }}"), "categorical_crossentropy", {}
    convs = " ".join(f"conv2d(2, kernel=1, activation={a})" for a in table.activation_variants())
    yield "every activation on feature maps", (
        f"model m {{ input(3, 3, 2) conv2d(2, kernel=1) {convs} maxpool2d(2) "
        f"flatten() dense(3, activation=softmax) }}"), "categorical_crossentropy", {}


CASES = list(cuda_cases())


@pytest.mark.parametrize("name, text, loss, kw", CASES, ids=[c[0] for c in CASES])
def test_gradients(name, text, loss, kw):
    compare_gradients(text, loss, batch=3, target="cuda", **kw)


def test_gradient_cases_cover_every_backward_template():
    from cnnc.compiler import lower
    templates = set()
    for _, text, loss, kw in CASES:
        compiled = lower(text, target="cuda", fuse=kw.get("fuse", "all"),
                         train=cnnc.compiler._train_override(text, None, loss, "sgd"))
        templates |= {k.template for k in compiled.training.kernels}
    assert templates >= {"conv2d_grad_input", "conv2d_grad_weight", "dense_grad_weight",
                         "reduce_channels", "pool2d_grad", "global_pool2d_grad",
                         "softmax_grad", "batchnorm_train", "batchnorm_train_grad", "loss",
                         "update", "elementwise", "dense", "conv2d"}, templates


# Random tiny models (tests/generators/random_models.py): seeds whose checks together use
# every training template, loss and optimizer (asserted below).
SEEDS = (72, 1, 18, 3, 12, 5, 6, 7)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_model_against_pytorch(seed):
    case = differential.seed_case(seed)
    record = differential.check_case(case, target="cuda")
    assert record["ok"], record


def test_random_models_cover_losses_and_optimizers():
    losses = {differential.seed_case(s)["loss"] for s in SEEDS}
    optimizers = {s % len(differential.OPTIMIZERS) for s in SEEDS}
    assert losses == {"categorical_crossentropy", "sparse_categorical_crossentropy",
                      "binary_crossentropy", "mse"}, losses
    assert optimizers == set(range(len(differential.OPTIMIZERS))), optimizers


# CI runs the cases that reach the float64 re-examination and the model without
# parameters; --long runs every case (the others take 20-40 s each in the simulator).
CI_REGRESSIONS = ("float32_batchnorm_three_values", "no_trainable_parameters", "random_tiny_16")
REGRESSIONS = [path if path.stem in CI_REGRESSIONS else pytest.param(path, marks=pytest.mark.long)
               for path in sorted((ROOT / "tests" / "regressions").glob("*.cnn"))]


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
def test_regression_cases(path):
    """tests/regressions/ on this target: cases that once failed on the CPU, among them
    float32 rounding re-examined in float64 (the CUDA kernels on float64 elements)."""
    record = differential.check_case(differential.load_case(path), target="cuda")
    assert record["ok"], record
