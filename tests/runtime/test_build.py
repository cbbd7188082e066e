"""Compiling the kernels as a step of its own, shared among processes (runtime/build.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import cnnc
from cnnc.runtime import build as B

SOURCE = """
model b {
    input(6, 6, 1)
    conv2d(3, kernel=3, activation=relu)
    flatten()
    dense(8, activation=relu)
    dropout(0.5)
    dense(3, activation=softmax)
}
train b {
    loss = categorical_crossentropy
    optimizer = adam
}
"""


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def data():
    rng = np.random.default_rng(0)
    return rng.random((20, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 20)


def test_build_compiles_every_cold_kernel_in_two_processes_once(fresh_cache):
    model = cnnc.compile(SOURCE)
    cold = B.cold_kernels(model.module)
    assert len(cold) == len(model.module._cnnc_kernel_files) >= 8
    assert model.build(jobs=2) == len(cold)
    assert B.cold_kernels(model.module) == []
    # the other process's share was loaded here from Numba's cache, not compiled again
    loaded = [name for name in cold if getattr(model.module, name).stats.cache_hits]
    compiled = [name for name in cold if getattr(model.module, name).stats.cache_misses]
    assert loaded and compiled and not set(loaded) & set(compiled)
    assert model.build() == 0                                   # warm: nothing to do
    # the same numbers as a model whose kernels compiled at their first call
    x, y = data()
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    lazy = cnnc.compile(SOURCE.replace("model b", "model b ").replace("train b", "train b "))
    assert B.cold_kernels(lazy.module) == []     # same kernels: the shared store has them
    again = lazy.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert again.history == history.history
    for name, value in model.params.items():
        np.testing.assert_array_equal(lazy.params[name], value)


def test_a_failed_worker_leaves_its_share_to_this_process(fresh_cache, monkeypatch):
    def broken(model, share):
        return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(1)"],
                                stdout=subprocess.PIPE, text=True)
    monkeypatch.setattr(B, "_start", broken)
    # other shapes than the first test's: kernels this process has not compiled yet
    model = cnnc.compile(SOURCE.replace("dense(8", "dense(9").replace("(6, 6, 1)", "(7, 7, 1)"))
    count = len(B.cold_kernels(model.module))
    assert model.build(jobs=2) == count
    kernels = [getattr(model.module, name) for name in model.module._cnnc_kernel_files]
    assert all(kernel.signatures for kernel in kernels)          # every one compiled here


def test_shares_are_balanced_and_deterministic():
    sizes = {"a": 9, "b": 5, "c": 4, "d": 3, "e": 1}
    parts = B.shares(list(sizes), sizes, 2)
    assert parts == [["a", "d"], ["b", "c", "e"]]
    assert B.shares(list(sizes), sizes, 2) == parts
    assert B.shares(["a"], sizes, 3) == [["a"]]
