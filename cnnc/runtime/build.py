"""Compiling a model's kernels as a step of its own, on every core.

Numba compiles a kernel the first time it is called, one kernel after another: a cold
cache made the first batch of `cnnc train` stall for the whole compile. `build` compiles
the kernels that Numba's cache does not hold yet before training starts, with a progress
bar, and shares them among processes: the kernels are independent (one shared file each,
kernel_store.py), so the cores compile different kernels at once, each process writing
the machine code of its share to Numba's cache (written atomically) and this process
then loading all of it.

A process compiles its share by running the module's own entry points -- forward,
train_step, evaluate -- on a batch of two zero samples, with every kernel outside its
share replaced by a function that does nothing: a kernel's argument types do not depend
on the values its inputs hold, so each kernel compiles exactly as training will call it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..util import cores
from . import kernel_store
from .cache import _numba_files
from .calls import _ModuleCall

BATCH = 2                        # samples of the dry run


def cold_kernels(module) -> list[str]:
    """The module's kernels with no machine code in Numba's cache yet."""
    index = getattr(module, "_cnnc_kernel_files", {})
    return [name for name, path in index.items() if not _numba_files(Path(path))]


def _skip(*args):
    """A kernel outside this process's share: not run, not compiled."""


def kernel_names(module) -> list[str]:
    """The module's kernels: those of its kernel index (kernel_store.link), or in a
    standalone generated module its parallel njit functions (the helpers they call,
    inlined, are not kernels)."""
    index = getattr(module, "_cnnc_kernel_files", None)
    if index is not None:
        return list(index)
    from numba.core.registry import CPUDispatcher
    return [name for name, value in vars(module).items()
            if isinstance(value, CPUDispatcher) and value.targetoptions.get("parallel")]


@contextmanager
def _kernels_replaced(module, replace):
    """The module's kernels replaced by `replace(name, kernel)` (where it returns one),
    and put back afterwards."""
    saved = {name: getattr(module, name) for name in kernel_names(module)}
    try:
        for name, kernel in saved.items():
            replacement = replace(name, kernel)
            if replacement is not None:
                setattr(module, name, replacement)
        yield
    finally:
        for name, kernel in saved.items():
            setattr(module, name, kernel)


def dry_run(module, only=None, done=None, train: bool = True) -> None:
    """Run the module's entry points (forward; with `train`, train_step and evaluate
    too) on BATCH zero samples, so that Numba compiles (or loads) their kernels; with
    `only`, the other kernels are skipped. `done(name)` is called as each kernel of the
    share has compiled."""
    def replace(name, kernel):
        if only is not None and name not in only:
            return _skip
        return _reporting(module, name, kernel, done) if done is not None else None

    # a skipped kernel leaves its output as it was allocated: what follows computes on
    # arbitrary numbers, whose overflows mean nothing here
    with _kernels_replaced(module, replace), np.errstate(all="ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _entry_points(module, train)


def _entry_points(module, train: bool) -> None:
    params = module.init_params(0)
    x = np.zeros((BATCH,) + tuple(module.INPUT_SHAPE), dtype=np.float32)
    module.forward(params, x)
    if train and hasattr(module, "train_step"):
        y = np.zeros((BATCH,) + tuple(module.LABEL_SHAPE), dtype=np.float32)
        state = module.init_opt_state(params)
        module.train_step(params, state, x, y, 0, 0)
        module.evaluate(params, x, y, batch_size=BATCH)


def used_kernels(module, train: bool) -> list[str]:
    """The kernels the entry points call (forward alone, or with `train` the training
    step's too), found by running them with every kernel replaced: nothing compiles."""
    called: dict[str, None] = {}
    with _kernels_replaced(module, lambda name, kernel:
                           lambda *args: called.setdefault(name)):
        _entry_points(module, train)
    return list(called)


def _reporting(module, name, kernel, done):
    """`kernel`, which reports `done(name)` after its first call and then steps aside."""
    def first_call(*args):
        result = kernel(*args)
        setattr(module, name, kernel)
        done(name)
        return result
    return first_call


def shares(names: list[str], sizes: dict[str, int], count: int) -> list[list[str]]:
    """`names` in `count` shares of about equal work (source size stands for compile
    time), largest first; deterministic."""
    parts: list[list[str]] = [[] for _ in range(count)]
    load = [0] * count
    for name in sorted(names, key=lambda n: (-sizes.get(n, 0), n)):
        i = load.index(min(load))
        parts[i].append(name)
        load[i] += sizes.get(name, 1)
    return [p for p in parts if p]


def build(model, progress: bool = False, jobs: int | None = None, train: bool = True) -> int:
    """Compile the model's kernels that Numba's cache lacks, `jobs` processes at once
    (default: the cores), with a progress bar when `progress`; with `train` False, only
    those inference runs. Returns how many were compiled. Afterwards every kernel
    needed is compiled or loaded in this process."""
    module = model.module
    from numba.core import config
    if config.DISABLE_JIT:
        return 0                  # the kernels run as Python: nothing to compile
    cold = cold_kernels(module)
    if cold and not (train and hasattr(module, "train_step")):
        needed = set(used_kernels(module, train=False))
        cold = [name for name in cold if name in needed]
    if not cold:
        return 0                  # all cached: each loads when first called (fast)
    bar = _bar(len(cold)) if progress else None

    def tick(name):
        if bar is not None:
            bar.update(1)

    try:
        with _ModuleCall(module):
            _build(model, module, cold, jobs, tick, train)
    finally:
        if bar is not None:
            bar.close()
    return len(cold)


def _build(model, module, cold: list[str], jobs: int | None, tick, train: bool) -> None:
    jobs = max(1, min(jobs or cores(), len(cold)))
    if jobs > 1:
        files = module._cnnc_kernel_files
        sizes = {n: Path(files[n]).stat().st_size for n in cold}
        mine, *others = shares(cold, sizes, jobs)
        workers = [_start(model, share, train) for share in others]
        readers = [threading.Thread(target=_follow, args=(proc, tick), daemon=True)
                   for proc in workers]
        for reader in readers:
            reader.start()
        dry_run(module, only=set(mine), done=tick, train=train)
        for proc, reader in zip(workers, readers):
            proc.wait()
            reader.join()
    # everything, compiled here (one job, or a worker's share if it failed) or loaded
    dry_run(module, done=tick if jobs == 1 else None, train=train)


def build_file(path, train: bool = True, progress: bool = False,
               jobs: int | None = None) -> int:
    """Compile the kernels of the standalone module at `path` (`cnnc compile -o`) into
    Numba's cache beside it, `jobs` processes at once: importing it then loads them. As
    the module's own users do, with Numba's default CPU features (not widen()'s), so
    that their imports find what was compiled. Returns how many kernels it ran."""
    from numba.core import config
    if config.DISABLE_JIT:
        return 0
    module = _import_file(Path(path))
    names = used_kernels(module, train)
    if not names:
        return 0
    bar = _bar(len(names)) if progress else None

    def tick(name):
        if bar is not None:
            bar.update(1)

    try:
        jobs = max(1, min(jobs or cores(), len(names)))
        mine, *others = shares(names, {}, jobs)
        spec = {"file": str(Path(path).resolve()), "train": train}
        workers = [_spawn(dict(spec, share=share)) for share in others]
        readers = [threading.Thread(target=_follow, args=(proc, tick), daemon=True)
                   for proc in workers]
        for reader in readers:
            reader.start()
        dry_run(module, only=set(mine), done=tick, train=train)
        failed = []
        for proc, reader, share in zip(workers, readers, others):
            proc.wait()
            reader.join()
            if proc.returncode:
                failed += share
        if failed:                     # compiled here instead
            dry_run(module, only=set(failed), done=tick, train=train)
    finally:
        if bar is not None:
            bar.close()
    return len(names)


def _import_file(path: Path):
    """The standalone module at `path`, imported under its file's name (as `import` does:
    Numba's cache records the module of a kernel's globals by name)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[path.stem]
        raise
    return module


def _bar(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"compiling {total} kernels", unit="kernel", leave=False,
                dynamic_ncols=True)


def build_ranks(model, world, progress: bool = False) -> int:
    """build() in a data-parallel run: on each machine its first rank compiles, on all
    the machine's cores, while the others wait; they then load what it compiled."""
    from .distributed import FIRST_STEP_TIMEOUT
    if world is None:
        return build(model, progress)
    count = build(model, progress and world.main) if world.local_rank == 0 else 0
    world.barrier(FIRST_STEP_TIMEOUT)
    return count


def _follow(proc, tick) -> None:
    """Tick the progress bar as a worker reports each kernel it compiled."""
    for line in proc.stdout:
        if line.startswith("compiled "):
            tick(line.split()[1])


def _start(model, share: list[str], train: bool = True):
    """A process compiling `share` of the model's kernels (python -m cnnc.runtime.build);
    its output says which kernels it compiled, one line each."""
    return _spawn({"module": str(model.module_path), "name": model.module.__name__,
                   "share": share, "train": train})


def _spawn(spec: dict):
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "cnnc.runtime.build", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)


def _worker(spec: dict) -> int:
    """In a worker process: load the module as the parent did, compile `share`."""
    if "file" in spec:                        # a standalone module: Numba's defaults
        module = _import_file(Path(spec["file"]))
    else:
        from .cache import import_module
        from .cpu_features import widen
        widen()                               # as the parent: the same cache key
        path = Path(spec["module"])
        module = import_module(path, spec["name"])
        kernel_store.link(module, path, _no_generator)

    def done(name):
        print(f"compiled {name}", flush=True)
    dry_run(module, only=set(spec["share"]), done=done, train=spec["train"])
    return 0


def _no_generator():
    raise RuntimeError("the kernel index beside the module is missing")


if __name__ == "__main__":
    sys.exit(_worker(json.loads(sys.argv[1])))
