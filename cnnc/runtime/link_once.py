"""Compiling a parallel kernel's loop body once, where Numba compiles it four times.

Numba lowers a kernel's `prange` loop (a parfor) to a gufunc, compiled as a library of
its own, and wraps it in two more libraries: the gufunc wrapper and the parallel
launcher. The kernel's library links the three. Numba finalizes each library as it is
linked, with LLVM's O3 pipeline and machine code, and each links in the ones below it.
So the loop body, most of a kernel's code, goes through O3 and the code generator four
times. The kernel's copy is the one cached and loaded from the cache; in the process that
compiled it, the gufunc library's own copy (its symbol's first definition) is the one
that runs. For mnist_cnn's dense
layer, the loop body's four rounds were 0.35 s of O3 and 0.24 s of machine code in a
1.5 s compile (Numba 0.68.1, one thread).

While `link_once()` is active:

* a library finalized only to be linked into another is linked, with its own
  dependencies, and neither optimized nor emitted: the library that links it optimizes
  and emits the whole once. Asked for machine code later, it finishes as Numba would;
* the gufunc is compiled without the executable Numba makes of every compiled function
  (Numba's `no_compile` flag). Only the wrapper calls it, from the linked code. Its
  environment stays unset, as it is when Numba loads the kernel from its cache.

The kernel computes the same, and as fast: LLVM optimizes its loop body once instead of
four times over, so the machine code can differ in detail. mnist_cnn's, resnet_tiny's and
alexnet's predictions were bit-identical either way, and so were resnet_tiny's and
alexnet's training steps; mnist_cnn's parameters after four training steps differed in
the last bit (1.2e-7). Interleaved timings of both builds in one process: forward and
training step within 1% (mnist_cnn, resnet_tiny, alexnet). mnist_cnn's training module
compiled 9.6 -> 7.3 s cold, on 2 cores (tests/runtime/test_link_once.py).

This relies on Numba's internals, so it applies only to the Numba versions it was
written and checked against (SUPPORTED); with any other version `link_once()` changes
nothing and Numba compiles as it always does. It is active only around cnnc's own
compiles (build.py). A parallel function that another thread compiles meanwhile gets it
too.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

SUPPORTED = ((0, 68),)                 # Numba (major, minor) versions checked

_GUFUNC_COMPILER = "_create_gufunc_for_parfor_body.<locals>.ParforGufuncCompiler"
# the methods that need a library's machine code (or its optimized module)
_EMITTING = ("get_pointer_to_function", "get_asm_str", "serialize_using_object_code",
             "serialize_using_bitcode")

_lock = threading.Lock()
_depth = 0                             # nested link_once() blocks now active
_installed: bool | None = None         # None: not tried yet


def supported() -> bool:
    """Whether this Numba is one `link_once()` applies to (and CNNC_LINK_ONCE is not 0)."""
    return os.environ.get("CNNC_LINK_ONCE") != "0" and numba_checked()


def numba_checked() -> bool:
    """Whether this Numba's version is one cnnc's uses of its internals were checked
    against (SUPPORTED)."""
    import numba
    try:
        version = tuple(int(part) for part in numba.__version__.split(".")[:2])
    except ValueError:
        return False
    return version in SUPPORTED


@contextmanager
def link_once():
    """Numba compiles each parallel kernel's loop body once inside this block (where
    supported(); otherwise the block changes nothing)."""
    global _depth
    on = _install()
    with _lock:
        _depth += on
    try:
        yield on
    finally:
        with _lock:
            _depth -= on


def _install() -> bool:
    """Wrap Numba's methods once (idempotent); False where unsupported."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = supported() and _wrap()
        return _installed


def _wrap() -> bool:
    from numba.core import codegen, compiler
    library_class, jit_class = codegen.CPUCodeLibrary, codegen.JITCodeLibrary
    needed = [(library_class, "add_linking_library"), (library_class, "finalize"),
              (library_class, "_optimize_final_module"),
              (library_class, "_finalize_final_module"), (compiler, "compile_ir")]
    needed += [(jit_class, name) for name in _EMITTING]
    if not all(callable(getattr(owner, name, None)) for owner, name in needed):
        return False

    add_linking_library = library_class.add_linking_library
    finalize = library_class.finalize
    compile_ir = compiler.compile_ir

    def linking(self, library):
        if _depth and not library._finalized:
            library._cnnc_link_only = True
        return add_linking_library(self, library)

    def finalizing(self):
        if not getattr(self, "_cnnc_link_only", False):
            return finalize(self)
        # what finalize() does up to its optimization, then stop: linked, not emitted
        self._raise_if_finalized()
        seen = set()
        for library in self._linking_libraries:
            if library not in seen:
                self._reload_init.update(library._reload_init)
                seen.add(library)
                self._final_module.link_in(library._get_module_for_linking(), preserve=True)
        self._final_module.verify()
        self._finalized = True
        self._cnnc_deferred = True

    def compiling_ir(typingctx, targetctx, func_ir, args, return_type, flags, locals,
                     *rest, **options):
        pipeline = options.get("pipeline_class")
        if _depth and pipeline is not None and pipeline.__qualname__ == _GUFUNC_COMPILER:
            flags = flags.copy()
            flags.no_compile = True
        return compile_ir(typingctx, targetctx, func_ir, args, return_type, flags, locals,
                          *rest, **options)

    library_class.add_linking_library = linking
    library_class.finalize = finalizing
    compiler.compile_ir = compiling_ir
    for name in _EMITTING:
        setattr(jit_class, name, _emitted_first(getattr(jit_class, name)))
    return True


def _emitted_first(method):
    """`method`, after a library that was only linked is optimized and emitted."""
    def wrapper(self, *args, **kwargs):
        if getattr(self, "_cnnc_deferred", False):
            self._cnnc_deferred = False
            self._optimize_final_module()
            self._final_module.verify()
            self._finalize_final_module()
        return method(self, *args, **kwargs)
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper
