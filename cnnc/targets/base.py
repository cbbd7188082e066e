"""What a compilation target is: everything the compiler does differently per target.

A target renders the same kernel groups (kernels.build gives each the same context on
every target) from its own template folder, and decides:

* the part of a kernel's context only its templates read -- the loop schedule of a CPU
  kernel, the tiles and launch geometry of a CUDA one, the comments that describe them
  (`extend`);
* how host code spells a fresh array and a reshaped view of one (`alloc`, `view`), and
  how a one-element result comes back from a step (`host_number`);
* how parameter-only ops (folded batchnorm, packed kernels) are computed once per
  parameter set (`prepare`);
* whether its kernels read packed kernel layouts (`packs_kernels`, for the pack_kernels
  pass);
* what it needs to run and how a generated module is loaded and wrapped (`require`,
  `load`, `model_class`).

A new target is a subclass here and a template folder beside `templates/cpu`.
"""

from __future__ import annotations

from ..errors import CnncError, Diagnostic


class Prepare:
    """Renders the parameter-only ops of a graph as host lines (and, on targets that
    compute them with kernels, those kernels' sources)."""

    def __init__(self, namer):
        self.namer = namer
        self.sources: list[str] = []
        self.named_sources: dict[str, str] = {}    # those of its kernels the kernel store
                                                   # shares, by name

    def lines(self, graph, node, params: str = "p", every_step: bool = False) -> list[str]:
        """Host lines computing `node`'s derived parameter into `params`; `every_step`:
        in a training step (run every step, not once per parameter set)."""
        raise NotImplementedError


class Target:
    name = ""
    templates = ""               # the folder of its templates under templates/
    packs_kernels = False        # its dot-product kernels read packed kernel layouts
    reports_resources = False    # kernel_resources() tells registers, shared memory, ...
    # Its model class builds from the module alone (model_class.from_cache), so a request
    # compiled before may load its module without lowering (runtime/direct.py).
    loads_direct = False
    # Names the generated module defines at its top level (kernels must not take them).
    module_names: frozenset[str] = frozenset({
        "forward", "forward_prepared", "prepare", "init_params", "param_views", "np", "math"})

    def __repr__(self) -> str:
        return f"<target {self.name}>"

    # --- code generation ---
    def extend(self, kernel, graph) -> None:
        """Add what this target's templates read to `kernel.context`."""

    @staticmethod
    def dtype_expr(dtype: str) -> str:
        """The host expression of an array's dtype: the module's float type (DTYPE) for
        float32 values, numpy's name for the others (the uint8 codes of pool maxima)."""
        return "DTYPE" if dtype == "float32" else f"np.{dtype}"

    def alloc(self, shape: str, dtype: str = "float32") -> str:
        """A host expression making a new array of `shape` (a tuple expression): of the
        module's float type, or of `dtype` when that is another (uint8 codes)."""
        raise NotImplementedError

    def alloc_slot(self, shape: str, dtype: str = "float32") -> str:
        """alloc() for a workspace slot: made once per batch size, read and written by
        every call's kernels."""
        return self.alloc(shape, dtype)

    def view(self, expr: str, shape: str, remembered: bool) -> str:
        """`expr` reshaped to `shape`; `remembered`: the same array every call (workspace
        slots, parameters), so a target may keep the view."""
        return f"{expr}.reshape({shape})"

    def host_number(self, var: str) -> str:
        """How a step returns a one-element result held in `var`."""
        raise NotImplementedError

    def prepare(self, namer) -> Prepare:
        raise NotImplementedError

    # --- running ---
    def require(self) -> None:
        """Raise CnncRuntimeError saying what is missing when modules cannot run here."""

    def build_file(self, path, progress: bool = False) -> int:
        """Compile the standalone module at `path`'s kernels ahead of its first import
        (`cnnc compile -o`); how many. Targets that cannot here compile nothing."""
        return 0

    def load(self, path, name: str, source: str, generated):
        """Import the generated module at `path` as `name` from its verified `source`
        (`generated()`: the code generator's output, when the target needs more of it)."""
        raise NotImplementedError

    @property
    def model_class(self):
        raise NotImplementedError

    def bind_rank(self, local_rank: int) -> None:
        """Choose this process's device as a rank of a data-parallel run (the rank's
        index among the ranks on its machine); the CPU has nothing to choose."""

    # --- profiling (cnnc profile) ---
    def roofs(self, remeasure: bool = False):
        """The machine's measured peak FLOP/s and bandwidth (runtime/roofs.py), cached
        (`remeasure`: measured again, and the cache replaced)."""
        raise NotImplementedError

    def profile_notes(self) -> list[str]:
        """What a reader of this target's profile must know about its figures."""
        return []

    def kernel_resources(self, compiled, cc) -> list[dict]:
        """Registers, shared memory and spills of every kernel (GPU targets)."""
        raise CnncError(Diagnostic(f"--target {self.name} has no kernel resources to report "
                                   "(they are a GPU target's: --target cuda)"))

    def write_device_code(self, compiled, directory, cc) -> str:
        """Write every kernel's device code (PTX) to `directory`; a line saying what."""
        raise CnncError(Diagnostic(f"--ptx needs --target cuda, not --target {self.name}"))
