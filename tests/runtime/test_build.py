"""Compiling the kernels as a step of its own, shared among processes (runtime/build.py)."""

from __future__ import annotations

import os
import subprocess
import sys

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


# Each check runs in a new process with an empty cache: a process that compiled a kernel
# once (another test, for another cache) would not compile it again.
FIRST = """
import numpy as np, cnnc
from cnnc.runtime import build as B
model = cnnc.compile(SOURCE)
cold = B.cold_kernels(model.module)
assert len(cold) == len(model.module._cnnc_kernel_files) >= 8, cold
assert model.build(jobs=2) == len(cold)
assert B.cold_kernels(model.module) == []
# the other process's share was loaded here from Numba's cache, not compiled again
loaded = [n for n in cold if getattr(model.module, n).stats.cache_hits]
compiled = [n for n in cold if getattr(model.module, n).stats.cache_misses]
assert loaded and compiled and not set(loaded) & set(compiled), (loaded, compiled)
assert model.build() == 0                                   # warm: nothing to do
rng = np.random.default_rng(0)
x, y = rng.random((20, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 20)
history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
# the same numbers from a second model of the same kernels, loaded at their first call
lazy = cnnc.compile(SOURCE.replace("model b", "model b ").replace("train b", "train b "))
assert B.cold_kernels(lazy.module) == []
again = lazy.fit(x, y, epochs=2, batch_size=4, verbose=0)
assert again.history == history.history
for name, value in model.params.items():
    np.testing.assert_array_equal(lazy.params[name], value)
"""

BROKEN = """
import subprocess, sys, cnnc
from cnnc.runtime import build as B
def broken(model, share, train=True):
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(1)"],
                            stdout=subprocess.PIPE, text=True)
B._start = broken
model = cnnc.compile(SOURCE)
count = len(B.cold_kernels(model.module))
assert model.build(jobs=2) == count
assert B.cold_kernels(model.module) == []
"""


PREDICT = """
import numpy as np, cnnc
from cnnc.runtime import build as B
model = cnnc.compile(SOURCE)
forward = B.used_kernels(model.module, train=False)
assert 0 < len(forward) < len(model.module._cnnc_kernel_files)
model.predict(np.zeros((3, 6, 6, 1), np.float32))
cold = set(B.cold_kernels(model.module))
assert not cold & set(forward) and cold    # the training kernels stay uncompiled
"""


def run(code: str, tmp_path):
    env = dict(os.environ, CNNC_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", f"SOURCE = {SOURCE!r}\n" + code],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_build_compiles_every_cold_kernel_in_two_processes_once(tmp_path):
    run(FIRST, tmp_path)


def test_predict_compiles_the_inference_kernels_alone(tmp_path):
    run(PREDICT, tmp_path)


def test_a_failed_worker_leaves_its_share_to_this_process(tmp_path):
    run(BROKEN, tmp_path)


def test_shares_are_balanced_and_deterministic():
    sizes = {"a": 9, "b": 5, "c": 4, "d": 3, "e": 1}
    parts = B.shares(list(sizes), sizes, 2)
    assert parts == [["a", "d"], ["b", "c", "e"]]
    assert B.shares(list(sizes), sizes, 2) == parts
    assert B.shares(["a"], sizes, 3) == [["a"]]
