"""Shared benchmark helpers: machine description, interleaved timing, PyTorch models."""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np


def machine() -> str:
    import numba
    import torch
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "MALLOC_MMAP_THRESHOLD_",
                                      "MALLOC_TRIM_THRESHOLD_", "NUMBA_OPT", "OMP_WAIT_POLICY")
           if k in os.environ}
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy "
            f"{np.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads, "
            f"{numba.config.THREADING_LAYER} layer), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); env {env or '{}'}; load "
            f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def interleaved(runners: dict, rounds: int = 7, reps: int = 10, min_time: float = 0.05):
    """Median seconds per call of each runner, measured in alternating rounds.

    Each round runs every runner `reps` times (at least `min_time` seconds) after a
    warm-up call and a short pause, so that one runtime's spinning worker threads do not
    bill the other; the figure is the median over all timed calls.
    """
    samples = {name: [] for name in runners}
    for fn in runners.values():
        fn()
    for _ in range(rounds):
        for name, fn in runners.items():
            time.sleep(0.02)
            fn()
            start_round = time.perf_counter()
            count = 0
            while count < reps or time.perf_counter() - start_round < min_time:
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
                count += 1
    return {name: statistics.median(s) for name, s in samples.items()}, samples


def spread(values) -> str:
    q = np.percentile(values, [25, 75])
    return f"IQR {q[0] * 1e3:.3f}-{q[1] * 1e3:.3f} ms"


TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"}


def reexec_with_tuned_malloc(argv) -> None:
    """Run this script again with glibc's malloc keeping large blocks (PyTorch allocates
    its activations per call; returning them to the OS re-faults every page)."""
    import sys
    if all(os.environ.get(k) == v for k, v in TUNED_MALLOC.items()):
        return
    env = dict(os.environ, **TUNED_MALLOC)
    os.execve(sys.executable, [sys.executable] + argv, env)


def parse_args(parser):
    """Parse the command line, with the `--tuned-malloc` option every benchmark shares;
    with it, the script starts over under the tuned malloc settings first."""
    parser.add_argument("--tuned-malloc", action="store_true",
                        help="re-run with MALLOC_MMAP/TRIM_THRESHOLD_ raised (helps PyTorch)")
    args = parser.parse_args()
    if args.tuned_malloc:
        import sys
        reexec_with_tuned_malloc(sys.argv)
    return args
