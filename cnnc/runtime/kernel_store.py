"""Shared compiled kernels: one file per distinct kernel, reused by every model.

A loaded model's module is the standalone module `cnnc compile` writes (kernels inline).
Before it runs, `link` points each of its kernel names at a shared copy: the kernel's
source, with the module preamble, in `$CNNC_CACHE_DIR/kernels/k_<hash>.py`. Numba
compiles lazily, so the module's own copies are never compiled; the shared copy is
compiled once per process for every model and fusion setting that contains the same
kernel, and loaded from Numba's on-disk cache by later processes.

The kernels' sources come from the code generator (GeneratedModule.kernels), not from
parsing the module; which shared file each kernel is goes to an index beside the module
(`kernels.json`), written when the module is generated and read when it is loaded from
the cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..util import atomic_write_text
from .cache import cache_root, import_module

INDEX = "kernels.json"
_LOADED: dict[str, object] = {}


def store(kernels: dict[str, str], preamble: str) -> dict[str, str]:
    """Write a shared file for each kernel (name -> source) that has none; returns the
    index: kernel name -> its file's key."""
    index = {}
    for name, source in kernels.items():
        text = preamble.rstrip() + "\n\n\n" + source
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
        path = cache_root() / "kernels" / f"k_{key}.py"
        if not path.exists():
            atomic_write_text(path, text)
        index[name] = key
    return index


def _read_index(path: Path) -> dict[str, str] | None:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(index, dict) and all(isinstance(k, str) and isinstance(v, str)
                                         for k, v in index.items())
    return index if ok else None


def shared_kernel(name: str, key: str):
    if key not in _LOADED:
        path = cache_root() / "kernels" / f"k_{key}.py"
        module = import_module(path, f"cnnc_kernel_{key}")
        _LOADED[key] = getattr(module, name)
    return _LOADED[key]


def link(module, module_path, generate) -> None:
    """Replace the module's kernels with their shared compiled copies. The index beside
    `module_path` says which; when it is missing or unreadable, `generate()` (the code
    generator's GeneratedModule) supplies the sources and the index is written."""
    index_path = Path(module_path).parent / INDEX
    index = _read_index(index_path)
    if index is None or not all((cache_root() / "kernels" / f"k_{key}.py").exists()
                                for key in index.values()):
        generated = generate()
        index = store(generated.kernels, generated.preamble)
        atomic_write_text(index_path, json.dumps(index, indent=1, sort_keys=True))
    for name, key in index.items():
        setattr(module, name, shared_kernel(name, key))
