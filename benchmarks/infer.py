"""Inference speed: cnnc's predict against PyTorch eager, in one process, same batch.

    python benchmarks/infer.py            # mnist_cnn at batch 1 and 256, resnet_tiny at 64,
                                          # alexnet at 4

PyTorch runs with torch.set_num_threads equal to Numba's thread count, in NCHW (its
default) and in channels_last; ONNX Runtime (when installed: cnnc[onnx]) runs cnnc's own
export of the model (`model.export_onnx`, the same weights, NHWC input as predict takes)
with intra_op_num_threads equal to Numba's thread count, inter_op 1, sequential
execution and no spinning between runs (`--ort-spinning`: ORT's default); ratios are
cnnc's throughput over each. `--tuned-malloc` re-runs with glibc's malloc thresholds
raised, which PyTorch needs here to reach its best figures (cnnc preallocates its
buffers and is not affected). Also prints cnnc's cold compile time (empty cache) and
warm start (a new process with the cache present). Median over interleaved rounds; see
common.py.
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

CASES = [("mnist_cnn", 1), ("mnist_cnn", 256), ("resnet_tiny", 64), ("alexnet", 4)]


def ort_session(model, threads: int, spinning: bool):
    """ONNX Runtime on cnnc's export of `model` (same weights), or None without it."""
    try:
        import onnxruntime as ort

        from cnnc.export.onnx import to_onnx
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ORT's worker threads spin after each run by default, taking the cores from whatever
    # runs next in the interleaved rounds (cnnc's and torch's threads sleep); --ort-spinning
    # keeps ORT's default, which helps its small-batch latency and costs the others
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if spinning else "0")
    proto = to_onnx(model.model, model.params)
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


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
    parser.add_argument("--ort-spinning", action="store_true",
                        help="let ONNX Runtime's threads spin between runs (its default)")
    from common import parse_args
    args = parse_args(parser)

    import numba
    import torch

    import cnnc
    from common import interleaved, machine, spread
    from torch_models import build

    torch.set_num_threads(numba.get_num_threads())
    print(f"machine: {machine()}\n")
    try:
        import onnxruntime
        print(f"onnxruntime {onnxruntime.__version__} ({numba.get_num_threads()} intra-op "
              f"threads, inter-op 1, sequential, spinning "
              f"{'on' if args.ort_spinning else 'off'})\n")
    except ImportError:
        print("onnxruntime not installed (pip install 'cnnc[onnx]'): no ORT column\n")
    header = (f"{'model':12s} {'batch':>5s} {'cnnc img/s':>11s} {'torch NCHW':>11s} "
              f"{'torch CL':>11s} {'ORT':>11s} {'vs NCHW':>8s} {'vs CL':>7s} {'vs ORT':>7s}"
              f"   cnnc median / spread")
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
        runners = {"cnnc": lambda: model.predict(x),
                   "nchw": lambda: nets["nchw"](inputs["nchw"]),
                   "channels_last": lambda: nets["channels_last"](inputs["channels_last"])}
        session = ort_session(model, numba.get_num_threads(), args.ort_spinning)
        if session is not None:
            assert np.abs(session.run(None, {"input": x})[0] - model.predict(x)).max() < 1e-3
            runners["ort"] = lambda: session.run(None, {"input": x})
        with torch.no_grad():
            for fmt, net in nets.items():            # the same function, checked once
                ref = net(inputs[fmt]).numpy()
                assert np.abs(ref - model.predict(x)).max() < 1e-3, (name, fmt)
            medians, samples = interleaved(runners, rounds=args.rounds)
        ips = {k: batch / v for k, v in medians.items()}
        rows.append((name, batch, ips))
        ort_ips, vs_ort = (f"{ips['ort']:11,.0f}", f"{ips['cnnc'] / ips['ort']:6.2f}x") \
            if "ort" in ips else (f"{'-':>11s}", f"{'-':>7s}")
        print(f"{name:12s} {batch:5d} {ips['cnnc']:11,.0f} {ips['nchw']:11,.0f} "
              f"{ips['channels_last']:11,.0f} {ort_ips} {ips['cnnc'] / ips['nchw']:7.2f}x "
              f"{ips['cnnc'] / ips['channels_last']:6.2f}x {vs_ort}   "
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
