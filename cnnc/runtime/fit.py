"""The training loop behind CompiledModel.fit: epochs of shuffled batches, progress,
validation, checkpoints.

Reproducible by construction: the order of an epoch is a permutation drawn from
(seed, epoch) and the dropout masks of a step from (seed, step) -- counter-based streams,
so the same seed and thread count give the same weights bit for bit, and a run resumed
from any checkpoint (end of epoch or interrupted mid-epoch) continues exactly as the
uninterrupted run would have.

Checkpoints (`RUN_DIR/checkpoint.npz`) hold the parameters, the optimizer state, the
position (epoch, batch, step) and the history so far; they are written atomically, so a
crash leaves the previous one intact. A NaN or infinite loss stops the run and keeps the
last good checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CnncRuntimeError, FileError
from ..util import atomic_write_text
from .weights import check_params, read_npz, save_npz

CHECKPOINT = "checkpoint.npz"


@dataclass
class History:
    """Like Keras's: `history.history["loss"]`, `["accuracy"]`, `["val_loss"]`, ..."""

    history: dict = field(default_factory=dict)
    epoch: list = field(default_factory=list)

    def add(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def to_json(self) -> str:
        return json.dumps({"epoch": self.epoch, "history": self.history}, indent=2)


class NonFiniteLoss(CnncRuntimeError):
    pass


@dataclass
class Position:
    epoch: int = 0            # current epoch (0-based)
    batch: int = 0            # next batch within it
    step: int = 0             # optimizer steps so far
    loss_sum: float = 0.0     # this epoch's running sums
    correct_sum: float = 0.0
    seen: int = 0


def save_checkpoint(run_dir: Path, model, state: dict, pos: Position, history: History,
                    seed: int) -> None:
    arrays = {f"param/{k}": v for k, v in model._host_params().items()}
    arrays.update({f"state/{k}": v for k, v in model._host_state(state).items()})
    meta = {"epoch": pos.epoch, "batch": pos.batch, "step": pos.step,
            "loss_sum": pos.loss_sum, "correct_sum": pos.correct_sum, "seen": pos.seen,
            "seed": seed, "model": model.name, "history": json.loads(history.to_json())}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    save_npz(run_dir / CHECKPOINT, arrays)


def load_checkpoint(run_dir: Path, model, state: dict):
    path = Path(run_dir) / CHECKPOINT
    arrays = read_npz(path)
    if "meta" not in arrays:
        raise FileError(path, "not a cnnc checkpoint (no meta record)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FileError(path, "corrupt checkpoint metadata") from None
    if meta.get("model") != model.name:
        raise FileError(path, f"checkpoint of model '{meta.get('model')}', not '{model.name}'")
    params = check_params(path, {k[6:]: v for k, v in arrays.items() if k.startswith("param/")},
                          model.param_shapes())
    slots = {k[6:]: v for k, v in arrays.items() if k.startswith("state/")}
    if set(slots) != set(state) or any(slots[k].shape != state[k].shape for k in state):
        raise FileError(path, "optimizer state does not match this model's optimizer")
    model._restore(params, state, slots)
    history = History(meta["history"]["history"], meta["history"]["epoch"])
    pos = Position(meta["epoch"], meta["batch"], meta["step"], meta["loss_sum"],
                   meta["correct_sum"], meta["seen"])
    return pos, history, meta["seed"]


def run(model, x, y, *, epochs: int, batch_size: int, seed: int, x_val=None, y_val=None,
        shuffle: bool = True, verbose: int = 1, run_dir=None, resume: bool = False,
        metric: str = "accuracy", log=print) -> History:
    module = model.module
    state = model._opt_state()
    history = History()
    pos = Position()
    run_dir = Path(run_dir) if run_dir is not None else None
    if resume:
        pos, history, seed = load_checkpoint(run_dir, model, state)
    params = model._train_params()
    n = len(x)
    batches = math.ceil(n / batch_size)
    labels = module.labels_for(y)
    val = (x_val, module.labels_for(y_val)) if x_val is not None else None
    try:
        while pos.epoch < epochs:
            order = np.random.default_rng([seed, pos.epoch]).permutation(n) if shuffle \
                else np.arange(n)
            bar = _progress(verbose, batches, pos, epochs)
            start = time.perf_counter()
            done_at_start = pos.seen
            while pos.batch < batches:
                index = np.sort(order[pos.batch * batch_size:(pos.batch + 1) * batch_size])
                xb = np.ascontiguousarray(x[index])
                loss, acc = module.train_step(params, state, xb, labels[index], pos.step,
                                              seed)
                if not math.isfinite(loss):
                    model._changed()
                    raise NonFiniteLoss(
                        f"the loss became {loss} at epoch {pos.epoch + 1}, step {pos.step + 1}"
                        + (f"; the last good checkpoint is in {run_dir}" if run_dir else ""))
                pos.batch += 1
                pos.step += 1
                pos.loss_sum += loss * len(index)
                pos.correct_sum += acc * len(index)
                pos.seen += len(index)
                if bar is not None:
                    rate = (pos.seen - done_at_start) / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix(loss=f"{pos.loss_sum / pos.seen:.4f}",
                                    acc=f"{pos.correct_sum / pos.seen:.4f}",
                                    img_s=f"{rate:,.0f}", refresh=False)
                    bar.update(1)
            model._changed()
            logs = {"loss": pos.loss_sum / pos.seen, metric: pos.correct_sum / pos.seen}
            if val is not None:
                logs["val_loss"], logs[f"val_{metric}"] = module.evaluate(
                    params, val[0], val[1], batch_size=max(batch_size, 256))
            history.add(pos.epoch, logs)
            seconds = time.perf_counter() - start
            if bar is not None:
                bar.close()
            if verbose:
                log(f"epoch {pos.epoch + 1}/{epochs}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in logs.items()) + f" ({seconds:.1f} s)")
            pos = Position(pos.epoch + 1, 0, pos.step)
            if run_dir is not None:
                save_checkpoint(run_dir, model, state, pos, history, seed)
                atomic_write_text(run_dir / "history.json", history.to_json())
    except KeyboardInterrupt:
        model._changed()
        if run_dir is not None:
            save_checkpoint(run_dir, model, state, pos, history, seed)
            log(f"\ninterrupted: checkpoint written to {run_dir / CHECKPOINT} (epoch "
                f"{pos.epoch + 1}, batch {pos.batch}); continue with --resume {run_dir}")
        raise
    return history


def _progress(verbose: int, batches: int, pos: Position, epochs: int):
    """Keras's verbose: 0 silent, 1 a progress bar and a line per epoch, 2 the lines."""
    if verbose != 1:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=batches, initial=pos.batch, desc=f"epoch {pos.epoch + 1}/{epochs}",
                unit="batch", leave=False, dynamic_ncols=True)
