"""Numba's CUDA simulator for the tests: a block's threads as greenlets, not OS threads.

The tests import `quicker_simulator` (tests/conftest.py); subprocesses that run the CUDA
target in the simulator get it by putting SITE on PYTHONPATH, whose sitecustomize.py
Python imports at start-up (`env_with_quicker_simulator`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent / "simulator_site"


def simulator_on() -> bool:
    """Whether Numba's CUDA target is its simulator in this process (NUMBA_ENABLE_CUDASIM)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


def quicker_simulator() -> None:
    """When the simulator is on (else nothing): run each simulated block's threads as
    greenlets, switched at the block's barriers.

    Numba's simulator starts one OS thread per CUDA thread and polls them, with the GIL
    held, until all have reached a barrier: about 0.1 ms of thread start and GIL hand-off
    per simulated thread, most of the CUDA tests' time. Here the block manager runs each
    thread, in thread-index order, until it reaches `syncthreads` (or returns), then the
    next; when every live thread waits at the barrier, all go on. That is the barrier's
    meaning on a GPU, in one fixed interleaving, and a deterministic one: a kernel that
    reads shared memory another thread has not yet written (a missing barrier) reads it
    before the write in this order, every run, where OS threads caught it by chance.

    Every use of `threading.current_thread()` in the simulator's kernel API (threadIdx,
    blockIdx, laneid, the syncthreads family, the grid group's sync) asks this scheduler
    for the simulated thread that is running instead.
    """
    if not simulator_on():
        return
    import threading
    import types

    import greenlet
    import numpy as np
    from numba.cuda.simulator import kernel, kernelapi

    if getattr(kernelapi, "_cnnc_tests_quicker", False):   # once per process (conftest and
        return                                              # a sitecustomize may both ask)
    kernelapi._cnnc_tests_quicker = True
    running = [None]            # the simulated thread now running (one OS thread runs all)

    class SimulatedThread:
        """One CUDA thread of a block: what kernelapi asks `current_thread()` for."""

        def __init__(self, manager, block_idx, thread_idx, run):
            self._manager = manager
            self.blockIdx = kernelapi.Dim3(*block_idx)
            self.threadIdx = kernelapi.Dim3(*thread_idx)
            bx, by, _ = manager._block_dim
            self.thread_id = self.threadIdx.x + bx * (self.threadIdx.y + by * self.threadIdx.z)
            self.greenlet = greenlet.greenlet(run)

        def syncthreads(self):
            self.greenlet.parent.switch()        # back to the block manager until all wait

        # the simulator's own votes: they write block_state, then call syncthreads above
        syncthreads_count = kernel.BlockThread.syncthreads_count
        syncthreads_and = kernel.BlockThread.syncthreads_and
        syncthreads_or = kernel.BlockThread.syncthreads_or

    class BlockManager:
        """Runs one block: each live thread until its next barrier, round after round."""

        def __init__(self, f, grid_dim, block_dim, debug):
            self._f = f
            self._block_dim = block_dim
            self._debug = debug
            self.block_state = np.zeros(block_dim, dtype=np.bool_)

        def run(self, grid_point, *args):
            def body():
                if self._debug:
                    np.seterr(divide="raise")
                self._f(*args)

            waiting = [SimulatedThread(self, grid_point, point, body)
                       for point in np.ndindex(*self._block_dim)]
            try:
                while waiting:
                    at_barrier = []
                    for thread in waiting:
                        running[0] = thread
                        try:
                            thread.greenlet.switch()
                        except Exception as e:
                            where = f"tid={list(thread.threadIdx)} ctaid={list(thread.blockIdx)}"
                            raise type(e)(f"{where}: {e}" if str(e) else where) \
                                .with_traceback(e.__traceback__) from None
                        if not thread.greenlet.dead:
                            at_barrier.append(thread)
                    waiting = at_barrier
            finally:
                running[0] = None

    def shared_array(self, shape, dtype, alignment=None):
        """The simulator's shared array, found by its caller's file and line as before,
        without its traceback.extract_stack (which read the source of every frame on each
        call)."""
        if shape == 0 or alignment is not None:       # dynamic shared memory: no key
            return original_shared_array(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        found = self._allocations.get(key)
        if found is None:
            found = self._allocations[key] = np.empty(shape, dtype)
        return found

    original_shared_array = kernelapi.FakeCUDAShared.array
    kernelapi.FakeCUDAShared.array = shared_array
    kernelapi.threading = types.SimpleNamespace(current_thread=lambda: running[0],
                                                Lock=threading.Lock)
    kernel.BlockManager = BlockManager


def env_with_quicker_simulator(env: dict | None = None) -> dict:
    """`env` (default: this process's) for a subprocess that runs the CUDA target in the
    simulator, with SITE first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SITE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
