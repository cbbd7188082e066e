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
    from numba.core.runtime import rtsys

    def load_overload(sig, target_context):
        rtsys.initialize(target_context)       # the NRT, which the machine code calls
        with guard():
            return load(sig, target_context)
    cache.load_overload = load_overload
    return True
