"""Compiling a model's kernels as a step of its own, on every core.

Numba compiles a kernel the first time it is called, one kernel after another: a cold
cache made the first batch of `cnnc train` stall for the whole compile. `build` compiles
the kernels that Numba's cache does not hold yet before training starts, with a progress
bar, and shares them among processes: the kernels are independent (one shared file each,
kernel_store.py), so the cores compile different kernels at once, each process writing
the machine code of its share to Numba's cache (written atomically) and this process
then loading all of it.

Which argument types each kernel is called with comes from running the module's own
entry points -- forward, train_step, evaluate -- on a batch of two zero samples with every
kernel replaced by a function that records them (a kernel's argument types do not depend
on the values its inputs hold, so each kernel compiles exactly as training will call it).
The processes then take kernels from one list, largest first, each claiming the next
unclaimed one (a file created exclusively in a folder they share) as it becomes free:
the compile ends within about one kernel of the ideal, whatever the kernels' sizes.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..util import cores
from . import kernel_store
from .cache import _numba_files
from .calls import _ModuleCall
from .link_once import link_once

BATCH = 2                        # samples of the dry run


def cold_kernels(module) -> list[str]:
    """The module's kernels with no machine code in Numba's cache yet."""
    index = getattr(module, "_cnnc_kernel_files", {})
    return [name for name, path in index.items() if not _numba_files(Path(path))]


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


def dry_run(module, done=None, train: bool = True) -> None:
    """Run the module's entry points (forward; with `train`, train_step and evaluate
    too) on BATCH zero samples, so that Numba compiles (or loads) their kernels;
    `done(name)` is called as each kernel has compiled."""
    def replace(name, kernel):
        return _reporting(module, name, kernel, done) if done is not None else None

    with _kernels_replaced(module, replace), _quiet():
        _entry_points(module, train)


@contextmanager
def _quiet():
    """No warnings, no floating-point errors: runs with kernels that do nothing leave
    outputs as they were allocated, and what follows computes on arbitrary numbers."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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
    return list(signatures(module, train))


def _reporting(module, name, kernel, done):
    """`kernel`, which reports `done(name)` after its first call and then steps aside."""
    def first_call(*args):
        result = kernel(*args)
        setattr(module, name, kernel)
        done(name)
        return result
    return first_call


def signatures(module, train: bool) -> dict[str, list[tuple]]:
    """The argument types of each kernel's calls in the entry points (forward alone, or
    with `train` the training step's too), found by running them with every kernel
    replaced by a recorder: nothing compiles."""
    from numba import typeof
    found: dict[str, list[tuple]] = {}

    def recorder(name, kernel):
        def record(*args):
            sig = tuple(typeof(a) for a in args)
            if sig not in found.setdefault(name, []):
                found[name].append(sig)
        return record

    with _kernels_replaced(module, recorder), _quiet():
        _entry_points(module, train)
    return found


def largest_first(names: list[str], sizes: dict[str, int]) -> list[str]:
    """The order the processes claim kernels in: by source size (which stands for
    compile time), largest first, then by name; deterministic."""
    return sorted(names, key=lambda n: (-sizes.get(n, 0), n))


def compile_claimed(module, order: list[str], claims: Path, train: bool, done) -> None:
    """Compile, in `order`, each kernel of the module this process claims first (its
    file created in `claims`); `done(name)` after each one."""
    sigs = signatures(module, train)
    for name in order:
        try:
            os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue                  # another process has it
        kernel = getattr(module, name)
        for sig in sigs.get(name, ()):
            kernel.compile(sig)       # into Numba's cache
        done(name)


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
        with _ModuleCall(module), link_once():
            _build(model, module, cold, jobs, tick, train)
    finally:
        if bar is not None:
            bar.close()
    return len(cold)


def _build(model, module, cold: list[str], jobs: int | None, tick, train: bool) -> None:
    jobs = max(1, min(jobs or cores(), len(cold)))
    if jobs > 1:
        files = module._cnnc_kernel_files
        order = largest_first(cold, {n: Path(files[n]).stat().st_size for n in cold})
        with tempfile.TemporaryDirectory(prefix="cnnc-claims-") as claims:
            spec = {"module": str(model.module_path), "name": module.__name__,
                    "order": order, "claims": claims, "train": train}
            _shared(module, spec, jobs, tick)
    # everything, compiled here (one job, or what a failed worker had claimed) or loaded
    dry_run(module, done=tick if jobs == 1 else None, train=train)


def _shared(module, spec: dict, jobs: int, tick) -> None:
    """Compile the kernels of spec["order"] here and in jobs - 1 workers, each process
    claiming the next kernel as it becomes free."""
    workers = [_spawn(spec) for _ in range(jobs - 1)]
    readers = [threading.Thread(target=_follow, args=(proc, tick), daemon=True)
               for proc in workers]
    for reader in readers:
        reader.start()
    compile_claimed(module, spec["order"], Path(spec["claims"]), spec["train"], tick)
    for proc, reader in zip(workers, readers):
        proc.wait()
        reader.join()


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
        sizes = {n: len(inspect.getsource(getattr(module, n).py_func)) for n in names}
        with tempfile.TemporaryDirectory(prefix="cnnc-claims-") as claims, link_once():
            spec = {"file": str(Path(path).resolve()), "train": train,
                    "order": largest_first(names, sizes), "claims": claims}
            _shared(module, spec, jobs, tick)
            # what a failed worker had claimed, compiled here (the rest is loaded)
            dry_run(module, train=train)
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


def _spawn(spec: dict):
    """A process compiling the kernels it claims (python -m cnnc.runtime.build); its
    output says which kernels it compiled, one line each."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "cnnc.runtime.build", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)


def _worker(spec: dict) -> int:
    """In a worker process: load the module as the parent did, compile what it claims."""
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
    with link_once():
        compile_claimed(module, spec["order"], Path(spec["claims"]), spec["train"], done)
    return 0


def _no_generator():
    raise RuntimeError("the kernel index beside the module is missing")


if __name__ == "__main__":
    sys.exit(_worker(json.loads(sys.argv[1])))
