"""Analytic gradients against central finite differences, in float64.

    NUMBA_DISABLE_JIT=1 python tests/tools/finite_diff.py

Each case compiles a small model with dtype=float64 (the generated module's element type
becomes float64), computes the gradient of the training loss (batch statistics, dropout
off) with the generated backward kernels, and compares sampled entries of every parameter
gradient with (L(p + h) - L(p - h)) / 2h, h = 1e-5: |analytic - fd| <= 1e-6 * max(1, |fd|).
Prints one JSON line per case.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # tests/

import cnnc  # noqa: E402
from cnnc.ir.ops import activation_ops  # noqa: E402
from oracles.tolerances import FINITE_DIFFERENCES as TOL  # noqa: E402

H = 1e-5
TANH = "activation=tanh"
CASES = [
    ("conv2d strided same", "input(7, 6, 2) conv2d(3, kernel=3, strides=2, padding=same, "
     f"{TANH}) flatten() dense(3)", "mse", "all"),
    ("conv2d dilated valid", f"input(7, 7, 2) conv2d(2, kernel=2, dilation=2, {TANH}) "
     "conv2d(3, kernel=3, padding=same) flatten() dense(2)", "mse", "all"),
    ("maxpool2d", f"input(6, 6, 2) conv2d(3, kernel=1, {TANH}) maxpool2d(2) "
     "maxpool2d(2, strides=1, padding=same) flatten() dense(2)", "mse", "all"),
    ("avgpool2d", f"input(7, 6, 2) conv2d(3, kernel=1, {TANH}) avgpool2d(3, strides=2, "
     "padding=same) avgpool2d(2) flatten() dense(2)", "mse", "all"),
    ("global pools", f"input(4, 5, 2) conv2d(3, kernel=2, {TANH}) residual {{ "
     "conv2d(3, kernel=1) } global_avgpool2d() dense(2)", "mse", "all"),
    ("global max", f"input(4, 5, 2) conv2d(3, kernel=2, {TANH}) global_maxpool2d() dense(2)",
     "mse", "all"),
    ("dense", "input(2, 3, 2) flatten() dense(5, activation=sigmoid) dense(4, "
     "activation=elu) dense(3)", "mse", "all"),
    ("batchnorm", "input(4, 4, 2) conv2d(3, kernel=2, use_bias=false) batchnorm() "
     "activation(tanh) flatten() dense(4) batchnorm(epsilon=0.01) dense(3)", "mse", "all"),
    ("categorical_crossentropy from logits", "input(3, 3, 2) flatten() dense(4, "
     f"{TANH}) dense(3, activation=softmax)", "categorical_crossentropy", "all"),
    ("categorical_crossentropy on probabilities", "input(3, 3, 2) flatten() dense(4, "
     f"{TANH}) dense(3, activation=softmax)", "categorical_crossentropy", "none"),
    ("sparse_categorical_crossentropy", "input(3, 3, 2) flatten() dense(4, "
     f"{TANH}) dense(3, activation=softmax)", "sparse_categorical_crossentropy", "all"),
    ("sparse on probabilities", "input(3, 3, 2) flatten() dense(4, "
     f"{TANH}) dense(3, activation=softmax)", "sparse_categorical_crossentropy", "none"),
    ("binary_crossentropy from logits", "input(3, 3, 2) flatten() dense(4, "
     f"{TANH}) dense(2, activation=sigmoid)", "binary_crossentropy", "all"),
    ("binary_crossentropy on probabilities", "input(3, 3, 2) flatten() dense(4, "
     f"{TANH}) dense(2, activation=sigmoid)", "binary_crossentropy", "none"),
    ("mse", "input(3, 3, 2) flatten() dense(3)", "mse", "all"),
    # every activation of the op table, each in a dense layer's epilogue
    ("every activation", "input(2, 3, 2) flatten() " + " ".join(
        f"dense(4, activation={a})" for a in activation_ops()) + " dense(3)", "mse", "all"),
]


def labels(loss, n, k, rng):
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, k, n)
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == "binary_crossentropy":
        return (rng.random((n, k)) > 0.5).astype(np.float64)
    return rng.normal(size=(n, k))


def check(name, body, loss, fuse, seed=0) -> dict:
    model = cnnc.compile(f"model m {{ {body} }}", loss=loss, optimizer="sgd", fuse=fuse,
                         dtype="float64")
    mod = model.module
    assert mod.DTYPE is np.float64
    rng = np.random.default_rng(seed)
    params = mod.init_params(seed)
    for name_, p in params.items():
        p[...] = rng.normal(0, 0.5, p.shape) + (1.0 if name_.endswith(("variance", "gamma"))
                                                else 0.0)
    x = rng.normal(size=(4,) + model.input_shape)
    y = labels(loss, 4, model.output_shape[-1], rng)
    _, _, grads = mod.compute_gradients(params, x, y)
    worst = 0.0
    for pname, g in grads.items():
        flat = params[pname].reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 5), replace=False)
        for i in picks:
            keep = flat[i]
            flat[i] = keep + H
            up = mod.compute_gradients(params, x, y)[0]
            flat[i] = keep - H
            down = mod.compute_gradients(params, x, y)[0]
            flat[i] = keep
            fd = (up - down) / (2 * H)
            analytic = g.reshape(-1)[i]
            err = abs(analytic - fd) / max(1.0, abs(fd))
            worst = max(worst, err)
            if err > TOL:
                raise AssertionError(f"{pname}[{i}]: analytic {analytic!r}, finite "
                                     f"difference {fd!r}")
    return {"ok": True, "worst": worst}


def main() -> int:
    failed = 0
    for name, body, loss, fuse in CASES:
        try:
            record = {"case": name, **check(name, body, loss, fuse)}
        except Exception as e:
            record = {"case": name, "ok": False, "error": f"{type(e).__name__}: {e}",
                      "trace": traceback.format_exc()[-1500:]}
            failed += 1
        print(json.dumps(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
