"""Shared compiled kernels: one file per distinct kernel, reused by every model.

A loaded model's module is the standalone module `cnnc compile` writes (kernels inline).
Before it runs, `link` points each of its kernel names at a shared copy: the kernel's
source, with the module preamble, in `$CNNC_CACHE_DIR/kernels/k_<hash>.py`. Numba
compiles lazily, so the module's own copies are never compiled; the shared copy is
compiled once per process for every model and fusion setting that contains the same
kernel, and loaded from Numba's on-disk cache by later processes.
"""

from __future__ import annotations

import ast
import hashlib

from ..util import atomic_write_text
from .cache import cache_root, import_module

_LOADED: dict[str, object] = {}


def preamble(dtype: str) -> str:
    from ..codegen.render import render_code
    return render_code("cpu/preamble.j2", dtype=dtype)


def kernel_sources(module_source: str) -> dict[str, str]:
    """name -> source (decorator included) of every @njit function of a module."""
    tree = ast.parse(module_source)
    lines = module_source.splitlines(keepends=True)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", "") == "njit"
                for d in node.decorator_list):
            start = node.decorator_list[0].lineno - 1
            out[node.name] = "".join(lines[start:node.end_lineno])
    return out


def shared_kernel(name: str, source: str, dtype: str = "float32"):
    text = preamble(dtype) + "\n\n" + source
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
    if key not in _LOADED:
        path = cache_root() / "kernels" / f"k_{key}.py"
        if not path.exists():
            atomic_write_text(path, text)
        module = import_module(path, f"cnnc_kernel_{key}")
        _LOADED[key] = getattr(module, name)
    return _LOADED[key]


def link(module, module_source: str) -> None:
    """Replace the module's kernels with their shared compiled copies (the preamble's
    helpers stay: every kernel file has its own)."""
    dtype = module.DTYPE.__name__
    helpers = set(kernel_sources(preamble(dtype)))
    for name, source in kernel_sources(module_source).items():
        if name not in helpers:
            setattr(module, name, shared_kernel(name, source, dtype))
