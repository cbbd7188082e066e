"""Training end to end: the loss falls, runs are reproducible, the module trains alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnc
from cnnc import data
from conftest import EXAMPLES

TINY = """
model tiny {
    input(28, 28, 1)
    conv2d(8, kernel=3, activation=relu)
    maxpool2d(2)
    dropout(0.25)
    flatten()
    dense(32, activation=relu)
    dense(10, activation=softmax)
}
train tiny {
    loss = categorical_crossentropy
    optimizer = adam(learning_rate=0.003)
    batch_size = 64
    epochs = 3
    seed = 7
}
"""


@pytest.fixture(scope="module")
def digits():
    ds = data.embedded_mnist()
    return ds.x_train[:1500], ds.y_train[:1500], ds.x_test[:500], ds.y_test[:500]


def test_loss_falls_and_accuracy_rises(digits):
    x, y, x_test, y_test = digits
    model = cnnc.compile(TINY)
    before, _ = model.evaluate(x_test, y_test)
    history = model.fit(x, y, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]
    loss, acc = model.evaluate(x_test, y_test)
    assert loss < before / 3
    assert acc > 0.75                    # 82% measured; deterministic for a seed


def test_fit_validation_and_history(digits):
    x, y, *_ = digits
    model = cnnc.compile(TINY)
    history = model.fit(x[:600], y[:600], epochs=2, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0, 1]
    with pytest.raises(ValueError, match="fit got 600 inputs and 5 labels"):
        model.fit(x[:600], y[:5])


def test_training_updates_batchnorm_moving_statistics():
    model = cnnc.compile("model m { input(4, 4, 2) conv2d(3, kernel=1, use_bias=false) "
                         "batchnorm(momentum=0.5) flatten() dense(2, activation=softmax) }",
                         loss="sparse_categorical_crossentropy", optimizer="sgd")
    x = np.random.default_rng(0).normal(2.0, 1.0, size=(8, 4, 4, 2)).astype(np.float32)
    y = np.arange(8) % 2
    kernel = model.params["conv2d/kernel"].reshape(2, 3)
    z = x.reshape(-1, 2) @ kernel
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    # one step with momentum 0.5: moving = 0.5 * initial + 0.5 * batch statistic (biased)
    np.testing.assert_allclose(model.params["batch_normalization/moving_mean"],
                               0.5 * z.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(model.params["batch_normalization/moving_variance"],
                               0.5 + 0.5 * z.var(axis=0), atol=1e-5)


RUN = textwrap.dedent("""
    import sys, numpy as np, cnnc
    from cnnc import data
    ds = data.embedded_mnist()
    model = cnnc.compile(sys.argv[1])
    model.fit(ds.x_train[:640], ds.y_train[:640], epochs=2, verbose=0)
    np.save(sys.argv[2], np.concatenate([v.ravel() for v in model.params.values()]))
""")


def test_bit_identical_with_one_and_two_threads(tmp_path):
    (tmp_path / "tiny.cnn").write_text(TINY)
    results = {}
    for threads in (1, 2):
        for run in (1, 2):
            out = tmp_path / f"w{threads}{run}.npy"
            env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
            done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "tiny.cnn"),
                                   str(out)], env=env, capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, done.stderr[-2000:]
            results[threads, run] = np.load(out)
    assert np.array_equal(results[1, 1], results[1, 2])
    assert np.array_equal(results[2, 1], results[2, 2])
    # chunked reductions make the sums independent of the thread count, too
    assert np.array_equal(results[1, 1], results[2, 1])


def test_standalone_module_trains_with_numpy_and_numba_only(tmp_path):
    from cnnc.compiler import lower
    source = lower(TINY).source()
    (tmp_path / "tiny.py").write_text(source)
    ds = data.embedded_mnist()
    np.savez(tmp_path / "digits.npz", x_train=ds.x_train[:512], y_train=ds.y_train[:512],
             x_test=ds.x_test[:200], y_test=ds.y_test[:200])
    code = textwrap.dedent("""
        import sys, builtins
        real_import = builtins.__import__
        def guarded(name, *args, **kw):
            if name.split(".")[0] == "cnnc":
                raise ImportError("cnnc must not be imported")
            return real_import(name, *args, **kw)
        builtins.__import__ = guarded
        sys.argv = ["tiny.py", "train", "digits.npz", "2", "32"]
        import runpy
        runpy.run_path("tiny.py", run_name="__main__")
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("epoch 1: loss ") and lines[1].startswith("epoch 2: loss ")
    accuracy = float(lines[1].rsplit(" ", 1)[1])
    assert accuracy > 0.7


def test_gradients_api_and_errors():
    model = cnnc.compile(TINY)
    x = np.zeros((2, 28, 28, 1), np.float32)
    loss, grads = model.gradients(x, [3, 4])
    assert abs(loss - np.log(10)) < 0.1          # untrained: close to uniform
    assert set(grads) == {"conv2d/kernel", "conv2d/bias", "dense/kernel", "dense/bias",
                          "dense_1/kernel", "dense_1/bias"}
    plain = cnnc.compile("model m { input(2, 2, 1) flatten() dense(2) }")
    with pytest.raises(cnnc.CnncError, match="has no train block"):
        plain.fit(np.zeros((1, 2, 2, 1), np.float32), [0])


def test_example_train_blocks_compile():
    for path in EXAMPLES.glob("*.cnn"):
        from cnnc.compiler import lower
        compiled = lower(path)
        assert compiled.training is not None, path
        kernels = [k for k in compiled.training.kernels if k.template == "update"]
        assert len(kernels) == 1 and len(kernels[0].group.nodes) > 1   # one update kernel


def test_train_step_with_a_plain_dict_of_parameters():
    """Parameters not laid out in one flat buffer are packed, updated and written back."""
    model = cnnc.compile("model m { input(3, 3, 2) conv2d(2, kernel=2, use_bias=false) "
                         "batchnorm() flatten() dense(3, activation=softmax) }",
                         loss="categorical_crossentropy", optimizer="adam")
    mod = model.module
    flat = mod.init_params(0)
    plain = {k: v.copy() for k, v in flat.items()}
    assert mod.flat_buffer(flat) is not None and mod.flat_buffer(plain) is None
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 2)).astype(np.float32)
    y = [0, 1, 2, 1]
    s1, s2 = mod.init_opt_state(), mod.init_opt_state()
    for step in range(2):
        assert mod.train_step(flat, s1, x, y, step) == mod.train_step(plain, s2, x, y, step)
    for name in flat:
        np.testing.assert_array_equal(flat[name], plain[name])


def test_unfused_training_step_matches_fused(digits):
    """fuse="none": every op its own kernel, one update kernel per parameter."""
    x, y, *_ = digits
    results = {}
    for fuse in ("all", "none"):
        model = cnnc.compile(TINY, fuse=fuse)
        mod = model.module
        params = mod.init_params(0)
        state = mod.init_opt_state(params)
        for step in range(3):
            mod.train_step(params, state, x[step * 64:(step + 1) * 64],
                           y[step * 64:(step + 1) * 64], step, seed=5)
        results[fuse] = params
    updates = [line for line in cnnc.compile(TINY, fuse="none").source.splitlines()
               if line.startswith("def adam_update")]
    assert len(updates) == 1                 # one shape-generic kernel, called per parameter
    for name in results["all"]:
        np.testing.assert_allclose(results["none"][name], results["all"][name], atol=1e-5)
