"""Data-parallel training on MPI: Horovod's scheme on the generated module's flat buffers.

Every process (rank) holds the whole model and the whole dataset. Rank 0 broadcasts
the initial parameters and optimizer state; every rank draws the same permutation of an
epoch; the global batch of step s is exactly the samples one process at batch N x B
would take at step s, and rank r takes its contiguous part of it (the last, partial
batch is split as evenly as it goes, so every rank runs every step). A step sums the
gradients, the batchnorm statistics, the loss and the accuracy over the ranks with ONE
Allreduce of the module's step buffer (`train_step(..., allreduce=...)`); every rank
then applies the same update to the same parameters, so they stay identical without
being sent again. Only rank 0 prints and writes files.

The world is the one an MPI launcher (mpiexec, srun) started: `join()` reads the
launcher's environment and imports mpi4py only then, so single-process runs never load
MPI. A rank that stops answering is noticed: each collective waits at most `timeout`
seconds (the first step, which compiles the kernels, longer) and then fails with
RankLost instead of hanging.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from ..errors import CnncError, CnncRuntimeError, Diagnostic
from ..util import cores, flush_standard_streams

INSTALL = "pip install 'cnnc[mpi]' (mpi4py and the MPICH runtime)"

# What MPI launchers put in each process's environment: the number of processes.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE",
                   "SLURM_STEP_NUM_TASKS")
STATUS_DIR = "CNNC_LAUNCH_STATUS"   # set by `cnnc train --workers`: where ranks report
DEFAULT_TIMEOUT = 120.0           # seconds a rank waits for the others in one collective
FIRST_STEP_TIMEOUT = 1800.0       # the first step compiles the kernels on every rank


class RankLost(CnncRuntimeError):
    """Another rank stopped answering (it died, or the network between them failed)."""


def launched_size() -> int:
    """The number of processes the launcher of this one started (1: none)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            if name == "SLURM_STEP_NUM_TASKS" and "SLURM_PROCID" not in os.environ:
                continue
            return int(value)
    return 1


def require_mpi():
    """mpi4py's MPI module, or a CnncRuntimeError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise CnncRuntimeError(f"training on several processes needs mpi4py and an MPI "
                               f"runtime ({e}): {INSTALL}") from None
    except RuntimeError as e:                   # mpi4py without a loadable MPI library
        raise CnncRuntimeError(f"mpi4py found no MPI library ({e}): {INSTALL}") from None
    return MPI


class World:
    """The ranks of one data-parallel run, and the few collectives training needs."""

    def __init__(self, comm, timeout: float = DEFAULT_TIMEOUT):
        self.MPI = require_mpi()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        local = comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.timeout = timeout
        self.wait = FIRST_STEP_TIMEOUT       # the first collective waits longer
        self.allreduce_seconds = 0.0          # time spent in the step's allreduce
        self.allreduce_calls = 0
        self.step_bytes = 0                   # bytes of the step buffer
        self.stop = 0.0                       # what the last step's stop flags summed to
        self.flag = lambda: 0.0               # this rank's stop flag (set by the loop)
        self.context = "at start-up"

    @property
    def main(self) -> bool:
        return self.rank == 0

    def threads_per_rank(self) -> int:
        """Numba threads for each rank: the machine's cores shared by its ranks."""
        return max(1, cores() // self.local_size)

    # --- collectives ---
    def _complete(self, request) -> None:
        """Wait for a non-blocking collective, at most self.wait seconds: RankLost then."""
        deadline = time.monotonic() + self.wait
        spins = 0
        while not request.Test():
            spins += 1
            if spins > 1000:                  # after a while, let the core go
                time.sleep(0.0005)
                if time.monotonic() > deadline:
                    raise RankLost(
                        f"rank {self.rank} of {self.size}: no word from the other ranks "
                        f"for {self.wait:.0f} s {self.context} (a rank died or the network "
                        f"failed)")
        self.wait = self.timeout

    def step_allreduce(self, buffer: np.ndarray) -> None:
        """The step's one collective: sums `buffer` (the module's step buffer) over the
        ranks in place. Its last element carries this rank's stop flag (a signal asked
        it to stop) and comes back as the sum of all ranks' flags (self.stop)."""
        start = time.perf_counter()
        buffer[-1] = self.flag()
        self._complete(self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM))
        self.stop = float(buffer[-1])
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        self.step_bytes = buffer.nbytes

    def sum(self, values) -> np.ndarray:
        """`values` (float64) summed over the ranks."""
        out = np.array(values, dtype=np.float64)
        self._complete(self.comm.Iallreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM))
        return out

    def barrier(self, wait: float | None = None) -> None:
        """Wait for every rank (at most `wait` seconds, default the timeout)."""
        saved, self.wait = self.wait, wait or self.wait
        try:
            self._complete(self.comm.Ibarrier())
        finally:
            self.wait = saved

    def broadcast(self, array: np.ndarray) -> None:
        """Rank 0's `array` into every rank's, in place."""
        self._complete(self.comm.Ibcast(array, root=0))

    def broadcast_json(self, value):
        """Rank 0's JSON-able `value` on every rank (as JSON text: nothing is unpickled)."""
        data = json.dumps(value).encode("utf-8") if self.main else b""
        size = np.array([len(data)], dtype=np.int64)
        self.broadcast(size)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.main else \
            np.empty(int(size[0]), dtype=np.uint8)
        self.broadcast(buf)
        return json.loads(buf.tobytes().decode("utf-8"))

    def check_same(self, what: str, value: str) -> None:
        """A CnncError (exit 2) on every rank unless all ranks have the same `value`."""
        digest = hashlib.sha256(value.encode("utf-8")).digest()
        mine = np.frombuffer(digest, dtype=np.uint8).copy()
        every = np.empty((self.size, len(digest)), dtype=np.uint8)
        self._complete(self.comm.Iallgather(mine, every))
        for rank in range(1, self.size):
            if not np.array_equal(every[rank], every[0]):
                raise CnncError(Diagnostic(
                    f"rank {rank} of {self.size} has a different {what} than rank 0 "
                    f"(sha256 {every[rank].tobytes().hex()[:12]} against "
                    f"{every[0].tobytes().hex()[:12]}): every rank must train the same "
                    f"model on the same data"))

    # --- data ---
    def part(self, count: int) -> tuple[int, int]:
        """This rank's contiguous part [lo, hi) of `count` samples: equal parts when
        `count` divides, otherwise parts that differ by at most one."""
        return count * self.rank // self.size, count * (self.rank + 1) // self.size


_WORLD: World | None = None


def join(timeout: float | None = None) -> World | None:
    """The MPI world this process was started in, or None when it runs alone. Sets the
    Numba threads of each rank to its share of the machine's cores unless
    NUMBA_NUM_THREADS says otherwise."""
    global _WORLD
    if _WORLD is not None:
        if timeout is not None:
            _WORLD.timeout = timeout
        return _WORLD
    size = launched_size()
    if size == 1:
        return None
    MPI = require_mpi()
    if MPI.COMM_WORLD.Get_size() != size:
        raise CnncRuntimeError(
            f"the launcher started {size} processes, but MPI sees "
            f"{MPI.COMM_WORLD.Get_size()}: mpi4py uses another MPI library than the "
            f"launcher's (use the mpiexec of the MPI that mpi4py was installed with)")
    _WORLD = World(MPI.COMM_WORLD, DEFAULT_TIMEOUT if timeout is None else timeout)
    report(_WORLD)                             # for `cnnc train --workers`: started
    if "NUMBA_NUM_THREADS" not in os.environ:
        import numba
        numba.set_num_threads(min(numba.config.NUMBA_NUM_THREADS,
                                  _WORLD.threads_per_rank()))
    return _WORLD


def world_from(comm, timeout: float | None = None) -> World:
    """A World of an mpi4py communicator the caller passes (model.fit(comm=...))."""
    global _WORLD
    if _WORLD is not None and _WORLD.comm is comm:
        return _WORLD
    return World(comm, DEFAULT_TIMEOUT if timeout is None else timeout)


def report(world, status: int | None = None) -> None:
    """In a rank `cnnc train --workers` started (launch.py): leave this rank's process id
    (at start-up) and its exit status (at the end) for the launcher."""
    folder = os.environ.get(STATUS_DIR)
    if not folder or world is None:
        return
    path = os.path.join(folder, f"rank-{world.rank}.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"pid": os.getpid(), "status": status}))


def leave(status: int) -> int:
    """A rank's way out: its exit status left for `cnnc train --workers` (launch.py);
    after a failure the process ends at once, as MPI's finalization could wait forever
    for a rank that is gone."""
    flush_standard_streams()
    report(_WORLD, status)
    if status != 0:
        if not _WORLD.main:
            # an error every rank meets is rank 0's to say: give it the time to, before
            # the runtime stops the job for this rank's exit
            time.sleep(1.0)
        os._exit(status)
    return status
