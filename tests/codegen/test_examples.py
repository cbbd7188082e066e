"""Every example model against PyTorch, and the compiled-model API."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import cnnc
from conftest import EXAMPLES, ROOT
from helpers import compare

BATCHES = {"mnist_cnn": (1, 7), "lenet5": (1, 7), "resnet_tiny": (1, 7), "alexnet": (1,)}


@pytest.fixture(scope="module")
def compiled():
    return {name: cnnc.compile(EXAMPLES / f"{name}.cnn") for name in BATCHES}


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_example_matches_pytorch(name, compiled):
    compare(None, compiled=compiled[name], batches=BATCHES[name], seed=11)


def test_predict_checks_its_input(compiled):
    model = compiled["mnist_cnn"]
    good = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match=r"float32 array of shape \(N, 28, 28, 1\), received "
                                         r"shape \(2, 28, 28\)"):
        model.predict(good[..., 0])
    with pytest.raises(ValueError, match=r"received shape \(2, 28, 27, 1\)"):
        model.predict(good[:, :, :27])
    with pytest.raises(ValueError, match=r"received dtype float64"):
        model.predict(good.astype(np.float64))
    with pytest.raises(ValueError, match="received list"):
        model.predict(good.tolist())
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.predict(good, batch_size=0)


def test_predict_batches_agree(compiled):
    model = compiled["mnist_cnn"]
    x = np.random.default_rng(0).random((300, 28, 28, 1), dtype=np.float32)
    whole = model.predict(x)
    assert whole.shape == (300, 10)
    np.testing.assert_allclose(model.predict(x, batch_size=7), whole, atol=1e-6)
    np.testing.assert_allclose(model.predict(x[::2]), whole[::2], atol=1e-6)  # strided input
    np.testing.assert_allclose(whole.sum(axis=1), 1, atol=1e-5)


def test_params_are_keras_layout_and_glorot():
    model = cnnc.compile(EXAMPLES / "mnist_cnn.cnn")
    params = model.params
    assert list(params) == ["conv2d/kernel", "conv2d/bias", "dense/kernel", "dense/bias",
                            "dense_1/kernel", "dense_1/bias"]
    assert params["conv2d/kernel"].shape == (3, 3, 1, 32)
    assert params["dense/kernel"].shape == (5408, 128)
    for name, p in params.items():
        assert p.dtype == np.float32
        if name.endswith("bias"):
            assert not p.any()
    # glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))
    limit = np.sqrt(6 / (5408 + 128))
    w = params["dense/kernel"]
    assert w.min() >= -limit and w.max() <= limit and abs(w.std() - limit / np.sqrt(3)) < 1e-3
    with pytest.raises(ValueError, match="read-only"):
        params["dense/bias"][0] = 1


def test_save_and_load_weights(compiled, tmp_path):
    model = compiled["resnet_tiny"]
    from oracles.torch_ref import random_params
    model.set_params(random_params(model.model, 5))
    x = np.random.default_rng(1).random((3, 32, 32, 3), dtype=np.float32)
    before = model.predict(x)
    path = tmp_path / "w.npz"
    model.save_weights(path)
    other = cnnc.compile(EXAMPLES / "resnet_tiny.cnn")
    assert not np.allclose(other.predict(x), before)
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), before)   # derived params refreshed


def test_bad_weight_files_are_refused_without_change(compiled, tmp_path):
    model = compiled["mnist_cnn"]
    snapshot = {k: v.copy() for k, v in model.params.items()}
    good = {k: v.copy() for k, v in model.params.items()}
    cases = {
        "missing.npz": None,
        "truncated.npz": b"PK\x03\x04garbage",
        "extra.npz": dict(good, **{"dense_9/kernel": np.zeros(3, np.float32)}),
        "short.npz": {k: v for k, v in good.items() if k != "dense/bias"},
        "shape.npz": dict(good, **{"dense/kernel": np.zeros((5408, 64), np.float32)}),
        "ints.npz": dict(good, **{"dense/bias": np.zeros(128, np.int64)}),
        "objects.npz": dict(good, **{"dense/bias": np.array([None] * 128, dtype=object)}),
        "nan.npz": dict(good, **{"dense/bias": np.full(128, np.nan, np.float32)}),
    }
    messages = {
        "missing.npz": "no such file",
        "truncated.npz": "not a valid .npz file (File is not a zip file)",
        "extra.npz": "unexpected parameter 'dense_9/kernel': this model has no such parameter",
        "short.npz": "missing parameter 'dense/bias'",
        "shape.npz": "parameter 'dense/kernel' has shape (5408, 64), expected (5408, 128)",
        "ints.npz": "parameter 'dense/bias' has dtype int64, expected float32",
        "objects.npz": "holds Python objects (pickles are refused)",
        "nan.npz": "parameter 'dense/bias' holds NaN or infinite values",
    }
    rendered = {}
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, dict):
            np.savez(path, **content)
        with pytest.raises(cnnc.CnncError) as info:
            model.load_weights(path)
        rendered[name] = info.value.render()
        for k, v in model.params.items():
            np.testing.assert_array_equal(v, snapshot[k])
    assert rendered == {name: f"{tmp_path / name}: error: {message}"
                        for name, message in messages.items()}


def test_save_weights_is_atomic(compiled, tmp_path, monkeypatch):
    model = compiled["mnist_cnn"]
    path = tmp_path / "w.npz"
    path.write_bytes(b"previous")
    import cnnc.util as util

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(util.os, "replace", broken_replace)
    with pytest.raises(OSError):
        model.save_weights(path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]      # no temp file left


def test_summary_prints_the_table(compiled, capsys):
    compiled["mnist_cnn"].summary()
    assert "Total params: 693,962" in capsys.readouterr().out


def test_mnist_at_numbas_default_optimization_level():
    """The suite compiles at -O1; this runs mnist_cnn once at Numba's default (-O3)."""
    code = ("import numpy as np, cnnc, sys; sys.path.insert(0, 'tests'); "
            "from helpers import compare; "
            "compare(None, compiled=cnnc.compile('examples/mnist_cnn.cnn'), seed=3); "
            "import numba; print(int(numba.config.OPT))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_OPT"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
