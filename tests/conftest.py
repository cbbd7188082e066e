"""Shared test configuration.

`--long` runs the long differential, fuzz and benchmark-sized tests (marked `long`); CI
runs a seeded, fast subset without it.
"""

from __future__ import annotations

import os
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
from tools.simulator import quicker_simulator  # noqa: E402 -- after the choice above

quicker_simulator()

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
