"""Every op's CPU kernel against PyTorch (float64) on the same parameters, within 1e-4.

The configuration grid of each op (kernel 1/2/3/5, odd and even sizes, strides 1/2/3,
valid and same padding, dilation 1/2, channels 1/3/16) is covered pairwise in CI -- every
pair of values of any two factors appears in some configuration -- and in full with
`--long`. Every configuration runs at batch 1 and 7.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnc
from helpers import compare, pairwise, product

CONV = {"kernel": [1, 2, 3, 5], "height": [9, 10], "stride": [1, 2, 3],
        "padding": ["valid", "same"], "dilation": [1, 2], "cin": [1, 3, 16], "cout": [5, 8]}


def conv_allowed(row):
    extent = (row["kernel"] - 1) * row["dilation"] + 1
    return (row["dilation"] == 1 or row["stride"] == 1) and extent <= row["height"]


def conv_text(row, fused: bool) -> str:
    extra = ", activation=relu" if fused else ""
    return (f"model m {{ input({row['height']}, {row['height'] + 3}, {row['cin']}) "
            f"conv2d({row['cout']}, kernel={row['kernel']}, strides={row['stride']}, "
            f"padding={row['padding']}, dilation={row['dilation']}{extra}) }}")


CONV_ROWS = pairwise(CONV, seed=3, allowed=conv_allowed)
CONV_ALL = product(CONV, allowed=conv_allowed)


def _id(row):
    return "-".join(f"{k}{v}" for k, v in row.items())


@pytest.mark.parametrize("i, row", list(enumerate(CONV_ROWS)), ids=lambda r: _id(r) if
                         isinstance(r, dict) else str(r))
def test_conv2d(i, row):
    # Alternate the unfused kernels (conv2d, bias_add separately) and the fused
    # conv2d + bias + relu kernel.
    fused = i % 2 == 1
    compare(conv_text(row, fused), fuse="all" if fused else "none", seed=i)


def test_conv_grid_is_pairwise_complete():
    assert 12 <= len(CONV_ROWS) <= 24
    for a in CONV:
        for b in CONV:
            if a < b:
                seen = {(r[a], r[b]) for r in CONV_ROWS}
                want = {(r[a], r[b]) for r in CONV_ALL}
                assert seen == want, (a, b, want - seen)


@pytest.mark.long
@pytest.mark.parametrize("row", CONV_ALL, ids=_id)
def test_conv2d_full_grid(row):
    compare(conv_text(row, False), fuse="none")


POOL = {"op": ["maxpool2d", "avgpool2d"], "pool": [1, 2, 3], "stride": [1, 2, 3],
        "padding": ["valid", "same"], "height": [7, 8], "channels": [1, 3, 16]}


def pool_text(row) -> str:
    return (f"model m {{ input({row['height']}, {row['height'] + 1}, {row['channels']}) "
            f"{row['op']}({row['pool']}, strides={row['stride']}, padding={row['padding']}) }}")


POOL_ROWS = pairwise(POOL, seed=5)


@pytest.mark.parametrize("row", POOL_ROWS, ids=_id)
def test_pooling(row):
    compare(pool_text(row), fuse="none")


@pytest.mark.long
@pytest.mark.parametrize("row", product(POOL), ids=_id)
def test_pooling_full_grid(row):
    compare(pool_text(row), fuse="none")


@pytest.mark.parametrize("op", ["global_avgpool2d", "global_maxpool2d"])
@pytest.mark.parametrize("shape", ["5, 6, 3", "4, 4, 16"])
def test_global_pooling(op, shape):
    compare(f"model m {{ input({shape}) {op}() }}", fuse="none")


@pytest.mark.parametrize("units, use_bias", [(1, True), (7, False), (16, True)])
def test_dense(units, use_bias):
    compare(f"model m {{ input(3, 4, 5) flatten() dense({units}, use_bias="
            f"{str(use_bias).lower()}) dense(3) }}", fuse="none")


ACTIVATIONS = ["relu", "sigmoid", "tanh", "elu", "leaky_relu", "linear", "softmax",
               "leaky_relu(alpha=0.1)", "elu(alpha=0.5)"]


def test_every_activation_unfused():
    layers = " ".join(f"dense(6) activation({a})" if "(" not in a else
                      f"dense(6, activation={a})" for a in ACTIVATIONS)
    compare(f"model m {{ input(2, 3, 2) flatten() {layers} }}", fuse="none")


@pytest.mark.parametrize("fuse", ["none", "all"])
def test_activations_on_feature_maps(fuse):
    compare("model m { input(5, 6, 4) "
            "conv2d(4, kernel=1, activation=tanh) activation(elu) conv2d(6, kernel=2) "
            "activation(leaky_relu, alpha=0.2) activation(sigmoid) activation(softmax) }",
            fuse=fuse)


def test_batchnorm_inference_unfolded_and_folded():
    # After pooling it cannot fold (an elementwise kernel); after conv2d/dense it folds.
    compare("model m { input(6, 6, 3) maxpool2d(2) batchnorm() conv2d(4, kernel=3, "
            "use_bias=false) batchnorm(epsilon=0.01) flatten() dense(5) batchnorm() }",
            fuse="none")


def test_residual_add():
    compare("model m { input(6, 7, 4) residual { conv2d(4, kernel=3, padding=same) "
            "activation(relu) } residual { activation(tanh) } flatten() dense(2) }",
            fuse="none")


def test_softmax_is_stable_for_large_logits():
    model = cnnc.compile("model m { input(1, 1, 2) flatten() dense(3, activation=softmax) }")
    model.set_params({"dense/kernel": np.array([[1000, 0, -1000], [0, 0, 0]], np.float32),
                      "dense/bias": np.zeros(3, np.float32)})
    y = model.predict(np.array([[[[1.0, 0.0]]], [[[-1.0, 0.0]]]], np.float32))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[1, 0, 0], [0, 0, 1]], atol=1e-6)


def test_flatten_and_dropout_are_views():
    model = cnnc.compile("model m { input(4, 4, 2) dropout(0.5) flatten() dense(3) }",
                         fuse="none")
    source = model.source
    assert "flatten" not in "".join(line for line in source.splitlines()
                                    if line.startswith("def "))
    assert ".reshape((n, 32))  # flatten flatten: a view" in source
    compare("model m { input(4, 4, 2) dropout(0.5) flatten() dense(3) }", compiled=model)
