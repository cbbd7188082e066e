"""The machine's roofs for `cnnc profile`: measured here, never taken from a data sheet.

Two short Numba kernels, run at the thread count in use:

* peak FLOP/s: every thread runs chains of 32 dependent float32 multiply-adds over a row
  of 1024 values that stays in L1 (the row loop vectorizes, its iterations are
  independent chains). It measures what Numba's code generation reaches on this CPU with
  its default flags -- the same the generated kernels compile with -- not the vendor's
  figure (at the vector width cnnc's kernels compile with: cpu_features.py);
* bandwidth: the STREAM triad a[i] = b[i] + s * c[i] over three 128 MiB float32 arrays,
  counted as STREAM counts it (12 bytes per element; write-allocate traffic not counted).

Each is the best of 5 runs. The figures are cached per (target, device model, thread
count (0 on a GPU), Numba version) in $CNNC_CACHE_DIR/roofs/ as JSON, so they are measured once. On
the CUDA target the same two kernels run on the GPU, timed with CUDA events; in Numba's
CUDA simulator they run at a tiny size, are not cached, and mean nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time

from ..reports.profile import Roofs
from ..util import atomic_write_text
from .cache import cache_root

CHAIN = 32                # dependent multiply-adds per element and pass (64 FLOPs)
ROW = 1024                # values per thread in the peak kernel: 4 KiB, L1-resident
STREAM_BYTES = 128 << 20  # bytes per array of the triad
RUNS = 5
RUN_SECONDS = 0.02        # the peak kernel's passes are sized to run about this long
PEAK_METHOD = (f"best of {RUNS} runs of a Numba kernel: chains of {CHAIN} float32 "
               f"multiply-adds per element, {ROW} elements per thread")
STREAM_METHOD = (f"best of {RUNS} runs of the STREAM triad in Numba over 3 arrays of "
                 f"{STREAM_BYTES >> 20} MiB (12 bytes per element)")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; platform's words elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cache_file(target: str, device: str, threads: int):
    import numba
    blob = json.dumps([target, device, threads, numba.__version__])
    slug = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return cache_root() / "roofs" / f"{target}-{threads}t-{slug}.json"


def _read(path, device: str, threads: int) -> Roofs | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        roofs = Roofs(str(data["device"]), int(data["threads"]), float(data["peak_gflops"]),
                      float(data["bandwidth_gbs"]), str(data["peak_method"]),
                      str(data["bandwidth_method"]), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = (roofs.device == device and roofs.threads == threads and
          all(math.isfinite(v) and v > 0 for v in (roofs.peak_gflops, roofs.bandwidth_gbs)))
    return roofs if ok else None


def _write(path, roofs: Roofs) -> None:
    data = {"device": roofs.device, "threads": roofs.threads,
            "peak_gflops": roofs.peak_gflops, "bandwidth_gbs": roofs.bandwidth_gbs,
            "peak_method": roofs.peak_method, "bandwidth_method": roofs.bandwidth_method,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    except OSError:
        pass                      # a read-only cache: measured again next time


def cached(target: str, device: str, threads: int, measure, remeasure: bool = False) -> Roofs:
    """The roofs of (target, device, threads) from the cache, else `measure()` cached."""
    path = _cache_file(target, device, threads)
    roofs = None if remeasure else _read(path, device, threads)
    if roofs is None:
        roofs = measure()
        _write(path, roofs)
    return roofs


# --- the CPU -------------------------------------------------------------------------

def _cpu_kernels():
    import numpy as np
    from numba import njit, prange

    @njit(parallel=True, fastmath=True)
    def peak(x, passes):
        a = np.float32(0.999)
        b = np.float32(0.001)
        for t in prange(x.shape[0]):
            row = x[t]
            for _ in range(passes):
                for j in range(row.shape[0]):        # vectorized: independent chains
                    v = row[j]
                    for _ in range(CHAIN):           # unrolled: one dependent chain
                        v = v * a + b
                    row[j] = v

    @njit(parallel=True, fastmath=True)
    def triad(a, b, c, s):
        for i in prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    return peak, triad


def _best(run, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_cpu(threads: int, device: str | None = None) -> Roofs:
    import numpy as np
    peak, triad = _cpu_kernels()
    x = np.ones((threads, ROW), dtype=np.float32)
    peak(x, 1)                                      # compiles
    passes = 64
    while True:                                     # size the runs to ~RUN_SECONDS
        seconds = _best(lambda: peak(x, passes), 1)
        if seconds >= RUN_SECONDS / 4 or passes >= 1 << 24:
            break
        passes *= 4
    passes = max(1, int(passes * RUN_SECONDS / max(seconds, 1e-9)))
    seconds = _best(lambda: peak(x, passes))
    gflops = x.size * passes * 2 * CHAIN / seconds / 1e9
    n = STREAM_BYTES // 4
    a = np.zeros(n, dtype=np.float32)
    b = np.ones(n, dtype=np.float32)
    c = np.ones(n, dtype=np.float32)
    s = np.float32(0.5)
    triad(a, b, c, s)                               # compiles, and touches every page
    seconds = _best(lambda: triad(a, b, c, s))
    gbs = 3 * n * 4 / seconds / 1e9
    return Roofs(device or cpu_model(), threads, round(gflops, 2), round(gbs, 2), PEAK_METHOD,
                 STREAM_METHOD)


def cpu_roofs(remeasure: bool = False) -> Roofs:
    """The CPU's measured roofs at Numba's thread count in use (cached)."""
    import numba

    from .cpu_features import widen
    widen()                       # the vector width cnnc's kernels compile with
    wide = "-prefer-256-bit" in (numba.config.CPU_FEATURES or "")
    device = cpu_model() + (", 512-bit vectors" if wide else "")
    threads = numba.get_num_threads()
    return cached("cpu", device, threads, lambda: measure_cpu(threads, device), remeasure)


# --- a CUDA GPU ------------------------------------------------------------------------

def gpu_name() -> str:
    from numba import cuda
    name = getattr(cuda.get_current_device(), "name", "CUDA device")
    return name.decode() if isinstance(name, bytes) else str(name)


def measure_cuda(simulated: bool) -> Roofs:
    import numpy as np
    from numba import cuda

    from .cuda_roofs import peak, triad

    def timed(launch) -> float:
        """Seconds of the best of RUNS launches, by CUDA events (the host clock in the
        simulator, whose events do not time)."""
        best = math.inf
        for _ in range(RUNS):
            start, end = cuda.event(), cuda.event()
            host = time.perf_counter()
            start.record()
            launch()
            end.record()
            end.synchronize()
            elapsed = start.elapsed_time(end) / 1e3
            best = min(best, elapsed if elapsed > 0 else time.perf_counter() - host)
        return best

    if simulated:                                   # a few threads: the simulator is slow
        threads, blocks, passes, n = 4, 1, 2, 64
    else:
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
        threads, blocks, passes, n = 256, sms * 32, 1024, STREAM_BYTES // 4
    x = cuda.to_device(np.ones(threads * blocks, dtype=np.float32))
    peak[blocks, threads](x, 1)
    seconds = timed(lambda: peak[blocks, threads](x, passes))
    gflops = threads * blocks * passes * 2 * CHAIN / seconds / 1e9
    a = cuda.device_array(n, dtype=np.float32)
    b = cuda.to_device(np.ones(n, dtype=np.float32))
    c = cuda.to_device(np.ones(n, dtype=np.float32))
    grid = 1 if simulated else 4 * cuda.get_current_device().MULTIPROCESSOR_COUNT
    block = 4 if simulated else 256
    s = np.float32(0.5)
    triad[grid, block](a, b, c, s)
    seconds = timed(lambda: triad[grid, block](a, b, c, s))
    gbs = 3 * n * 4 / seconds / 1e9
    where = " (CUDA simulator: meaningless)" if simulated else ""
    return Roofs(gpu_name() + where, 0, round(gflops, 4), round(gbs, 4),
                 f"best of {RUNS} launches of {blocks} blocks of {threads} threads, each 4 "
                 f"chains of float32 multiply-adds, timed by CUDA events",
                 f"best of {RUNS} launches of the STREAM triad over 3 arrays of "
                 f"{n * 4 >> 20} MiB, timed by CUDA events")


def cuda_roofs(simulated: bool, remeasure: bool = False) -> Roofs:
    """The GPU's measured roofs (cached; never in the simulator)."""
    if simulated:
        return measure_cuda(True)
    return cached("cuda", gpu_name(), 0, lambda: measure_cuda(False), remeasure)

