"""Calls into a generated module: serialized where Numba's threading layer needs it,
and followed by sealing the kernels they compiled."""

from __future__ import annotations

import threading
from contextlib import nullcontext

from .kernel_store import seal_compiled

_SERIAL = threading.RLock()


class _ModuleCall:
    """A call into a generated module: serialized when Numba's threading layer needs it
    (_one_at_a_time); afterwards, the kernels it compiled are sealed in the cache."""

    def __init__(self, module):
        self.module = module
        self.guard = _one_at_a_time()

    def __enter__(self):
        self.guard.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            seal_compiled(self.module)
        finally:
            self.guard.__exit__(*exc)
        return False


def _one_at_a_time():
    """A context for a call into a generated module: calls from several threads run
    together, except with Numba's workqueue threading layer, which aborts when two
    threads enter parallel code at once (and before the layer is known)."""
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:                      # no parallel code has run yet
        layer = None
    return _SERIAL if layer in (None, "workqueue") else nullcontext()
