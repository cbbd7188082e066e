"""Training speed: one epoch of mnist_cnn on Fashion-MNIST, cnnc against PyTorch eager
and TensorFlow/Keras `fit`.

    python benchmarks/train.py                 # seconds per epoch, and the ratios
    python benchmarks/train.py --accuracy 3    # also: test accuracy after 3 epochs
    python benchmarks/train.py --accuracy 3 --seeds 1,2   # and cnnc's from other seeds

TensorFlow is optional (`pip install '.[bench]'`: tensorflow-cpu); without it the
TensorFlow rows are skipped, and the script says so. Keras trains the same network
from the same initial parameters with Adadelta and batch 128, in whole epochs of
`model.fit` (as its users run it), alternating with whole cnnc epochs (--tf-rounds).

Same network, batch (128), optimizer (Adadelta, learning rate 1.0, rho 0.95, epsilon
1e-7), Keras initialization (PyTorch starts from cnnc's initial parameters), dropout,
and thread count (torch.set_num_threads = Numba's). Fashion-MNIST comes from
/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist). Timed epochs
exclude compilation: cnnc and PyTorch each run a warm-up epoch slice first. The timed
epoch alternates between the two in blocks of batches (same order for both).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def torch_net(params):
    import torch.nn as nn
    import torch.nn.functional as F
    from torch_models import _conv, _dense

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = _conv(params["conv2d/kernel"], params["conv2d/bias"])
            self.fc1 = _dense(params["dense/kernel"], params["dense/bias"], chw=(32, 13, 13))
            self.fc2 = _dense(params["dense_1/kernel"], params["dense_1/bias"])
            self.drop1, self.drop2 = nn.Dropout(0.25), nn.Dropout(0.5)

        def forward(self, x):
            x = self.drop1(F.max_pool2d(F.relu(self.conv(x)), 2))
            x = self.drop2(F.relu(self.fc1(x.flatten(1))))
            return self.fc2(x)                       # logits: cross_entropy applies softmax
    return Net()


def keras_net(params, threads: int):
    """mnist_cnn in Keras (TensorFlow backend) with cnnc's initial parameters, compiled
    as the example's train block says; None when TensorFlow is not installed."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from keras import layers
    net = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Dropout(0.25), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")])
    net.set_weights([params[k] for k in ("conv2d/kernel", "conv2d/bias", "dense/kernel",
                                         "dense/bias", "dense_1/kernel", "dense_1/bias")])
    net.compile(loss="categorical_crossentropy", metrics=["accuracy"],
                optimizer=keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95,
                                                    epsilon=1e-7))
    return net


def torch_epoch(net, opt, x, y, batch, seed):
    import torch
    import torch.nn.functional as F
    net.train()
    order = torch.arange(len(x)) if seed is None else \
        torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(x), batch):
        idx = order[start:start + batch]
        opt.zero_grad()
        F.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()


def torch_accuracy(net, x, y):
    import torch
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", type=int, default=0, metavar="EPOCHS",
                        help="also train this many epochs with each and report accuracy")
    parser.add_argument("--seeds", default="",
                        help="with --accuracy: cnnc's accuracy also from these seeds, e.g. 1,2 "
                             "(initial parameters, shuffling and dropout)")
    parser.add_argument("--blocks", type=int, default=10,
                        help="alternating timed blocks the epoch is split into")
    parser.add_argument("--tf-rounds", type=int, default=2,
                        help="whole epochs of cnnc and of Keras fit, alternating (default 2)")
    from common import parse_args
    args = parse_args(parser)

    import numba
    import torch

    import cnnc
    from cnnc import data
    from common import machine

    torch.set_num_threads(numba.get_num_threads())
    print(f"machine: {machine()}")
    ds = data.load("fashion_mnist")
    x, y = ds.x_train, ds.y_train
    print(f"data: {ds.description}, {len(x):,} training and {len(ds.x_test):,} test images")
    model = cnnc.compile(ROOT / "examples/mnist_cnn.cnn")
    batch = model.config.batch_size
    params0 = {k: v.copy() for k, v in model.params.items()}
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    ty = torch.from_numpy(y.astype(np.int64))
    net = torch_net(params0)
    opt = torch.optim.Adadelta(net.parameters(), lr=1.0, rho=0.95, eps=1e-7)

    # warm-up: compile cnnc's training kernels, let PyTorch pick its algorithms
    model.fit(x[:batch * 4], y[:batch * 4], epochs=1, verbose=0)
    torch_epoch(net, opt, tx[:batch * 4], ty[:batch * 4], batch, 0)
    model.set_params(params0)
    model._state = None
    net = torch_net(params0)
    opt = torch.optim.Adadelta(net.parameters(), lr=1.0, rho=0.95, eps=1e-7)

    # One epoch in the same shuffled order for both, timed in alternating blocks of
    # batches (cnnc, PyTorch, cnnc, ...), so that drifting machine load bills both alike.
    order = np.random.default_rng(0).permutation(len(x))
    groups = np.array_split(np.arange(-(-len(x) // batch)), args.blocks)   # whole batches
    blocks = [order[g[0] * batch:(g[-1] + 1) * batch] for g in groups]
    cnnc_s = torch_s = 0.0
    for block in blocks:
        bx, by, btx, bty = x[block], y[block], tx[block], ty[block]
        time.sleep(0.2)
        t0 = time.perf_counter()
        model.fit(bx, by, epochs=1, batch_size=batch, shuffle=False, verbose=0)
        cnnc_s += time.perf_counter() - t0
        time.sleep(0.2)
        t0 = time.perf_counter()
        torch_epoch(net, opt, btx, bty, batch, None)
        torch_s += time.perf_counter() - t0
    print(f"\none epoch, batch {batch}, in {len(blocks)} alternating blocks: cnnc {cnnc_s:.2f} s "
          f"({len(x) / cnnc_s:,.0f} img/s), PyTorch eager {torch_s:.2f} s "
          f"({len(x) / torch_s:,.0f} img/s); cnnc / PyTorch = {cnnc_s / torch_s:.2f}")

    keras_model = keras_net(params0, numba.get_num_threads())
    if keras_model is None:
        print("TensorFlow/Keras: not installed (pip install '.[bench]'), skipped")
    else:
        import tensorflow as tf
        onehot = np.eye(10, dtype=np.float32)[y]
        # warm-up: Keras traces its step for the full batches and for the epoch's last,
        # partial one
        warm = batch * 4 + len(x) % batch
        keras_model.fit(x[:warm], onehot[:warm], batch_size=batch, epochs=1, verbose=0)
        cnnc_epochs, keras_epochs = [], []
        for _ in range(args.tf_rounds):
            time.sleep(0.5)
            t0 = time.perf_counter()
            model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
            cnnc_epochs.append(time.perf_counter() - t0)
            time.sleep(0.5)
            t0 = time.perf_counter()
            keras_model.fit(x, onehot, batch_size=batch, epochs=1, shuffle=True, verbose=0)
            keras_epochs.append(time.perf_counter() - t0)
        c, k = float(np.median(cnnc_epochs)), float(np.median(keras_epochs))
        print(f"whole epochs, alternating ({args.tf_rounds} each): cnnc fit {c:.2f} s, "
              f"TensorFlow {tf.__version__}/Keras fit {k:.2f} s; cnnc / TensorFlow = "
              f"{c / k:.2f} (epochs: cnnc {', '.join(f'{v:.2f}' for v in cnnc_epochs)}; "
              f"Keras {', '.join(f'{v:.2f}' for v in keras_epochs)})")

    if args.accuracy:
        model = cnnc.compile(ROOT / "examples/mnist_cnn.cnn")   # a fresh start: epoch 0
        start = time.perf_counter()
        history = model.fit(x, y, epochs=args.accuracy, verbose=2)
        loss, acc = model.evaluate(ds.x_test, ds.y_test)
        print(f"cnnc: test accuracy {acc:.4f} after {args.accuracy} epochs "
              f"({time.perf_counter() - start:.1f} s)")
        net = torch_net(params0)
        opt = torch.optim.Adadelta(net.parameters(), lr=1.0, rho=0.95, eps=1e-7)
        for epoch in range(args.accuracy):
            torch_epoch(net, opt, tx, ty, batch, epoch)
        tacc = torch_accuracy(net, torch.from_numpy(ds.x_test).permute(0, 3, 1, 2),
                              torch.from_numpy(ds.y_test.astype(np.int64)))
        print(f"PyTorch: test accuracy {tacc:.4f} after {args.accuracy} epochs")
        del history
        for seed in [int(v) for v in args.seeds.split(",") if v.strip()]:
            model = cnnc.compile(ROOT / "examples/mnist_cnn.cnn")
            model.set_params(model.module.init_params(seed))
            model.fit(x, y, epochs=args.accuracy, verbose=0, seed=seed)
            _, acc = model.evaluate(ds.x_test, ds.y_test)
            print(f"cnnc, seed {seed}: test accuracy {acc:.4f} after {args.accuracy} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
