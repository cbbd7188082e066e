"""Shared test configuration.

`--long` runs the long differential, fuzz and benchmark-sized tests (marked `long`); CI
runs a seeded, fast subset without it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the long tests (differential sweeps, long fuzzing)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    long = [item for item in items if "long" in item.keywords]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if "long" not in item.keywords]


def gpu_present() -> bool:
    """Whether the CUDA driver sees a GPU (asked through libcuda, without Numba)."""
    import ctypes
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 \
        and count.value > 0


# The CUDA tests (tests/cuda) run on a GPU when there is one, else in Numba's CUDA
# simulator: the choice is made here, before anything imports numba.cuda. Set
# NUMBA_ENABLE_CUDASIM yourself to force either.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


def _quicker_simulator() -> None:
    """Numba's CUDA simulator, made faster and safe to switch threads often.

    Its block manager polls the simulated threads in a loop that holds the GIL until the
    interpreter forces a switch (every 5 ms by default) while they wait for it: switching
    every 0.1 ms ran two training steps of tests/cuda's model in 4.7 s instead of 13.5 s.
    Finer switching interleaves the threads of a block more finely, which tests the
    kernels' barriers harder, and it exposed a race in the simulator itself: a block's
    threads find their shared arrays in a dict keyed by the calling line, created by the
    first thread to look (get, then set, unlocked), so two threads could each create one
    and compute on different "shared" memory. Shared arrays are created under a lock here,
    with the simulator's key (the caller's file and line), found without its
    traceback.extract_stack, which read the source of every frame on each call.
    """
    import threading

    from numba.cuda.simulator import kernelapi

    original = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:       # dynamic shared memory: no key
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                found = self._allocations[key] = kernelapi.np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array
    sys.setswitchinterval(1e-4)


if os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0"):
    _quicker_simulator()

# Kernels compile at LLVM -O1 in tests: the same source, types and fast-math flags as a
# user's -O3 build, at under half the compile time. tests/codegen/test_examples.py runs
# mnist_cnn once more at Numba's default level in a subprocess.
os.environ.setdefault("NUMBA_OPT", "1")


def pytest_configure(config):
    # Compiled modules and kernels go to a cache for this test session unless the caller
    # chose one (CI starts empty either way).
    if "CNNC_CACHE_DIR" not in os.environ:
        import tempfile
        os.environ["CNNC_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnc-test-cache-")


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
