"""The CUDA target against PyTorch CUDA on the same GPU, in one process run.

    python benchmarks/gpu.py [--data DIR] [--rounds N] [--profile]

1. Training: one epoch of mnist_cnn on Fashion-MNIST (60,000 images, batch 128,
   Adadelta with learning rate 1.0, rho 0.95, epsilon 1e-7, dropout 0.25 and 0.5), both
   from cnnc's initial parameters and in the same shuffled order, each after a warm-up
   (compilation, cuDNN's algorithm search). Two ways of feeding the GPU:
   a. host batches: cnnc's fit() (train_step copies each batch in and the loss and
      accuracy out) against a PyTorch loop that copies each batch with .cuda() and reads
      the loss with .item() (the same traffic);
   b. device-resident data: the shuffled epoch copied to the GPU once, each step a slice
      of it (cnnc: the module's train_step on device arrays; PyTorch: tensor slices).
   Then the test accuracy of each after its epochs.
2. Inference at batch 1024: predict() on a host batch (copy in and out) against PyTorch
   (from_numpy().cuda() ... .cpu()), and on a batch already on the device (both
   synchronized), medians of interleaved rounds.
3. --profile: the time of each of cnnc's kernel launchers in a training step (the
   device synchronized around each), to see where a step's time goes.

PyTorch runs strict float32 (TF32 off in cuDNN and cuBLAS, as cnnc computes) with
cudnn.benchmark on, in channels_last for inference. Fashion-MNIST is read from DIR (IDX
files), default the fashion_mnist dataset (apt-get install dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))


def describe(torch) -> str:
    import numba
    from numba import cuda
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    return (f"{name} (cc {device.compute_capability[0]}.{device.compute_capability[1]}); "
            f"numba {numba.__version__}, numba-cuda "
            f"{__import__('numba_cuda').__version__}, torch {torch.__version__} (CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})")


def torch_epoch(torch, net, opt, batches, sync_loss=True):
    import torch.nn.functional as F
    net.train()
    for xb, yb in batches():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        if sync_loss:
            loss.item()
    torch.cuda.synchronize()


def train(args, torch, cuda, cnnc, ds) -> None:
    from train import torch_net
    x, y = ds.x_train, ds.y_train
    model = cnnc.compile(ROOT / "examples/mnist_cnn.cnn", target="cuda")
    mod = model.module
    batch = model.config.batch_size
    params0 = {k: v.copy() for k, v in model.params.items()}
    order = np.random.default_rng(0).permutation(len(x))
    torder = torch.from_numpy(order)

    def fresh_torch():
        net = torch_net(params0).cuda()
        return net, torch.optim.Adadelta(net.parameters(), lr=1.0, rho=0.95, eps=1e-7)

    def reset_cnnc():
        model.set_params(params0)
        model._state = None

    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    ty = torch.from_numpy(y.astype(np.int64))

    def host_batches(index):
        def batches():
            for s in range(0, len(index), batch):
                i = index[s:s + batch]
                yield tx[i].cuda(), ty[i].cuda()
        return batches


    # Warm-up: compile cnnc's kernels; let cuDNN pick its algorithms.
    start = time.perf_counter()
    model.fit(x[:batch * 4], y[:batch * 4], epochs=1, verbose=0)
    print(f"cnnc warm-up (compiling the training kernels): {time.perf_counter() - start:.1f} s")
    net, opt = fresh_torch()
    torch_epoch(torch, net, opt, host_batches(torder[:batch * 4]))

    # a. host batches
    reset_cnnc()
    start = time.perf_counter()
    model.fit(x[order], y[order], epochs=1, batch_size=batch, shuffle=False, verbose=0)
    cuda.synchronize()
    cnnc_host = time.perf_counter() - start
    net, opt = fresh_torch()
    start = time.perf_counter()
    torch_epoch(torch, net, opt, host_batches(torder))
    torch_host = time.perf_counter() - start
    print(f"training epoch, host batches: cnnc {cnnc_host:.2f} s ({len(x) / cnnc_host:,.0f} "
          f"img/s), PyTorch {torch_host:.2f} s ({len(x) / torch_host:,.0f} img/s); "
          f"cnnc / PyTorch = {cnnc_host / torch_host:.2f}")
    _, acc = model.evaluate(ds.x_test, ds.y_test)
    net.eval()
    with torch.no_grad():
        tacc = float((net(torch.from_numpy(ds.x_test).permute(0, 3, 1, 2).cuda()).argmax(1)
                      .cpu() == torch.from_numpy(ds.y_test.astype(np.int64))).float().mean())
    print(f"test accuracy after that epoch: cnnc {acc:.4f}, PyTorch {tacc:.4f}")

    # b. device-resident data
    reset_cnnc()
    params, state = model._train_params(), model._opt_state()
    dx = cuda.to_device(np.ascontiguousarray(x[order]))
    dy = cuda.to_device(mod.labels_for(y[order]))
    gx, gy = tx[torder].cuda(), ty[torder].cuda()
    cuda.synchronize()
    start = time.perf_counter()
    for step, s in enumerate(range(0, len(x), batch)):
        mod.train_step(params, state, dx[s:s + batch], dy[s:s + batch], step, 0)
    cuda.synchronize()
    cnnc_dev = time.perf_counter() - start
    net, opt = fresh_torch()
    start = time.perf_counter()
    torch_epoch(torch, net, opt, lambda: ((gx[s:s + batch], gy[s:s + batch])
                                          for s in range(0, len(x), batch)))
    torch_dev = time.perf_counter() - start
    print(f"training epoch, data on the GPU: cnnc {cnnc_dev:.2f} s ({len(x) / cnnc_dev:,.0f} "
          f"img/s), PyTorch {torch_dev:.2f} s ({len(x) / torch_dev:,.0f} img/s); "
          f"cnnc / PyTorch = {cnnc_dev / torch_dev:.2f}")
    if args.profile:
        profile(model, cuda, dx[:batch], dy[:batch])


def profile(model, cuda, xb, yb) -> None:
    """Synchronized time of each kernel launcher in one training step (median of 20)."""
    mod = model.module
    launchers = [name for name, value in vars(mod).items() if callable(value)
                 and name.endswith(("_fwd", "_bwd", "_loss", "_update", "_update_all"))
                 and not hasattr(value, "targetoptions")]
    times = {name: [] for name in launchers}
    saved = {name: getattr(mod, name) for name in launchers}

    def timed(name, fn):
        def run(*a):
            cuda.synchronize()
            t0 = time.perf_counter()
            fn(*a)
            cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
        return run

    for name in launchers:
        setattr(mod, name, timed(name, saved[name]))
    try:
        params, state = model._train_params(), model._opt_state()
        for step in range(21):
            mod.train_step(params, state, xb, yb, step, 0)
    finally:
        for name, fn in saved.items():
            setattr(mod, name, fn)
    rows = sorted(((statistics.median(t[1:]) * len(t) / 21, name, len(t) // 21)
                   for name, t in times.items() if len(t) > 1), reverse=True)
    total = sum(r[0] for r in rows)
    print(f"\nprofile of one training step at batch {xb.shape[0]} (synchronized launchers, "
          f"{total * 1e3:.2f} ms in all):")
    for seconds, name, calls in rows:
        print(f"    {name:<56} {seconds * 1e3:8.3f} ms  ({calls} call{'s' * (calls > 1)})")


def infer(args, torch, cuda, cnnc, ds) -> None:
    from common import spread
    from torch_models import build
    model = cnnc.compile(ROOT / "examples/mnist_cnn.cnn", target="cuda")
    net = build("mnist_cnn", model.params, channels_last=True).cuda()
    x = np.ascontiguousarray(ds.x_test[:1024])
    if len(x) < 1024:
        x = np.ascontiguousarray(np.resize(ds.x_test, (1024,) + ds.x_test.shape[1:]))
    prepared = model._prepared_params()
    dx = cuda.to_device(x)
    gx = torch.from_numpy(x).cuda().permute(0, 3, 1, 2)
    mod = model.module

    def cnnc_host():
        return model.predict(x, batch_size=1024)

    def torch_host():
        with torch.no_grad():
            return net(torch.from_numpy(x).cuda().permute(0, 3, 1, 2)).cpu().numpy()

    def cnnc_device():
        mod.forward_prepared(prepared, dx)
        cuda.synchronize()

    def torch_device():
        with torch.no_grad():
            net(gx)
        torch.cuda.synchronize()

    err = float(np.abs(cnnc_host() - torch_host()).max())
    runners = {"cnnc host": cnnc_host, "torch host": torch_host,
               "cnnc device": cnnc_device, "torch device": torch_device}
    samples = {name: [] for name in runners}
    for fn in runners.values():
        for _ in range(3):
            fn()
    for _ in range(args.rounds):
        for name, fn in runners.items():
            for _ in range(10):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(s) for name, s in samples.items()}
    print(f"\ninference, mnist_cnn, batch 1024 (max |cnnc - PyTorch| = {err:.2e}), medians of "
          f"{args.rounds} interleaved rounds of 10:")
    for where in ("host", "device"):
        c, t = med[f"cnnc {where}"], med[f"torch {where}"]
        print(f"    {where + ' batch:':<14} cnnc {c * 1e3:7.3f} ms ({1024 / c:>11,.0f} img/s, "
              f"{spread(samples[f'cnnc {where}'])}), PyTorch {t * 1e3:7.3f} ms "
              f"({1024 / t:>11,.0f} img/s); cnnc / PyTorch = {c / t:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder of Fashion-MNIST's IDX files")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true",
                        help="also time each kernel launcher of a training step")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    import torch
    from numba import cuda

    import cnnc
    from cnnc import data
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    print(f"device: {describe(torch)}")
    ds = data.load(args.data or "fashion_mnist")
    print(f"data: {ds.description}, {len(ds.x_train):,} training and {len(ds.x_test):,} "
          f"test images")
    if not args.skip_train:
        train(args, torch, cuda, cnnc, ds)
    infer(args, torch, cuda, cnnc, ds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
