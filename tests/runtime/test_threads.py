"""A compiled model may be called from several threads: two threads on each of two model
objects of one model (one generated module) get the results one thread gets, bit for
bit. (They shared the module's work buffers, and ~85% of such calls were wrong.)"""

from __future__ import annotations

import threading

import numpy as np

import cnnc
from conftest import EXAMPLES


def test_two_threads_on_two_models_predict_and_differentiate_exactly():
    models = [cnnc.compile(EXAMPLES / "mnist_cnn.cnn") for _ in range(2)]
    assert models[0].module is models[1].module
    rng = np.random.default_rng(0)
    models[1].set_params({k: v * 0.5 for k, v in models[1].params.items()})
    inputs = [rng.random((48, 28, 28, 1), dtype=np.float32) for _ in range(2)]
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 48)]
    expected = {(m, i): (models[m].predict(inputs[i]),
                         models[m].gradients(inputs[i], labels)[1])
                for m in range(2) for i in range(2)}
    wrong = []

    def work(m, i):
        for _ in range(25):
            y = models[m].predict(inputs[i])
            _, grads = models[m].gradients(inputs[i], labels)
            want_y, want_g = expected[m, i]
            if not np.array_equal(y, want_y) or \
                    any(not np.array_equal(grads[k], want_g[k]) for k in want_g):
                wrong.append((m, i))

    threads = [threading.Thread(target=work, args=(m, i)) for m in range(2) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
