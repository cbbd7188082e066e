"""Compiling a generated CUDA module's kernels to PTX without a GPU, and what ptxas says.

A kernel is compiled for the argument types it is launched with. Those come from running
the module's host code -- inference, and the training step, gradients and evaluation
when the module trains -- with Numba's simulated device arrays in place of real ones and
a recorder in place of every kernel: the recorder notes the types of each launch's
arguments and runs nothing. The host code runs twice, at a small batch and at a large
one with the reductions forced to split, so both branches of every launcher are taken;
a kernel that is never launched is an error (it would be dead code in the module).

Each (kernel, signature) then goes through numba-cuda's `compile_ptx` for the compute
capabilities asked for -- the real compiler (Numba's typing and lowering, NVVM), which
accepts nothing the simulator forgives -- and `ptxas` (the CUDA toolkit's assembler)
reports registers, shared memory, stack and spills per kernel.

Needs numba-cuda, NVRTC (`nvidia-cuda-nvrtc`, for the supported architectures) and the
real numba.cuda: not under NUMBA_ENABLE_CUDASIM=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CnncRuntimeError

CCS = ((7, 5), (8, 0), (9, 0))
TRACE_BATCHES = (2, 256)


@dataclass(frozen=True)
class KernelPtx:
    name: str                 # the @cuda.jit function in the module
    signature: tuple          # Numba types of its arguments
    cc: tuple[int, int]
    ptx: str


@dataclass(frozen=True)
class PtxasInfo:
    registers: int
    shared_bytes: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int


def _require_real_cuda() -> None:
    from .cuda import SIMULATOR, simulated
    if simulated():
        raise CnncRuntimeError(f"compiling to PTX needs Numba's real CUDA target: unset "
                               f"{SIMULATOR} (no GPU is needed)")
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        raise CnncRuntimeError("compiling to PTX needs numba-cuda and NVRTC: pip install "
                               "'cnnc[ptx]'") from None


def kernels_of(module) -> dict:
    """name -> CUDA dispatcher of every kernel (not device function) in `module`."""
    return {name: value for name, value in vars(module).items()
            if type(value).__name__ == "CUDADispatcher"
            and not value.targetoptions.get("device")}


class _Recorder:
    """Stands in for a kernel: `kernel[grid, block](*args)` records the argument types."""

    def __init__(self, name: str, found: dict):
        self.name = name
        self.found = found

    def __getitem__(self, config):
        def launch(*args):
            self.found.setdefault(self.name, set()).add(tuple(_numba_type(a) for a in args))
        return launch


def _numba_type(value):
    from numba import typeof
    if getattr(value, "__cuda_ndarray__", False):       # a simulated device array: its type
        return value._numba_type_                        # as a real one's (dtype, ndim, layout)
    return typeof(value)


def trace_signatures(module) -> dict[str, list[tuple]]:
    """kernel name -> the argument types it is launched with (sorted)."""
    import numpy as np
    from numba.cuda import simulator
    _require_real_cuda()
    kernels = kernels_of(module)
    found: dict[str, set] = {}
    saved = {name: getattr(module, name) for name in list(kernels) +
             ["cuda", "TARGET_BLOCKS"] if hasattr(module, name)}
    try:
        module.cuda = simulator
        for name in kernels:
            setattr(module, name, _Recorder(name, found))
        for batch in TRACE_BATCHES:
            # The large batch with TARGET_BLOCKS out of reach splits every reduction that
            # can split; the small one keeps them whole.
            module.TARGET_BLOCKS = saved["TARGET_BLOCKS"] if batch == TRACE_BATCHES[0] \
                else 1 << 40
            _run_host_code(module, batch, np)
    finally:
        for name, value in saved.items():             # the kernels, cuda, TARGET_BLOCKS
            setattr(module, name, value)
    missing = sorted(set(kernels) - set(found))
    if missing:
        raise CnncRuntimeError("kernels never launched by the module's host code: " +
                               ", ".join(missing))
    return {name: sorted(found[name], key=str) for name in kernels}


def _run_host_code(module, batch: int, np) -> None:
    x = np.zeros((batch,) + tuple(module.INPUT_SHAPE), dtype=module.DTYPE)
    params = module.to_device(module.init_params(0))
    module.forward_prepared(module.prepare(params), x)
    if hasattr(module, "train_step"):
        labels = np.zeros((batch,) + tuple(module.LABEL_SHAPE), dtype=module.DTYPE)
        state = module.init_opt_state(params)
        module.train_step(params, state, x, labels, 0, seed=1)
        module.compute_gradients(params, x, labels, -1)
        module.evaluate(params, x, labels, batch_size=batch)


def compile_module(module, ccs=CCS) -> list[KernelPtx]:
    """The PTX of every kernel of `module` for every signature it is launched with and
    every compute capability in `ccs`."""
    from numba import cuda
    out = []
    signatures = trace_signatures(module)
    kernels = kernels_of(module)
    for name, sigs in signatures.items():
        kernel = kernels[name]
        for sig in sigs:
            for cc in ccs:
                try:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc,
                                              fastmath=kernel.targetoptions.get("fastmath"))
                except Exception as e:
                    raise CnncRuntimeError(f"kernel {name} does not compile for cc "
                                           f"{cc[0]}.{cc[1]}: {type(e).__name__}: "
                                           f"{_first_lines(str(e))}") from e
                out.append(KernelPtx(name, sig, cc, ptx))
    return out


def _first_lines(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[:n])


def find_ptxas() -> str | None:
    """The CUDA toolkit's ptxas: on PATH, under $CUDA_HOME, or /usr/local/cuda."""
    found = shutil.which("ptxas")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and Path(root, "bin", "ptxas").is_file():
            return str(Path(root, "bin", "ptxas"))
    return None


_INFO = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def ptxas(ptx: str, arch: str = "sm_90", ptxas_path: str | None = None) -> PtxasInfo:
    """Assemble `ptx` for `arch` with ptxas -v; its resource use. Raises CnncRuntimeError
    with ptxas's message when it refuses the PTX."""
    exe = ptxas_path or find_ptxas()
    if exe is None:
        raise CnncRuntimeError("ptxas (the CUDA toolkit's PTX assembler) is not found: "
                               "put it on PATH or set CUDA_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run([exe, f"-arch={arch}", "-v", str(source), "-o",
                                 str(Path(tmp) / "kernel.cubin")],
                                capture_output=True, text=True, timeout=300, check=False)
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise CnncRuntimeError(f"ptxas -arch={arch} refused the PTX: "
                               f"{_first_lines(text)}")
    used, stack = _INFO.search(text), _STACK.search(text)
    if used is None or stack is None:
        raise CnncRuntimeError(f"unexpected ptxas output: {_first_lines(text)}")
    return PtxasInfo(int(used.group(1)), int(used.group(2) or 0), int(stack.group(1)),
                     int(stack.group(2)), int(stack.group(3)))


def load_generated(source: str, name: str):
    """Import generated module source for tracing, through the module cache (keyed by the
    source itself)."""
    import hashlib

    from .cache import ensure_module, import_module, module_path
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    path = module_path(name, f"ptx-{key}")
    return import_module(path, f"cnnc_ptx_{name}_{key}", ensure_module(path, lambda: source))
