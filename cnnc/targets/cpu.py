"""The CPU target: `@njit(parallel=True)` kernels from templates/cpu, numpy host code.

What is CPU-only: the loop schedule of a convolution (chosen from its kernel layout and
channel counts), the fixed chunk count of deterministic reductions, the comments saying
which loop runs in parallel, numpy arrays on the host, derived parameters computed by
numpy once per parameter set, and loading through the shared kernel store. The schedules
and the host's numpy code are in cpu_schedules.py, imported when code is generated: a
model loaded from the cache never imports them (nor the IR and code generator they use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Prepare, Target

if TYPE_CHECKING:
    from ..codegen.kernels import Kernel


class CpuTarget(Target):
    """`vector_bits` (256 or 512) sizes the register tiles of the GEMM kernels; by default
    the width the kernels get on this machine (runtime/cpu_features.py). The sums run in
    the same order whatever the tiles, so results do not depend on it: only the source."""

    name = "cpu"
    templates = "cpu"
    packs_kernels = True
    loads_direct = True

    def __init__(self, vector_bits: int | None = None):
        self._vector_bits = vector_bits

    @property
    def vector_bits(self) -> int:
        if self._vector_bits is None:
            from ..runtime.cpu_features import vector_bits
            self._vector_bits = vector_bits()
        return self._vector_bits

    def extend(self, kernel: Kernel, graph) -> None:
        from .cpu_schedules import EXTENSIONS
        kernel.context.parallel = True
        kernel.context.lanes = self.vector_bits // 32
        EXTENSIONS[kernel.template](kernel, graph)

    def alloc(self, shape: str, dtype: str = "float32") -> str:
        return f"np.empty({shape}, dtype={self.dtype_expr(dtype)})"

    def alloc_slot(self, shape: str, dtype: str = "float32") -> str:
        # on a cache line (the module's host_empty): the kernels' 512-bit loads and stores
        # of a slot are then never split across two lines
        return f"host_empty({shape}, {self.dtype_expr(dtype)})"

    def host_number(self, var: str) -> str:
        return f"{var}[0]"

    def prepare(self, namer) -> Prepare:
        from .cpu_schedules import NumpyPrepare
        return NumpyPrepare(namer)

    def build_file(self, path, progress: bool = False) -> int:
        """Compile the kernels of the standalone module at `path` into Numba's cache
        beside it (runtime/build.py); how many it ran."""
        from ..runtime.build import build_file
        return build_file(path, progress=progress)

    def load(self, path, name: str, source: str, generated):
        """Import the module, then point its kernels at the shared kernel store's copies
        (compiled once per process for every model holding the same kernel)."""
        from ..runtime import kernel_store
        from ..runtime.cache import import_module
        from ..runtime.cpu_features import widen
        widen()                 # before Numba's code generator starts: 512-bit vectors
        module = import_module(path, name, source)
        kernel_store.link(module, path, generated)
        return module

    @property
    def model_class(self):
        from ..runtime.model import CompiledModel
        return CompiledModel

    def roofs(self, remeasure: bool = False):
        from ..runtime.roofs import cpu_roofs
        return cpu_roofs(remeasure)
