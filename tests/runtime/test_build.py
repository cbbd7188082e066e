"""Compiling the kernels as a step of its own, shared among processes (runtime/build.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

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

# SOURCE with a convolution of several input channels and a pooling: kernels whose
# parallel loops run in chunks of rows (thread-private buffers allocated per chunk)
POOLED = SOURCE.replace("    flatten()", "    conv2d(4, kernel=3, padding=same, activation=relu)\n"
                        "    maxpool2d(2)\n    flatten()")

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
def broken(spec):
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(1)"],
                            stdout=subprocess.PIPE, text=True)
B._spawn = broken
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


def test_kernels_are_claimed_largest_first_and_once(tmp_path, monkeypatch):
    """Each process compiles the kernels it claims first, in the same largest-first
    order, for every signature the entry points call them with: a kernel another
    process claimed is left to it."""
    sizes = {"a": 9, "b": 5, "c": 4, "d": 3, "e": 1}
    assert B.largest_first(["e", "c", "a", "d", "b"], sizes) == ["a", "b", "c", "d", "e"]
    assert B.largest_first(["y", "x"], {}) == ["x", "y"]

    class Kernel:
        def __init__(self):
            self.sigs = []

        def compile(self, sig):
            self.sigs.append(sig)

    module = types.SimpleNamespace(a=Kernel(), b=Kernel())
    monkeypatch.setattr(B, "signatures", lambda module, train: {
        "a": [("f4",)], "b": [("f8",), ("i8",)]})
    (tmp_path / "a").touch()                            # claimed by another process
    done = []
    B.compile_claimed(module, ["a", "b"], tmp_path, True, done.append)
    assert done == ["b"] and module.a.sigs == [] and module.b.sigs == [("f8",), ("i8",)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_compile_command_builds_the_kernels(tmp_path):
    """`cnnc compile -o` compiles the module's kernels as a step of its own, in several
    processes, into Numba's cache beside it: a new process importing the module then
    compiles nothing (every kernel it calls is a cache hit; a kernel Numba cannot cache,
    such as one calling numba.get_num_threads(), a ctypes function, would miss)."""
    (tmp_path / "small.cnn").write_text(POOLED)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    result = subprocess.run([sys.executable, "-m", "cnnc", "compile", "small.cnn", "-o",
                             "small.py"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    compiled = [line for line in result.stderr.splitlines() if "compiled" in line]
    assert len(compiled) == 1 and "into Numba's cache beside it" in compiled[0], result.stderr
    count = int(compiled[0].split("compiled ")[1].split()[0])
    assert (tmp_path / "__pycache__").is_dir()
    code = textwrap.dedent("""
        import numpy as np, small
        from numba.core.registry import CPUDispatcher
        params = small.init_params(0)
        x = np.zeros((2, 6, 6, 1), dtype=np.float32)
        y = np.zeros((2, 3), dtype=np.float32)
        small.forward(params, x)
        small.train_step(params, small.init_opt_state(params), x, y, 0, 0)
        small.evaluate(params, x, y, batch_size=2)
        kernels = [v for v in vars(small).values()
                   if isinstance(v, CPUDispatcher) and v.targetoptions.get("parallel")]
        hits = sum(sum(k.stats.cache_hits.values()) for k in kernels)
        misses = sum(sum(k.stats.cache_misses.values()) for k in kernels)
        print(hits, misses)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    hits, misses = map(int, run.stdout.split())
    assert misses == 0 and hits == count, run.stdout
    quiet = subprocess.run([sys.executable, "-m", "cnnc", "compile", "small.cnn", "-o",
                            "other.py", "--no-build"], capture_output=True, text=True,
                           cwd=tmp_path, env=env)
    assert quiet.returncode == 0 and "compiled" not in quiet.stderr
