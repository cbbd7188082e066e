"""Loading a kernel's cached machine code without loading Numba's compiler registries.

Before Numba loads a function from its on-disk cache, it refreshes its target context:
it imports some 70 modules of implementations (numba.np.linalg, the typed containers,
jitclass, ...) and installs their registries, which only compiling needs; Numba's
compiler refreshes them itself before it compiles anything. In a warm start of
mnist_cnn (a new process, every kernel cached, one prediction) that refresh took
0.15-0.23 s, and it doubled the objects the interpreter's final garbage collections
walk at exit (50,000 -> 98,000).

`load_without_refresh(kernel)` makes one cnnc kernel's cache load do what the refresh
does that the machine code needs -- starting Numba's runtime (NRT), which its
allocations call -- and then load. Only cnnc's kernels are changed, one dispatcher at a
time; a function of the user's own loads and compiles as Numba always does. A kernel
not in the cache compiles as before, and the compile refreshes the registries first.

Starting the NRT compiles its few LLVM functions (atomic reference counts, the meminfo
data accessor) in every process: 0.02 s of mnist_cnn's warm start. `start_runtime` does
what rtsys.initialize does with that library's machine code kept in the cache
(`numba-runtime/`, verified like every cache file, keyed by Numba's and llvmlite's
versions and the code generator's target and CPU features); a process that finds none
compiles it as Numba does and keeps it.

Numba's internals again: only on the Numba versions link_once.SUPPORTED lists (else the
kernel is left as it is), and CNNC_WARM_LOAD=0 turns it off.
"""

from __future__ import annotations

import os

from .link_once import numba_checked


def enabled() -> bool:
    return os.environ.get("CNNC_WARM_LOAD") != "0" and numba_checked()


def load_without_refresh(kernel) -> bool:
    """Make `kernel` (a Numba dispatcher) load from Numba's cache without the refresh;
    False where it is left as it is."""
    cache = getattr(kernel, "_cache", None)
    load = getattr(cache, "_load_overload", None)
    guard = getattr(cache, "_guard_against_spurious_io_errors", None)
    if not (callable(load) and callable(guard) and enabled()):
        return False
    def load_overload(sig, target_context):
        start_runtime(target_context)          # the NRT, which the machine code calls
        with guard():
            return load(sig, target_context)
    cache.load_overload = load_overload
    return True


RUNTIME_FOLDER = "numba-runtime"
_MAGIC = b"cnnc-nrt-object-1\n"


def start_runtime(target_context) -> None:
    """rtsys.initialize(target_context), with the NRT library's machine code from the
    cache when it is there (else compiled, and kept for the next process)."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.runtime import rtsys
    if rtsys._init:
        return
    with global_compiler_lock:
        if rtsys._init:
            return
        _register_c_functions()
        codegen = target_context.codegen()
        path = _runtime_path(codegen)
        library = _load_runtime(codegen, path)
        if library is None:
            library = _compile_runtime(target_context, path)
        rtsys._library = library
        rtsys._init = True


def _register_c_functions() -> None:
    """What rtsys.initialize does before it compiles: the statistics switch and the NRT's
    C functions as symbols the machine code links against."""
    from llvmlite import binding as ll
    from numba.core import config
    from numba.core.runtime import _nrt_python
    if config.NRT_STATS:
        _nrt_python.memsys_enable_stats()
    for py_name, address in _nrt_python.c_helpers.items():
        ll.add_symbol(py_name if py_name.startswith("_") else "NRT_" + py_name, address)


def _runtime_path(codegen):
    import hashlib
    import json

    import llvmlite
    import numba

    from ..util import cache_root
    parts = [numba.__version__, llvmlite.__version__, list(codegen.magic_tuple())]
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]
    return cache_root() / RUNTIME_FOLDER / f"nrt-{key}.o"


def _load_runtime(codegen, path):
    """The NRT library from its verified file at `path`, or None."""
    from .cache import read_verified
    data = read_verified(path)
    if data is None or not data.startswith(_MAGIC):
        return None
    body = data[len(_MAGIC):]
    size = int.from_bytes(body[:8], "little")
    if len(body) < 8 + size:
        return None
    object_code, shared_bitcode = body[8:8 + size], body[8 + size:]
    try:
        return codegen.unserialize_library(("nrt", "object", (object_code, shared_bitcode)))
    except Exception:                   # a file of another LLVM: compile instead
        return None


def _compile_runtime(target_context, path):
    """The NRT library compiled as rtsys.initialize compiles it, its machine code kept
    at `path` where the cache can be written."""
    from numba.core.runtime import nrtdynmod

    from ..errors import CnncRuntimeError
    from .cache import write_verified
    ir_module, library = nrtdynmod.create_nrt_module(target_context)
    library.enable_object_caching()
    library.add_ir_module(ir_module)
    library.finalize()
    _, _, (object_code, shared_bitcode) = library.serialize_using_object_code()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_verified(path, _MAGIC + len(object_code).to_bytes(8, "little") + object_code
                       + shared_bitcode, durable=False)
    except (OSError, CnncRuntimeError):
        pass                            # a read-only cache: compiled again next time
    return library
