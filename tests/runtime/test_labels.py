"""Labels are checked before training touches them, by one set of rules: the Python API
(fit, evaluate, gradients) and `cnnc train`'s data files refuse the same labels with the
same words. (A sparse label of 100000000 used to crash the process; -1 trained as the
last class; 2.5 was truncated.)"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cnnc

MODEL = """
model m {{ input(4, 4, 1) flatten() dense(3, activation=softmax) }}
train m {{ loss = {loss} optimizer = sgd }}
"""
X = np.random.default_rng(0).random((4, 4, 4, 1), dtype=np.float32)
SPARSE_BAD = [
    (np.array([0, 1, 2, 100000000]), "range over 0..100000000, the model has 3 outputs"),
    (np.array([0, 1, 2, 3]), "range over 0..3, the model has 3 outputs"),
    (np.array([-1, 0, 1, 2]), "range over -1..2, the model has 3 outputs"),
    (np.array([0, 1, 2.5, 1]), "are class indices and must be whole numbers, found 2.5"),
    (np.array([0, 1, np.nan, 1]), "hold NaN or infinite values"),
    (np.array(["a", "b", "c", "d"]), "must be numbers, found <U1 values"),
    (np.zeros((4, 3)), "must be class indices (N,) for sparse categorical cross-entropy"),
]
ONE_HOT_BAD = [
    (np.array([0, 1, -1, 2]), "range over -1..2, the model has 3 outputs"),
    (np.eye(4)[:, :4], "are rows of 4 values, the model has 3 outputs"),
    (np.zeros((4, 3, 1)), "must be (N,) or (N, classes), found (4, 3, 1)"),
]


@pytest.fixture(scope="module")
def models():
    return {loss: cnnc.compile(MODEL.format(loss=loss))
            for loss in ("sparse_categorical_crossentropy", "categorical_crossentropy")}


@pytest.mark.parametrize("labels, message", SPARSE_BAD)
def test_sparse_labels_are_checked_by_fit_evaluate_and_gradients(models, labels, message):
    model = models["sparse_categorical_crossentropy"]
    before = {k: v.copy() for k, v in model.params.items()}
    for call, where in ((lambda: model.fit(X, labels, epochs=1, verbose=0), "fit"),
                        (lambda: model.evaluate(X, labels), "evaluate"),
                        (lambda: model.gradients(X, labels), "gradients")):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value).startswith(f"{where}: labels ") and message in str(e.value)
    assert all(np.array_equal(model.params[k], v) for k, v in before.items())


@pytest.mark.parametrize("labels, message", ONE_HOT_BAD)
def test_categorical_labels_are_checked(models, labels, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        models["categorical_crossentropy"].fit(X, labels, epochs=1, verbose=0)


def test_good_labels_still_train(models):
    models["sparse_categorical_crossentropy"].fit(X, np.array([0, 1, 2, 1.0]), epochs=1,
                                                  verbose=0)
    models["categorical_crossentropy"].fit(X, np.eye(3)[[0, 1, 2, 1]], epochs=1, verbose=0)
    models["sparse_categorical_crossentropy"].fit(X, np.array([[0], [1], [2], [1]]),
                                                  epochs=1, verbose=0)


@pytest.mark.parametrize("labels, message", SPARSE_BAD[:5])
def test_the_data_loader_says_the_same(tmp_path, labels, message):
    (tmp_path / "m.cnn").write_text(MODEL.format(loss="sparse_categorical_crossentropy"))
    np.savez(tmp_path / "d.npz", x_train=X, y_train=labels)
    result = subprocess.run([sys.executable, "-m", "cnnc", "train", "m.cnn", "--data",
                             "d.npz", "--quiet"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"d.npz: error: train labels {message}"
    assert not (tmp_path / "runs").exists()
