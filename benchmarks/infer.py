"""Inference speed: cnnc's predict against PyTorch eager, in one process, same batch.

    python benchmarks/infer.py            # mnist_cnn at batch 1 and 256, resnet_tiny at 64

PyTorch runs with torch.set_num_threads equal to Numba's thread count, in NCHW (its
default) and in channels_last; ratios are cnnc's throughput over each. `--tuned-malloc`
re-runs with glibc's malloc thresholds raised, which PyTorch needs here to reach its
best figures (cnnc preallocates its buffers and is not affected). Also prints cnnc's cold
compile time (empty cache) and warm start (a new process with the cache present). Median
over interleaved rounds; see common.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = [("mnist_cnn", 1), ("mnist_cnn", 256), ("resnet_tiny", 64)]


def start_time(cache: str) -> float:
    code = ("import time; t = time.perf_counter(); import numpy as np, cnnc; "
            "m = cnnc.compile('examples/mnist_cnn.cnn'); "
            "m.predict(np.zeros((1, 28, 28, 1), np.float32)); "
            "print(time.perf_counter() - t)")
    env = dict(os.environ, CNNC_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-startup", action="store_true", help="skip cold/warm start")
    from common import parse_args
    args = parse_args(parser)

    import numba
    import torch

    import cnnc
    from common import interleaved, machine, spread
    from torch_models import build

    torch.set_num_threads(numba.get_num_threads())
    print(f"machine: {machine()}\n")
    header = (f"{'model':12s} {'batch':>5s} {'cnnc img/s':>11s} {'torch NCHW':>11s} "
              f"{'torch CL':>11s} {'vs NCHW':>8s} {'vs CL':>7s}   cnnc median / spread")
    print(header)
    print("-" * len(header))
    rows = []
    for name, batch in CASES:
        model = cnnc.compile(ROOT / "examples" / f"{name}.cnn")
        x = np.random.default_rng(0).random((batch,) + model.input_shape, dtype=np.float32)
        nets = {fmt: build(name, model.params, fmt == "channels_last")
                for fmt in ("nchw", "channels_last")}
        tx = torch.from_numpy(x).permute(0, 3, 1, 2)
        inputs = {"nchw": tx.contiguous(),
                  "channels_last": tx.contiguous(memory_format=torch.channels_last)}
        with torch.no_grad():
            for fmt, net in nets.items():            # the same function, checked once
                ref = net(inputs[fmt]).numpy()
                assert np.abs(ref - model.predict(x)).max() < 1e-3, (name, fmt)
            medians, samples = interleaved({
                "cnnc": lambda: model.predict(x),
                "nchw": lambda: nets["nchw"](inputs["nchw"]),
                "channels_last": lambda: nets["channels_last"](inputs["channels_last"]),
            }, rounds=args.rounds)
        ips = {k: batch / v for k, v in medians.items()}
        rows.append((name, batch, ips))
        print(f"{name:12s} {batch:5d} {ips['cnnc']:11,.0f} {ips['nchw']:11,.0f} "
              f"{ips['channels_last']:11,.0f} {ips['cnnc'] / ips['nchw']:7.2f}x "
              f"{ips['cnnc'] / ips['channels_last']:6.2f}x   "
              f"{medians['cnnc'] * 1e3:.3f} ms / {spread(samples['cnnc'])}")
    if not args.no_startup:
        with tempfile.TemporaryDirectory() as cache:
            cold = start_time(cache)
            warm = min(start_time(cache) for _ in range(3))
        print(f"\nmnist_cnn start-up, new process to first prediction: cold (empty cache, "
              f"compiling) {cold:.2f} s; warm (cache present) {warm:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
