"""A damaged cache never gives wrong results: every cached artifact -- the module, its
kernel index, the shared kernel files, Numba's cache files, the machine code of Numba's
runtime -- is verified before use and rebuilt when it does not verify. Each case warms a
cache in one process, damages it, and predicts and evaluates in a second process: the
same bits, exit 0.

Also: a warm cache that cannot be written is used as it is; a cache that must be written
and cannot be says so in one line.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cnnc
from cnnc.errors import CnncRuntimeError

MODEL = """
model tiny { input(6, 6, 1) conv2d(3, kernel=3, activation=relu) maxpool2d(2) flatten()
             dense(4, activation=softmax) }
train tiny { loss = sparse_categorical_crossentropy optimizer = adam }
"""
RUN = textwrap.dedent("""
    import sys, numpy as np, cnnc
    model = cnnc.compile(open(sys.argv[1]).read())
    x = np.random.default_rng(0).random((5, 6, 6, 1), dtype=np.float32)
    loss, acc = model.evaluate(x, np.arange(5) % 4)
    np.save(sys.argv[2], np.append(model.predict(x).ravel(), [loss, acc]))
""")

ARTIFACTS = {
    "module": "tiny-*/tiny.py",
    "index": "tiny-*/kernels.json",
    "kernel file": "kernels/k_*.py",
    "numba index": "kernels/__pycache__/*.nbi",
    "numba code": "kernels/__pycache__/*.nbc",
    "compiled module": "tiny-*/__pycache__/*.code",
    "compiled kernel file": "kernels/__pycache__/*.code",
    "numba runtime": "numba-runtime/nrt-*.o",
}


def truncate(path: Path):
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-2]) if len(lines) > 2 else path.read_bytes()[:-20])


def empty(path: Path):
    path.write_bytes(b"")


def random_bytes(path: Path):
    path.write_bytes(random.Random(str(path)).randbytes(max(64, path.stat().st_size)))


def bit_flip(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": truncate, "emptied": empty, "random bytes": random_bytes,
          "bit flip": bit_flip}
# CI: every artifact damaged one way, every way used; --long: every pair.
CASES = [(a, d) for i, a in enumerate(ARTIFACTS) for j, d in enumerate(DAMAGE)
         if (i + j) % len(DAMAGE) == 0]
ALL_CASES = [(a, d) for a in ARTIFACTS for d in DAMAGE]


def run(folder: Path, cache: Path, out: str) -> np.ndarray:
    (folder / "model.cnn").write_text(MODEL)
    (folder / "run.py").write_text(RUN)
    env = dict(os.environ, CNNC_CACHE_DIR=str(cache))
    result = subprocess.run([sys.executable, str(folder / "run.py"),
                             str(folder / "model.cnn"), str(folder / out)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(folder / out)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A warm cache (modules, kernels and Numba's files sealed at exit) and the results
    it gives."""
    folder = tmp_path_factory.mktemp("warm")
    return folder / "cache", run(folder, folder / "cache", "ref.npy")


def damaged_copy(tmp_path, warm, artifact, damage) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(warm[0], cache)
    files = sorted(cache.glob(ARTIFACTS[artifact]))
    assert files, artifact
    for path in files[:3]:
        DAMAGE[damage](path)
    return cache


@pytest.mark.parametrize("artifact, damage", CASES)
def test_damaged_artifacts_are_rebuilt(tmp_path, warm, artifact, damage):
    cache = damaged_copy(tmp_path, warm, artifact, damage)
    assert np.array_equal(run(tmp_path, cache, "got.npy"), warm[1])


@pytest.mark.long
@pytest.mark.parametrize("artifact, damage", ALL_CASES)
def test_every_damage_of_every_artifact(tmp_path, warm, artifact, damage):
    cache = damaged_copy(tmp_path, warm, artifact, damage)
    assert np.array_equal(run(tmp_path, cache, "got.npy"), warm[1])
    assert np.array_equal(run(tmp_path, cache, "again.npy"), warm[1])   # whole again


def test_numba_files_swapped_between_kernels(tmp_path, warm):
    """One kernel's compiled code put in another's place (both complete files); the
    repaired cache is whole again for the next process."""
    cache = tmp_path / "cache"
    shutil.copytree(warm[0], cache)
    for kind in ("numba code", "numba index"):
        files = sorted(cache.glob(ARTIFACTS[kind]), key=lambda p: p.stat().st_size)
        assert len(files) >= 2
        files[0].write_bytes(files[-1].read_bytes())
    assert np.array_equal(run(tmp_path, cache, "got.npy"), warm[1])
    assert np.array_equal(run(tmp_path, cache, "again.npy"), warm[1])


COMPILED = textwrap.dedent("""
    import sys, types, numpy as np, cnnc
    import cnnc.runtime.cache as cache
    if sys.argv[3] == "refuse":
        def refuse(*args, **kw):
            raise AssertionError("compiled a module's text")
        cache.compile = refuse
    model = cnnc.compile(open(sys.argv[1]).read())
    model.predict(np.zeros((1, 6, 6, 1), dtype=np.float32))
    for module in list(sys.modules.values()):
        if str(getattr(module, "__file__", "")).startswith(sys.argv[2]):
            for value in vars(module).values():          # its functions and kernels
                function = getattr(value, "py_func", value)
                if isinstance(function, types.FunctionType) and \
                        function.__module__ == module.__name__:
                    print(module.__file__, function.__code__.co_filename)
""")


def test_modules_run_from_their_compiled_code_at_their_own_path(tmp_path, warm):
    """A warm load executes the code compiled beside each module (it never compiles a
    module's text); a cache copied elsewhere compiles its modules again, so that their
    functions name the files they are in (Numba finds its cache files from those)."""
    (tmp_path / "model.cnn").write_text(MODEL)
    (tmp_path / "compiled.py").write_text(COMPILED)

    def functions(cache: Path, mode: str) -> list[list[str]]:
        env = dict(os.environ, CNNC_CACHE_DIR=str(cache))
        result = subprocess.run([sys.executable, str(tmp_path / "compiled.py"),
                                 str(tmp_path / "model.cnn"), str(cache), mode],
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return [line.split() for line in result.stdout.splitlines()]

    found = functions(warm[0], "refuse")
    assert len({module for module, _ in found}) >= 3     # the model's and its kernels'
    assert all(module == code for module, code in found)
    moved = tmp_path / "moved"
    shutil.copytree(warm[0], moved)
    found = functions(moved, "compile")
    assert found and all(module == code and code.startswith(str(moved))
                         for module, code in found)
    assert functions(moved, "refuse") == found           # compiled there once, now reused


def test_a_warm_cache_that_cannot_be_written_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNC_CACHE_DIR", str(tmp_path / "cache"))
    cold = cnnc.compile(MODEL)
    x = np.random.default_rng(0).random((2, 6, 6, 1), dtype=np.float32)
    expected = cold.predict(x)

    def refuse(*args, **kw):
        raise PermissionError(13, "Permission denied", str(args[0]))
    import cnnc.runtime.cache as cache
    monkeypatch.setattr(cache, "atomic_write_bytes", refuse)
    warm = cnnc.compile(MODEL)                    # nothing to write: it is all there
    assert np.array_equal(warm.predict(x), expected)
    cnnc.runtime.cache.seal_numba_cache()         # at exit: a read-only cache stays as is
    with pytest.raises(CnncRuntimeError, match=r"cannot write the module cache .*"
                                               r"Permission denied.*CNNC_CACHE_DIR"):
        cnnc.compile(MODEL.replace("dense(4", "dense(3"))


def test_a_cache_path_that_is_a_file_is_one_clear_line(tmp_path):
    (tmp_path / "model.cnn").write_text(MODEL)
    (tmp_path / "data.npz").write_bytes(b"")
    afile = tmp_path / "not_a_folder"
    afile.write_text("x")
    env = dict(os.environ, CNNC_CACHE_DIR=str(afile))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x_train=rng.random((8, 6, 6)).astype(np.float32),
             y_train=np.arange(8) % 4)
    result = subprocess.run([sys.executable, "-m", "cnnc", "train", "model.cnn", "--data",
                             "data.npz", "--epochs", "1", "--quiet"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the module cache" in lines[0] and \
        "it is a file, not a folder" in lines[0], result.stderr
