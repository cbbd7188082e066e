"""Data-parallel training: one epoch of mnist_cnn on Fashion-MNIST, 1 rank x 2 threads
against 2 ranks x 1 thread (`cnnc train --workers 2`), at the same global batch.

    python benchmarks/distributed.py                  # 3 interleaved rounds of each
    python benchmarks/distributed.py --rounds 5 --batch 256

Each configuration is a whole `cnnc train` command, run one after the other in
alternating rounds after a warm-up run of each (which fills the kernel cache); the
figure is the median epoch time from the run's history.json (compilation excluded: it
is cached). For the 2-rank runs it also gives the time spent in the step's Allreduce
(the wait for the other rank included) and the bytes it sums per step; a probe times
the Allreduce of that buffer alone between 2 ranks, the pure communication cost.
Fashion-MNIST: apt-get install dataset-fashion-mnist. Needs cnnc[mpi].
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "mnist_cnn.cnn"


def run(workers: int, batch: int, threads: int, folder: Path, data: str) -> dict:
    """One `cnnc train` epoch; its history.json timing and the allreduce line."""
    out = folder / f"run-{workers}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "cnnc", "train", str(MODEL), "--data", data, "--epochs",
           "1", "--batch-size", str(batch // workers), "--quiet", "-o", str(out)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    history = json.loads((out / "history.json").read_text())
    return {"seconds": history["timing"]["seconds"][0],
            "allreduce": history["timing"].get("allreduce_seconds", [0.0])[0],
            "accuracy": history["history"]["test_accuracy"][0],
            "output": proc.stdout}


def probe(size: int, repeats: int) -> None:
    """(Under mpiexec -n 2.) Median seconds of an Allreduce of `size` float32s."""
    import numpy as np
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    buffer = np.ones(size, dtype=np.float32)
    times = []
    for _ in range(repeats + 5):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        times.append(time.perf_counter() - start)
    if comm.rank == 0:
        print(json.dumps({"median": statistics.median(times[5:])}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each (3)")
    parser.add_argument("--batch", type=int, default=128, help="global batch (128)")
    parser.add_argument("--data", default="fashion_mnist")
    parser.add_argument("--probe", type=int, metavar="FLOATS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, 50)
        return 0
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        sys.exit("needs mpi4py and an MPI runtime: pip install 'cnnc[mpi]'")
    import numba
    cores = os.cpu_count() or 1
    configs = {"1 rank x 2 threads": (1, 2), "2 ranks x 1 thread": (2, 1)}
    samples = {name: [] for name in configs}
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"mnist_cnn, {args.data}, one epoch at a global batch of {args.batch}; {cores} "
          f"cores, numba {numba.__version__}; load before: {load}")
    with tempfile.TemporaryDirectory(prefix="cnnc-bench-") as folder:
        for name, (workers, threads) in configs.items():      # warm-up: fills the cache
            run(workers, args.batch, threads, Path(folder), args.data)
        for _ in range(args.rounds):
            for name, (workers, threads) in configs.items():
                samples[name].append(run(workers, args.batch, threads, Path(folder),
                                         args.data))
    steps = -(-60000 // args.batch) if args.data == "fashion_mnist" else None
    line = next(x for x in samples["2 ranks x 1 thread"][0]["output"].splitlines()
                if x.startswith("allreduce:"))
    step_mb = float(line.split(" steps, ")[1].split(" MB")[0])
    base = statistics.median(s["seconds"] for s in samples["1 rank x 2 threads"])
    for name, runs in samples.items():
        seconds = statistics.median(s["seconds"] for s in runs)
        reduce = statistics.median(s["allreduce"] for s in runs)
        per_step = f", allreduce {reduce:.2f} s = {reduce / steps * 1e3:.2f} ms per step" \
            if reduce and steps else ""
        each = ", ".join(f"{s['seconds']:.2f}" for s in runs)
        print(f"{name:>20}: epoch {seconds:.2f} s (runs: {each}){per_step}; ratio "
              f"{seconds / base:.2f}; test accuracy {runs[-1]['accuracy']:.4f}")
    floats = int(round(step_mb * 1e6 / 4))
    mpiexec = Path(sys.executable).parent / "mpiexec"
    proc = subprocess.run([str(mpiexec), "-n", "2", sys.executable, __file__, "--probe",
                           str(floats)], capture_output=True, text=True,
                          env=dict(os.environ, NUMBA_NUM_THREADS="1"))
    if proc.returncode == 0:
        alone = json.loads(proc.stdout.splitlines()[-1])["median"]
        print(f"step buffer: {step_mb:.2f} MB; its Allreduce alone between 2 ranks on this "
              f"machine: {alone * 1e3:.2f} ms ({step_mb / 1e3 / alone:.1f} GB/s)")
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
