"""CompiledModel on its own: parameters, weights files, input checks, and what a model
without a train block says when asked to train."""

from __future__ import annotations

import numpy as np
import pytest

import cnnc
from cnnc.errors import CnncError, FileError

TEXT = "model m { input(2, 2, 1) flatten() dense(3) }"


@pytest.fixture(scope="module")
def model():
    return cnnc.compile(TEXT)


def test_params_are_read_only_views_and_set_params_checks(model):
    with pytest.raises(ValueError):
        model.params["dense/kernel"][0, 0] = 1.0
    with pytest.raises(KeyError, match="no parameter named 'dense/wrong'"):
        model.set_params({"dense/wrong": np.zeros(3)})
    with pytest.raises(ValueError, match=r"has shape \(4, 3\), got \(3, 4\)"):
        model.set_params({"dense/kernel": np.zeros((3, 4))})
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    b = np.array([1, 2, 3], np.float32)
    model.set_params({"dense/kernel": w, "dense/bias": b})
    x = np.random.default_rng(0).random((5, 2, 2, 1), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x), x.reshape(5, 4) @ w + b, rtol=1e-6)


def test_weights_round_trip_and_bad_files_change_nothing(model, tmp_path):
    path = tmp_path / "w.npz"
    model.save_weights(path)
    before = {k: v.copy() for k, v in model.params.items()}
    np.savez(tmp_path / "shape.npz", **{"dense/kernel": np.zeros((3, 4)),
                                        "dense/bias": np.zeros(3)})
    np.savez(tmp_path / "missing.npz", **{"dense/kernel": np.zeros((4, 3))})
    np.savez(tmp_path / "nan.npz", **{"dense/kernel": np.full((4, 3), np.nan),
                                      "dense/bias": np.zeros(3)})
    np.savez(tmp_path / "pickle.npz", **{"dense/kernel": np.array([object()]),
                                         "dense/bias": np.zeros(3)})
    (tmp_path / "text.npz").write_text("not a zip")
    cases = {"nothing.npz": "no such file", "shape.npz": "has shape (3, 4), expected (4, 3)",
             "missing.npz": "missing parameter 'dense/bias'", "nan.npz": "NaN or infinite",
             "pickle.npz": "pickles are refused", "text.npz": "not a valid .npz file"}
    for name, message in cases.items():
        with pytest.raises(FileError, match=message.replace("(", r"\(").replace(")", r"\)")):
            model.load_weights(tmp_path / name)
        for k, v in model.params.items():
            assert np.array_equal(v, before[k]), (name, k)
    model.set_params({"dense/bias": np.zeros(3)})
    model.load_weights(path)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


@pytest.mark.parametrize("x, message", [
    ([[1.0]], "received list"),
    (np.zeros((2, 2, 2, 1)), "received dtype float64"),
    (np.zeros((2, 3, 2, 1), np.float32), r"received shape \(2, 3, 2, 1\)"),
    (np.zeros((0, 2, 2, 1), np.float32), "N >= 1"),
])
def test_predict_says_what_it_expects(model, x, message):
    with pytest.raises(ValueError, match=message):
        model.predict(x)


def test_predict_in_batches_and_bad_batch_sizes(model):
    x = np.random.default_rng(1).random((7, 2, 2, 1), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, batch_size=3), model.predict(x), rtol=1e-6)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            model.predict(x, batch_size=bad)


def test_a_model_without_train_block_says_how_to_train_it(model):
    with pytest.raises(CnncError, match="has no train block: give loss= and optimizer="):
        model.fit(np.zeros((1, 2, 2, 1), np.float32), np.zeros(1))
    assert "target cpu" in repr(model)
