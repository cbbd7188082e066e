"""Kernel behaviour the op table's oracle cases (tests/ops) do not show: stability of
softmax on huge logits, and views that are never kernels."""

from __future__ import annotations

import numpy as np

import cnnc
from helpers import compare


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
