"""Compile time: a cold compile of mnist_cnn's training module and of its inference
module, and a warm start, each in a new process, timed from the process's start.

    python benchmarks/compile.py                # 3 runs of each, medians
    python benchmarks/compile.py --runs 5 --model examples/resnet_tiny.cnn

* cold, training: an empty cache; `cnnc.compile(...)`, then `model.build()` (every
  kernel, all cores: what `cnnc train` does before its first batch) and one `fit` step;
* cold, inference: an empty cache; a model without its train block, one `predict`
  (which compiles its cold kernels first, on all cores);
* warm start: the cache the inference run filled; a new process compiles (from the
  cache) and predicts once -- what a user's second run costs.

Each run is a fresh Python process; the figure is wall time from its start to the end
of the first result (interpreter start and imports included), measured by the parent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys
import numpy as np
import cnnc
what, path = sys.argv[1], sys.argv[2]
text = open(path).read()
if what == "infer":
    text = text.split("\ntrain ")[0]          # the model alone: no training kernels
model = cnnc.compile(text)
x = np.zeros((2,) + model.input_shape, dtype=np.float32)
if what == "train":
    model.build()
    model.fit(x, np.zeros(2, dtype=np.int64), epochs=1, batch_size=2, verbose=0)
else:
    model.predict(x)
"""


def timed(what: str, model: Path, cache: Path) -> float:
    env = dict(os.environ, CNNC_CACHE_DIR=str(cache))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, what, str(model)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{what} failed:\n{proc.stderr}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=str(ROOT / "examples" / "mnist_cnn.cnn"))
    args = parser.parse_args()
    import numba
    model = Path(args.model)
    print(f"{model.name}: {os.cpu_count()} cores, numba {numba.__version__}, NUMBA_OPT "
          f"{os.environ.get('NUMBA_OPT', 'default (3)')}; load before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = {"cold compile, training module": [], "cold compile, inference only": [],
            "warm start (cached, one prediction)": []}
    with tempfile.TemporaryDirectory(prefix="cnnc-compile-") as folder:
        for run in range(args.runs):
            train_cache = Path(folder) / f"train-{run}"
            rows["cold compile, training module"].append(timed("train", model, train_cache))
            infer_cache = Path(folder) / f"infer-{run}"
            rows["cold compile, inference only"].append(timed("infer", model, infer_cache))
            rows["warm start (cached, one prediction)"].append(
                timed("infer", model, infer_cache))
    python = timed_python()
    for name, values in rows.items():
        print(f"{name:>36}: {statistics.median(values):6.2f} s (runs: "
              f"{', '.join(f'{v:.2f}' for v in values)})")
    label = "python -c 'import numba'"
    print(f"{label:>36}: {python:6.2f} s")
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


def timed_python() -> float:
    values = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numba"], check=True)
        values.append(time.perf_counter() - start)
    return statistics.median(values)


if __name__ == "__main__":
    sys.exit(main())
