"""`cnnc export onnx`: the command, its weights, its errors (exit 2, nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

import cnnc
from cnnc.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))

from onnx_compare import TOL, run_onnx  # noqa: E402
from oracles import torch_ref  # noqa: E402

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

MNIST = EXAMPLES / "mnist_cnn.cnn"


@pytest.fixture(scope="module")
def mnist():
    return cnnc.compile(MNIST)


def x_batch(n=3):
    return np.random.default_rng(0).random((n, 28, 28, 1), dtype=np.float32)


def test_export_initial_weights(tmp_path, mnist, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(MNIST), "-o", str(out)]) == 0
    assert "m.onnx: mnist_cnn: ONNX opset 17" in capsys.readouterr().err
    fresh = cnnc.compile(MNIST)                  # the same seed: the same initial weights
    x = x_batch()
    assert np.abs(run_onnx(onnx.load(out), x, "nhwc") - fresh.predict(x)).max() <= TOL


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_export_with_weights(tmp_path, mnist, layout):
    """Weights written by save_weights (the format of `cnnc train`'s weights.npz)."""
    mnist.set_params(torch_ref.random_params(mnist.model, 7))
    weights, out = tmp_path / "w.npz", tmp_path / "m.onnx"
    mnist.save_weights(weights)
    assert main(["export", "onnx", str(MNIST), "--weights", str(weights), "--layout", layout,
                 "-o", str(out)]) == 0
    x = x_batch()
    assert np.abs(run_onnx(onnx.load(out), x, layout) - mnist.predict(x)).max() <= TOL


def refused(tmp_path, capsys, *argv, status=2) -> str:
    before = sorted(tmp_path.rglob("*"))
    code = main(list(argv))
    assert code == status
    assert sorted(tmp_path.rglob("*")) == before            # nothing written
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    return err


def test_bad_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.cnn"
    bad.write_text("model m { input(4, 4, 1) conv(2, kernel=3) }\n")
    err = refused(tmp_path, capsys, "export", "onnx", str(bad), "-o", str(tmp_path / "m.onnx"))
    assert "unknown op 'conv'" in err


def test_missing_file(tmp_path, capsys):
    refused(tmp_path, capsys, "export", "onnx", str(tmp_path / "none.cnn"), "-o",
            str(tmp_path / "m.onnx"))


def test_bad_weights(tmp_path, capsys):
    weights = tmp_path / "w.npz"
    np.savez(weights, **{"conv2d/kernel": np.zeros((2, 2), np.float32)})
    refused(tmp_path, capsys, "export", "onnx", str(MNIST), "--weights", str(weights),
            "-o", str(tmp_path / "m.onnx"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    refused(tmp_path, capsys, "export", "onnx", str(MNIST), "--weights",
            str(tmp_path / "junk.npz"), "-o", str(tmp_path / "m.onnx"))


def test_output_over_its_input_is_refused(tmp_path, capsys):
    model = tmp_path / "m.cnn"
    model.write_text(MNIST.read_text())
    err = refused(tmp_path, capsys, "export", "onnx", str(model), "-o", str(model))
    assert "is the input file" in err
    assert model.read_text() == MNIST.read_text()


def test_unknown_model_and_layout(tmp_path, capsys):
    refused(tmp_path, capsys, "export", "onnx", str(MNIST), "--model", "nope", "-o",
            str(tmp_path / "m.onnx"))
    with pytest.raises(SystemExit) as info:
        main(["export", "onnx", str(MNIST), "--layout", "nchwc", "-o", str(tmp_path / "m")])
    assert info.value.code == 2


def test_without_onnx(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    err = refused(tmp_path, capsys, "export", "onnx", str(MNIST), "-o",
                  str(tmp_path / "m.onnx"), status=1)
    assert err.strip().splitlines() == ["cnnc: error: ONNX export needs the onnx package: "
                                        "pip install 'cnnc[onnx]'"]


def test_export_one_model_of_several(tmp_path):
    """--model picks the model; --weights of random values (checked against the model);
    the file's ONNX output against the float64 torch oracle (no JIT: nothing predicts)."""
    from oracles.tolerances import FORWARD
    text = ("model a { input(4, 4, 1) flatten() dense(2) }\n"
            "model b { input(5, 6, 2) conv2d(3, kernel=2, padding=same, activation=gelu) "
            "avgpool2d(2, padding=same) conv2d(4, kernel=1) }\n")
    path, weights, out = tmp_path / "two.cnn", tmp_path / "w.npz", tmp_path / "b.onnx"
    path.write_text(text)
    model = cnnc.parse(path).models["b"]
    params = torch_ref.random_params(model, 3)
    np.savez(weights, **params)
    assert main(["export", "onnx", str(path), "--model", "b", "--weights", str(weights),
                 "--layout", "nchw", "-o", str(out)]) == 0
    x = np.random.default_rng(1).normal(size=(3, 5, 6, 2)).astype(np.float32)
    got = run_onnx(onnx.load(out), x, "nchw")
    assert np.abs(got - torch_ref.forward(model, params, x)).max() < FORWARD


TINY = """model tiny {
    input(6, 6, 1)
    conv2d(2, kernel=3, activation=relu)
    flatten()
    dense(3, activation=softmax)
}
train tiny {
    data = "d.npz"
    loss = sparse_categorical_crossentropy
    optimizer = sgd(learning_rate=0.1)
    batch_size = 8
}
"""


def test_export_weights_from_cnnc_train(tmp_path):
    """`cnnc train`'s RUN_DIR/weights.npz (trained with the JIT disabled: a second) as
    --weights; the export against the float64 torch oracle on those weights."""
    from oracles.tolerances import FORWARD

    from cnnc.runtime.weights import read_npz
    (tmp_path / "tiny.cnn").write_text(TINY)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 255, (32, 6, 6), dtype=np.uint8),
             y_train=rng.integers(0, 3, 32), y_test=rng.integers(0, 3, 8),
             x_test=rng.integers(0, 255, (8, 6, 6), dtype=np.uint8))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-m", "cnnc", "train", "tiny.cnn", "--quiet", "-o", "run"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    out = tmp_path / "tiny.onnx"
    weights = tmp_path / "run" / "weights.npz"
    assert main(["export", "onnx", str(tmp_path / "tiny.cnn"), "--weights", str(weights),
                 "-o", str(out)]) == 0
    model = cnnc.parse(tmp_path / "tiny.cnn").model()
    x = rng.random((3, 6, 6, 1), dtype=np.float32)
    ref = torch_ref.forward(model, read_npz(weights), x)
    assert np.abs(run_onnx(onnx.load(out), x, "nhwc") - ref).max() < FORWARD
