"""Compile every CUDA kernel of models to PTX and assemble it with ptxas, without a GPU.

    python tests/tools/ptx_check.py [--cc 7.5,8.0,9.0] [--arch sm_90] [--jobs 2] FILE.cnn...

For each model file: the CUDA module (fuse=all, training kernels included when the file
has a train block), every kernel with every launch signature of its host code
(cnnc.runtime.ptx), compiled by numba-cuda's compile_ptx for each compute capability and
assembled by `ptxas -arch=ARCH -v`. Kernels identical across models (the same code and
signature) are compiled once. Prints one JSON line per (kernel, cc): the models using it,
ptxas's registers, shared memory, stack and spill bytes, or the error. Exit status 1 if
any kernel failed. Must run with Numba's real CUDA target (not NUMBA_ENABLE_CUDASIM).
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
_TRACED: dict = {}          # a worker's traced modules: path -> (module, signatures)


def kernels_of_file(path: str):
    """[(model, module path, kernel name, signature index, key)] of one model file."""
    from cnnc.compiler import lower
    from cnnc.runtime import ptx
    compiled = lower(path, target="cuda")
    module = ptx.load_generated(compiled.source(), compiled.model.name)
    out = []
    for name, sigs in ptx.trace_signatures(module).items():
        source = inspect.getsource(ptx.kernels_of(module)[name].py_func)
        source = re.sub(r"def \w+\(", "def kernel(", source, count=1)
        for i, sig in enumerate(sigs):
            out.append((compiled.model.name, module.__file__, name, i, (source, str(sig))))
    return out


def compile_one(job):
    """Compile one (module, kernel, signature) for each cc; ptxas each PTX."""
    module_path, name, index, ccs, arch = job
    from cnnc.runtime import ptx
    from cnnc.runtime.cache import import_module
    from numba import cuda
    if module_path not in _TRACED:
        stem = Path(module_path).parent.name
        module = import_module(Path(module_path), f"cnnc_ptx_{stem}")
        _TRACED[module_path] = module, ptx.trace_signatures(module)
    module, signatures = _TRACED[module_path]
    sig = signatures[name][index]
    kernel = ptx.kernels_of(module)[name]
    results = []
    for cc in ccs:
        record = {"kernel": name, "cc": f"{cc[0]}.{cc[1]}", "signature": str(sig)}
        try:
            code, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc,
                                       fastmath=kernel.targetoptions.get("fastmath"))
            record.update(asdict(ptx.ptxas(code, arch)), ok=True)
        except Exception as e:                     # noqa: BLE001 -- reported, not raised
            record.update(ok=False, error=f"{type(e).__name__}: {str(e)[:2000]}")
        results.append(record)
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--cc", default="7.5,8.0,9.0")
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    ccs = [tuple(int(p) for p in cc.split(".")) for cc in args.cc.split(",")]
    jobs, users = {}, {}
    for path in args.files:
        for model, module_path, name, index, key in kernels_of_file(path):
            users.setdefault(key, []).append(model)
            jobs.setdefault(key, (module_path, name, index, ccs, args.arch))
    failed = 0
    context = multiprocessing.get_context("spawn")      # no fork after numba.cuda
    with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        for key, results in zip(jobs, pool.map(compile_one, jobs.values())):
            for record in results:
                record["models"] = sorted(set(users[key]))
                failed += not record["ok"]
                print(json.dumps(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
