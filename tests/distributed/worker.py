"""A rank of the data-parallel tests (run by tests/distributed/*.py under mpiexec, or
alone as the one-process reference):

    python worker.py fit MODEL.cnn OUT.npz BATCH EPOCHS [TARGET SAMPLES]
        model.fit, then the weights and the history (rank 0 writes them)
    python worker.py batchnorm MODEL.cnn OUT.npz BATCH STEPS
        one step at a time: after every step, rank 0 checks that every rank holds the same
        parameters bit for bit and that the moving statistics are the average of what each
        rank alone would have made of its part of the batch.

The data are drawn from a fixed seed, so every rank and the reference see the same.
"""

from __future__ import annotations

import sys

import numpy as np

import cnnc
from cnnc import targets
from cnnc.runtime import distributed


def data(model, count: int = 70):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((count,) + model.input_shape).astype(np.float32)
    y = rng.integers(0, model.output_shape[-1], count)
    return x, y


def fit(path: str, out: str, batch: int, epochs: int, target: str = "cpu",
        samples: int = 70) -> None:
    world = distributed.join()
    if world is not None:                     # rank r of a machine: its GPU r mod GPUs
        targets.get(target).bind_rank(world.local_rank)
    model = cnnc.compile(path, target=target)
    x, y = data(model, samples)
    history = model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    world = distributed.join()
    if world is None or world.main:
        arrays = {f"param/{k}": v for k, v in model.params.items()}
        for key, values in history.history.items():
            arrays[f"history/{key}"] = np.array(values)
        np.savez(out, **arrays)


def batchnorm(path: str, out: str, batch: int, steps: int) -> None:
    model = cnnc.compile(path)
    world = distributed.join()
    x, y = data(model, steps * batch * world.size)
    module = model.module
    moving = [name for name in model.params if name.endswith(("moving_mean",
                                                                "moving_variance"))]
    assert moving, "the model has no batchnorm"
    worst = 0.0
    for step in range(steps):
        # what this rank alone would make of its part: a copy of the parameters and state
        params = module.param_views(module.flat_buffer(model._train_params()).copy())
        state = {k: v.copy() for k, v in model._opt_state().items()}
        global_batch = slice(step * batch * world.size, (step + 1) * batch * world.size)
        xs, ys = x[global_batch], y[global_batch]
        lo, hi = world.part(len(xs))
        module.train_step(params, state, np.ascontiguousarray(xs[lo:hi]), ys[lo:hi],
                          model._position.step, model.config.seed, first=lo)
        alone = np.concatenate([params[name].ravel() for name in moving]).astype(np.float64)
        every = world.comm.allgather(alone)
        expected = np.mean(every, axis=0)
        model.fit(xs, ys, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        flat = module.flat_buffer(model._train_params())
        gathered = world.comm.gather(flat.copy(), root=0)
        got = np.concatenate([model.params[name].ravel() for name in moving])
        worst = max(worst, float(np.max(np.abs(got - expected))))
        if world.main:
            for rank, other in enumerate(gathered):
                assert np.array_equal(other, gathered[0]), \
                    f"step {step}: rank {rank}'s parameters differ from rank 0's"
    if world.main:
        np.savez(out, worst=np.array(worst), steps=np.array(steps))


if __name__ == "__main__":
    what, path, out, batch, count, *more = sys.argv[1:]
    if more:
        more[1:] = [int(more[1])]
    {"fit": fit, "batchnorm": batchnorm}[what](path, out, int(batch), int(count), *more)
