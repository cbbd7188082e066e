"""Numba's CUDA simulator for the tests: faster, and safe to switch threads often.

The tests import `quicker_simulator` (tests/conftest.py); subprocesses that run the CUDA
target in the simulator get it by putting SITE on PYTHONPATH, whose sitecustomize.py
Python imports at start-up (`env_with_quicker_simulator`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent / "simulator_site"


def quicker_simulator() -> None:
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

    if getattr(kernelapi, "_cnnc_tests_quicker", False):   # once per process (conftest and
        return                                              # a sitecustomize may both ask)
    kernelapi._cnnc_tests_quicker = True
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


def env_with_quicker_simulator(env: dict | None = None) -> dict:
    """`env` (default: this process's) for a subprocess that runs the CUDA target in the
    simulator, with SITE first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SITE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
