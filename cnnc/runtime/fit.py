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
import signal
import threading
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
    timing: dict = field(default_factory=dict)    # per epoch: "seconds", "allreduce_seconds"

    def add(self, epoch: int, logs: dict, timing: dict | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        for key, value in (timing or {}).items():
            self.timing.setdefault(key, []).append(value)

    @classmethod
    def from_record(cls, record: dict) -> "History":
        """The History whose to_json() gave `record` (checked by _check_meta)."""
        return cls(record["history"], record["epoch"], record.get("timing", {}))

    def to_json(self) -> str:
        record = {"epoch": self.epoch, "history": self.history}
        if self.timing:
            record["timing"] = self.timing
        return json.dumps(record, indent=2)


class NonFiniteLoss(CnncRuntimeError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill` and schedulers send) during training: handled as Ctrl-C is --
    a checkpoint is written -- and the command exits with 128 + 15."""

    exit_status = 143


@dataclass
class Position:
    epoch: int = 0            # current epoch (0-based)
    batch: int = 0            # next batch within it
    step: int = 0             # optimizer steps so far
    loss_sum: float = 0.0     # this epoch's running sums
    correct_sum: float = 0.0
    seen: int = 0


class AtomicSteps:
    """SIGINT and SIGTERM wait for the training step under way: the parameters, the
    optimizer state and the step counter change together, or not at all.

        with AtomicSteps() as steps:
            ...
            with steps:          # one step: a signal now is raised when it ends
                ...

    Outside a step a signal is raised at once (KeyboardInterrupt, or Terminated for
    SIGTERM). Signal handlers belong to the main thread: elsewhere this does nothing."""

    def __init__(self):
        self._pending = None
        self._in_step = False
        self._saved = None

    def __enter__(self):
        if self._saved is None:                         # the whole loop
            self._saved = {}
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGINT, signal.SIGTERM):
                    self._saved[signum] = signal.signal(signum, self._handle)
            return self
        self._in_step = True                            # one step
        return self

    def __exit__(self, *exc):
        if self._in_step:
            self._in_step = False
            if self._pending is not None and exc[0] is None:
                self._raise(self._pending)
            return False
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved = None
        return False

    @property
    def pending(self):
        """The signal waiting for the step under way to end, or None."""
        return self._pending

    def request(self, signum) -> None:
        """Stop at the end of the step under way as if `signum` had arrived in it (the
        ranks of a data-parallel run stop together: one was asked to)."""
        if self._pending is None:
            self._pending = signum

    def _handle(self, signum, frame):
        if self._in_step:
            self._pending = signum
        else:
            self._raise(signum)

    def _raise(self, signum):
        self._pending = None
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def save_checkpoint(run_dir: Path, model, state: dict, pos: Position, history: History,
                    seed: int, batch_size: int, workers: int = 1) -> None:
    arrays = {f"param/{k}": v for k, v in model._host_params().items()}
    arrays.update({f"state/{k}": v for k, v in model._host_state(state).items()})
    meta = {"epoch": pos.epoch, "batch": pos.batch, "step": pos.step,
            "loss_sum": pos.loss_sum, "correct_sum": pos.correct_sum, "seen": pos.seen,
            "seed": seed, "batch_size": batch_size, "workers": workers, "model": model.name,
            "history": json.loads(history.to_json())}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    save_npz(run_dir / CHECKPOINT, arrays)


# checkpoint metadata: key -> (types, lowest value) for the numbers
_META = {"epoch": (int, 0), "batch": (int, 0), "step": (int, 0), "seen": (int, 0),
         "seed": (int, 0), "loss_sum": ((int, float), None),
         "correct_sum": ((int, float), 0)}


def _check_meta(path: Path, meta) -> None:
    """FileError unless the metadata has every field with the right type and range."""
    def bad(why):
        raise FileError(path, f"corrupt checkpoint metadata ({why})")
    if not isinstance(meta, dict):
        bad("not a record")
    for key, (types, low) in _META.items():
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, types):
            bad(f"'{key}' is {value!r}, not a number")
        if low is not None and value < low or isinstance(value, float) and \
                not math.isfinite(value):
            bad(f"'{key}' is {value!r}")
    for key in ("batch_size", "workers"):
        if key in meta and (not isinstance(meta[key], int) or isinstance(meta[key], bool) or
                            meta[key] < 1):
            bad(f"'{key}' is {meta[key]!r}")
    history = meta.get("history")
    if not isinstance(history, dict) or not isinstance(history.get("epoch"), list) or \
            not isinstance(history.get("history"), dict) or \
            not all(isinstance(v, list) for v in history["history"].values()) or \
            not isinstance(history.get("timing", {}), dict) or \
            not all(isinstance(v, list) for v in history.get("timing", {}).values()):
        bad("no history")


def load_checkpoint(run_dir: Path, model, state: dict, batch_size: int, workers: int = 1):
    """Restore the model's parameters and optimizer state from `run_dir`'s checkpoint;
    returns (Position, History, seed). `batch_size` is the global batch (workers x the
    batch of each): a run stopped within an epoch resumes only at the same one."""
    path = Path(run_dir) / CHECKPOINT
    arrays = read_npz(path)
    if "meta" not in arrays:
        raise FileError(path, "not a cnnc checkpoint (no meta record)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FileError(path, "corrupt checkpoint metadata") from None
    _check_meta(path, meta)
    if meta.get("model") != model.name:
        raise FileError(path, f"checkpoint of model '{meta.get('model')}', not '{model.name}'")
    saved_batch = meta.get("batch_size")
    if meta["batch"] and saved_batch is not None and saved_batch != batch_size:
        saved_workers = meta.get("workers", 1)
        if saved_workers == 1 and workers == 1:
            raise FileError(path, f"the run stopped after batch {meta['batch']} of epoch "
                                  f"{meta['epoch'] + 1} at batch size {saved_batch}; resume "
                                  f"it with batch size {saved_batch} (the batch size may "
                                  f"change only between epochs)")
        raise FileError(path, f"the run stopped after batch {meta['batch']} of epoch "
                              f"{meta['epoch'] + 1} at a global batch of {saved_batch} "
                              f"({saved_workers} x {saved_batch // saved_workers}), not "
                              f"{batch_size} ({workers} x {batch_size // workers}); resume "
                              f"it with workers x batch size = {saved_batch} (the batch "
                              f"size may change only between epochs)")
    params = check_params(path, {k[6:]: v for k, v in arrays.items() if k.startswith("param/")},
                          model.param_shapes())
    slots = {k[6:]: v for k, v in arrays.items() if k.startswith("state/")}
    if set(slots) != set(state) or any(slots[k].shape != state[k].shape for k in state):
        raise FileError(path, "optimizer state does not match this model's optimizer")
    model._restore(params, state, slots)
    history = History.from_record(meta["history"])
    pos = Position(meta["epoch"], meta["batch"], meta["step"], meta["loss_sum"],
                   meta["correct_sum"], meta["seen"])
    return pos, history, meta["seed"]


def _share_state(world, model, state: dict) -> None:
    """Rank 0's parameters and optimizer state on every rank (in place)."""
    params = {k: np.ascontiguousarray(v) for k, v in model._host_params().items()}
    slots = {k: np.ascontiguousarray(v) for k, v in model._host_state(state).items()}
    for array in (*params.values(), *slots.values()):
        world.broadcast(array)
    if not world.main:
        model._restore(params, state, slots)


def _resume(world, run_dir, model, state: dict, batch_size: int):
    """load_checkpoint; in a data-parallel run rank 0 reads it and every rank gets what
    it holds (an error in it stops every rank, with rank 0 saying why)."""
    if world is None:
        return load_checkpoint(run_dir, model, state, batch_size)
    result = error = None
    if world.main:
        try:
            result = load_checkpoint(run_dir, model, state, batch_size, world.size)
        except FileError as e:
            error = e
    shared = world.broadcast_json(None if result is None else {
        "pos": vars(result[0]), "seed": result[2],
        "history": json.loads(result[1].to_json())})
    if shared is None:
        raise error if error is not None else FileError(Path(run_dir) / CHECKPOINT,
                                                        "rank 0 could not read it")
    _share_state(world, model, state)
    return Position(**shared["pos"]), History.from_record(shared["history"]), shared["seed"]


# A stop flag in the step's allreduce: each rank adds its own, so all see any of them.
_STOP_FLAG = {signal.SIGINT: 1.0, signal.SIGTERM: 65536.0}


def run(model, x, y, *, epochs: int, batch_size: int, seed: int, x_val=None, y_val=None,
        shuffle: bool = True, verbose: int = 1, run_dir=None, resume: bool = False,
        metric: str = "accuracy", log=print, start: Position | None = None,
        world=None) -> History:
    """Train until `epochs` epochs are done in all (counting from the model's first: a
    second fit continues the first's epochs and optimizer steps). `start`: where the
    model's training stands, unless resuming from `run_dir`'s checkpoint. Returns the
    History of this call; the model's position afterwards is `model._position`.

    With `world` (distributed.World), this is one rank of a data-parallel run:
    `batch_size` is each rank's, the global batch world.size times it (module
    docstring of distributed.py); only rank 0 logs and writes `run_dir`."""
    module = model.module
    state = model._opt_state()
    history = History()
    pos = Position(start.epoch, 0, start.step) if start is not None else Position()
    run_dir = Path(run_dir) if run_dir is not None else None
    workers = world.size if world is not None else 1
    writes = world is None or world.main
    if not writes:
        verbose = 0
    global_batch = batch_size * workers
    if resume:
        pos, history, seed = _resume(world, run_dir, model, state, global_batch)
    elif world is not None:
        _share_state(world, model, state)
    params = model._train_params()
    n = len(x)
    batches = math.ceil(n / global_batch)
    labels = module.labels_for(y)
    val = (x_val, module.labels_for(y_val)) if x_val is not None else None
    checkpointed = False
    reduce = world.step_allreduce if world is not None else None
    try:
        with AtomicSteps() as step_boundary:
            if world is not None:
                world.flag = lambda: _STOP_FLAG.get(step_boundary.pending, 0.0)
            while pos.epoch < epochs:
                order = np.random.default_rng([seed, pos.epoch]).permutation(n) if shuffle \
                    else np.arange(n)
                bar = _progress(verbose, batches, pos, epochs)
                start_time = time.perf_counter()
                reduce_start = world.allreduce_seconds if world is not None else 0.0
                done_at_start = pos.seen
                while pos.batch < batches:
                    index = np.sort(order[pos.batch * global_batch:
                                          (pos.batch + 1) * global_batch])
                    count, first = len(index), 0
                    if world is not None:        # this rank's part of the global batch
                        first, last = world.part(count)
                        index = index[first:last]
                        world.context = f"in step {pos.step + 1} (epoch {pos.epoch + 1}, " \
                                        f"batch {pos.batch + 1})"
                    xb = np.ascontiguousarray(x[index])
                    with step_boundary:
                        loss, acc = module.train_step(params, state, xb, labels[index],
                                                      pos.step, seed, first=first,
                                                      total=count, allreduce=reduce)
                        pos.batch += 1
                        pos.step += 1
                        pos.loss_sum += loss * count
                        pos.correct_sum += acc * count
                        pos.seen += count
                        if world is not None and world.stop:     # a rank was asked to stop
                            step_boundary.request(signal.SIGTERM if world.stop >= 65536
                                                  else signal.SIGINT)
                    if not math.isfinite(loss):
                        model._changed()
                        raise NonFiniteLoss(
                            f"the loss became {loss} at epoch {pos.epoch + 1}, step "
                            f"{pos.step}" + (f"; the last good checkpoint is in {run_dir}"
                                             if checkpointed or resume else ""))
                    if bar is not None:
                        rate = (pos.seen - done_at_start) / max(
                            time.perf_counter() - start_time, 1e-9)
                        bar.set_postfix(loss=f"{pos.loss_sum / pos.seen:.4f}",
                                        acc=f"{pos.correct_sum / pos.seen:.4f}",
                                        img_s=f"{rate:,.0f}", refresh=False)
                        bar.update(1)
                with step_boundary:              # the epoch's end, as one step
                    model._changed()
                    logs = {"loss": pos.loss_sum / pos.seen,
                            metric: pos.correct_sum / pos.seen}
                    if val is not None:
                        logs["val_loss"], logs[f"val_{metric}"] = _evaluate(
                            module, params, val, max(batch_size, 256), world)
                    seconds = time.perf_counter() - start_time
                    timing = {"seconds": round(seconds, 4)}
                    if world is not None:
                        timing["allreduce_seconds"] = round(
                            world.allreduce_seconds - reduce_start, 4)
                    history.add(pos.epoch, logs, timing)
                    if bar is not None:
                        bar.close()
                    if verbose:
                        spent = f"{seconds:.1f} s" + (
                            f", {timing['allreduce_seconds']:.1f} s in allreduce"
                            if world is not None else "")
                        log(f"epoch {pos.epoch + 1}/{epochs}: " + ", ".join(
                            f"{k} {v:.4f}" for k, v in logs.items()) + f" ({spent})")
                    pos = Position(pos.epoch + 1, 0, pos.step)
                    model._position = pos
                    if run_dir is not None and writes:
                        save_checkpoint(run_dir, model, state, pos, history, seed,
                                        global_batch, workers)
                        atomic_write_text(run_dir / "history.json", history.to_json())
                        checkpointed = True
    except KeyboardInterrupt as stop:
        model._changed()
        model._position = pos
        if run_dir is not None and writes:
            save_checkpoint(run_dir, model, state, pos, history, seed, global_batch, workers)
            what = "terminated" if isinstance(stop, Terminated) else "interrupted"
            log(f"\n{what}: checkpoint written to {run_dir / CHECKPOINT} (epoch "
                f"{pos.epoch + 1}, batch {pos.batch}); continue with --resume {run_dir}")
        raise
    model._position = pos
    return history


def _evaluate(module, params, val, batch_size: int, world) -> tuple[float, float]:
    """(loss, accuracy) on the validation data; in a data-parallel run each rank takes
    its part of it and the sums are added up."""
    x, labels = val
    if world is None:
        return module.evaluate(params, x, labels, batch_size=batch_size)
    lo, hi = world.part(len(x))
    loss = accuracy = 0.0
    if hi > lo:
        loss, accuracy = module.evaluate(params, x[lo:hi], labels[lo:hi],
                                         batch_size=batch_size)
    total = world.sum([loss * (hi - lo), accuracy * (hi - lo)])
    return float(total[0]) / len(x), float(total[1]) / len(x)


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
