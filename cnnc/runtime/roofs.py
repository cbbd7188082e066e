"""The machine's roofs for `cnnc profile`: measured here, never taken from a data sheet.

Two short Numba kernels, run at the thread count in use:

* peak FLOP/s: every thread holds a register tile of float32 sums the size of the GEMM
  kernels' (from the same preamble: stack_tile) and runs each element through a chain of
  multiply-adds, 12 independent vector chains with no load or store in the loop. It
  measures what Numba's code generation reaches on this CPU -- at the vector width
  cnnc's kernels compile with (cpu_features.py) -- not the vendor's figure;
* bandwidth: the STREAM triad a[i] = b[i] + s * c[i] over three 128 MiB float32 arrays,
  counted as STREAM counts it (12 bytes per element; write-allocate traffic not counted).

Each is the best of 5 runs. The figures are cached per (target, device model, thread
count (0 on a GPU), Numba version, method) in $CNNC_CACHE_DIR/roofs/ as JSON, so they
are measured once. On the CUDA target the same two kernels run on the GPU, timed with
CUDA events; in Numba's CUDA simulator they run at a tiny size, are not cached, and mean
nothing.
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
ROW = 1024                # values per thread the peak kernel's tile starts from
STREAM_BYTES = 128 << 20  # bytes per array of the triad
RUNS = 5
RUN_SECONDS = 0.02        # the peak kernel's passes are sized to run about this long
PEAK_METHOD = (f"best of {RUNS} runs of a Numba kernel: per thread a register tile of "
               f"float32 sums as the GEMM kernels', each a chain of multiply-adds")
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
    blob = json.dumps([target, device, threads, numba.__version__, PEAK_METHOD])
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

# The peak kernel: per thread a register tile of sums as the GEMM kernels hold one
# (their preamble's stack_tile, sized as targets/cpu_schedules.py sizes theirs, its rows
# written out as the GEMM template writes them), every element a chain of multiply-adds:
# 12 independent vector chains hide the FMA latency, and no load or store runs in the
# loop. (A loop over a row of chains, unrolled CHAIN deep, measured 80 GFLOP/s on a
# 2-core AVX2 EPYC where this measures 172 and the GEMM kernels ran 135.)
_PEAK = """
@njit(parallel=True, fastmath=FASTMATH)
def peak(x, passes):
    a = DTYPE(0.999)
    b = DTYPE(0.001)
    for t in prange(x.shape[0]):
        acc = stack_tile({rows}, {cols})
        for r in range({rows}):
            for jj in range({cols}):
                acc[r, jj] = x[t, r * {cols} + jj]
        for _ in range(passes):
            for _ in range({chain}):
                for jj in range({cols}):
{body}
        for r in range({rows}):
            for jj in range({cols}):
                x[t, r * {cols} + jj] = acc[r, jj]
"""


def _tile() -> tuple[int, int]:
    from ..ir.ops.structural import PANEL
    from .cpu_features import gemm_rows, vector_bits
    return gemm_rows(vector_bits() // 32), PANEL


def _cpu_kernels():
    from numba import njit, prange

    from ..codegen.render import render_code
    rows, cols = _tile()
    body = "\n".join(f"                    acc[{r}, jj] = acc[{r}, jj] * a + b"
                     for r in range(rows))
    namespace: dict = {}
    # cnnc's own template and code, not user input
    exec(render_code("cpu/preamble.j2", dtype="float32"), namespace)
    exec(_PEAK.format(rows=rows, cols=cols, chain=CHAIN, body=body), namespace)
    peak = namespace["peak"]

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
    rows, cols = _tile()
    gflops = threads * rows * cols * passes * 2 * CHAIN / seconds / 1e9
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

