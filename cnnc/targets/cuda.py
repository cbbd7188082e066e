"""The CUDA target: `numba.cuda` kernels from templates/cuda, device-resident host code.

What is CUDA-only: tiles and launch geometry (cuda_tiles.py), device arrays on the host
side (`cuda.device_array`, remembered views of workspace and parameter buffers), derived
parameters computed by small device kernels, what running needs (numba-cuda and a GPU
or the simulator), PTX of every kernel and ptxas's report of its resources.
"""

from __future__ import annotations

import ast
from types import SimpleNamespace

from .base import Prepare, Target


class _NumpyToMath(ast.NodeTransformer):
    """`np.sqrt(v)` -> `math.sqrt(v)`: the prepare ops' numpy expressions on scalars."""

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id == "np":
            return ast.Attribute(ast.Name("math", ast.Load()), node.attr, ast.Load())
        return node


class DevicePrepare(Prepare):
    """Device kernels for the parameter-only (`prepare`) ops fold_batchnorm emits: each an
    elementwise expression over flat arrays, inputs shaped like a channel vector
    broadcast over the last axis. Identical kernels are rendered once."""

    def __init__(self, namer):
        super().__init__(namer)
        self._by_source: dict[str, str] = {}

    def lines(self, graph, node, params: str = "p", every_step: bool = False) -> list[str]:
        # the code generator's, imported when code is generated (not to load a model)
        from ..codegen.exprs import f32, substitute
        from ..codegen.render import render_code
        from ..ir import ops
        from . import cuda_tiles
        op = ops.get(node.op)
        out_type = graph.type(node.output)
        names, channel = {}, None
        for role, value in zip(op.inputs, node.inputs):
            if graph.type(value).numel == out_type.numel:
                names[role] = f"{role}[i]"
            else:
                assert graph.type(value).shape == out_type.shape[-1:], (node, value)
                names[role] = f"{role}[c]"
                channel = channel or role
        names.update({k: f32(v) for k, v in node.attrs.items() if isinstance(v, float)})
        expr = ast.unparse(_NumpyToMath().visit(ast.parse(substitute(op.expr, names),
                                                          mode="eval")))
        context = SimpleNamespace(name="__name__", params=list(op.inputs) + ["out"],
                                  expr=expr, channel=channel, doc=f"{node.op}: {op.doc}")
        source = render_code("cuda/prepare.j2", p=context)
        name = self._by_source.get(source)
        if name is None:
            name = self.namer(f"{node.op}_prepare")
            self._by_source[source] = name
            self.sources.append(source.replace("__name__", name).rstrip() + "\n")
        size = out_type.numel
        threads = cuda_tiles.ELEMENT_THREADS
        args = [f"{params}[{v!r}].reshape(-1)" for v in node.inputs] + ["value.reshape(-1)"]
        return [f"# {node.op}: {op.doc}",
                f"value = cuda.device_array({tuple(out_type.shape)}, dtype=DTYPE)",
                f"{name}[blocks({size}, {threads}), {threads}](",
                *[f"    {a}," for a in args],
                ")",
                f"{params}[{node.output!r}] = value"]


class CudaTarget(Target):
    name = "cuda"
    templates = "cuda"
    packs_kernels = False         # tiles of the Keras layouts load coalesced as they are
    reports_resources = True      # ptxas's registers, shared memory and spills per kernel
    module_names = Target.module_names | {
        "forward_device", "cuda", "blocks", "split_k", "scratch", "to_device", "to_host",
        "DeviceParams", "on_device", "as_device", "device_input", "device_params",
        "device_zeros", "view"}

    def extend(self, kernel, graph) -> None:
        from . import cuda_tiles
        cuda_tiles.extend(kernel, graph)

    def alloc(self, shape: str, dtype: str = "float32") -> str:
        return f"cuda.device_array({shape}, dtype={self.dtype_expr(dtype)})"

    def view(self, expr: str, shape: str, remembered: bool) -> str:
        # A device array view takes microseconds of Python to make: the module's view()
        # remembers the views of arrays that are the same every call.
        return f"view({expr}, {shape})" if remembered else f"{expr}.reshape({shape})"

    def host_number(self, var: str) -> str:
        return var                    # a one-element device array; the caller copies it

    def prepare(self, namer) -> Prepare:
        return DevicePrepare(namer)

    def require(self) -> None:
        from ..runtime import cuda
        cuda.require()

    def load(self, path, name: str, source: str, generated):
        from ..runtime.cache import import_module
        self.require()                # a GPU or the simulator, before the module loads
        return import_module(path, name, source)

    @property
    def model_class(self):
        from ..runtime.cuda import CudaCompiledModel
        return CudaCompiledModel

    def bind_rank(self, local_rank: int) -> None:
        """Rank r of a machine uses GPU r mod (GPUs visible)."""
        from numba import cuda
        cuda.select_device(local_rank % max(len(cuda.gpus), 1))

    def roofs(self, remeasure: bool = False):
        from ..runtime import cuda
        from ..runtime.roofs import cuda_roofs
        return cuda_roofs(cuda.simulated(), remeasure)

    def profile_notes(self) -> list[str]:
        from ..runtime import cuda
        if cuda.simulated():
            return ["Numba's CUDA simulator ran the kernels on the CPU: its times and roofs "
                    "say nothing about a GPU"]
        return []

    def kernel_resources(self, compiled, cc) -> list[dict]:
        """Every CUDA kernel of the compiled module (training kernels too when it trains)
        with its registers per thread, static shared memory, stack and spilled bytes, as
        ptxas reports them for the PTX numba-cuda compiles for `cc`."""
        from dataclasses import asdict

        from ..runtime import ptx
        module = ptx.load_generated(compiled.generate().source, compiled.model.name)
        arch = f"sm_{cc[0]}{cc[1]}"
        rows = []
        for kernel in ptx.compile_module(module, ccs=(cc,)):
            info = ptx.ptxas(kernel.ptx, arch)
            rows.append({"name": kernel.name, "cc": f"{cc[0]}.{cc[1]}", "arch": arch,
                         **asdict(info)})
        return rows

    def write_device_code(self, compiled, directory, cc) -> str:
        """DIR/<kernel>.ptx for every kernel of the module (one file per launch signature
        when a kernel has several: <kernel>.<i>.ptx)."""
        from collections import Counter

        from ..runtime import ptx
        from ..util import atomic_write_text
        module = ptx.load_generated(compiled.generate().source, compiled.model.name)
        kernels = ptx.compile_module(module, ccs=(cc,))
        directory.mkdir(parents=True, exist_ok=True)
        counts = Counter(k.name for k in kernels)
        seen: Counter = Counter()
        for k in kernels:
            stem = k.name if counts[k.name] == 1 else f"{k.name}.{seen[k.name]}"
            seen[k.name] += 1
            atomic_write_text(directory / f"{stem}.ptx", k.ptx)
        return (f"{directory}/: PTX of {len(kernels)} kernels for compute capability "
                f"{cc[0]}.{cc[1]}")
