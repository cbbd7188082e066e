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

from .cache import _LOCK, cache_root, import_module, read_verified, seal, write_verified
from .warm_load import load_without_refresh

INDEX = "kernels.json"
_LOADED: dict[str, object] = {}


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _kernel_path(key: str) -> Path:
    return cache_root() / "kernels" / f"k_{key}.py"


def _kernel_text(key: str) -> str | None:
    """A kernel file's text if it is what its name (the hash of its text) says."""
    try:
        text = _kernel_path(key).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if _key(text) == key else None


def store(kernels: dict[str, str], preamble: str) -> dict[str, str]:
    """Write a shared file for each kernel (name -> source) whose file is missing or
    damaged; returns the index: kernel name -> its file's key (the hash of its text)."""
    index = {}
    for name, source in kernels.items():
        text = preamble.rstrip() + "\n\n\n" + source
        key = _key(text)
        if _kernel_text(key) is None:
            write_verified(_kernel_path(key), text.encode("utf-8"), sidecar=False)
        index[name] = key
    return index


def _read_index(path: Path) -> dict[str, str] | None:
    data = read_verified(path)
    if data is None:
        return None
    try:
        index = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    ok = isinstance(index, dict) and all(isinstance(k, str) and isinstance(v, str)
                                         for k, v in index.items())
    return index if ok else None


def shared_kernel(name: str, key: str, text: str):
    with _LOCK:
        if key not in _LOADED:
            module = import_module(_kernel_path(key), f"cnnc_kernel_{key}", text)
            kernel = getattr(module, name)
            load_without_refresh(kernel)
            _LOADED[key] = kernel
        return _LOADED[key]


def link(module, module_path, generate) -> None:
    """Replace the module's kernels with their shared compiled copies. The index beside
    `module_path` says which; when it or a kernel file is missing or does not verify,
    `generate()` (the code generator's GeneratedModule) supplies the sources again."""
    index_path = Path(module_path).parent / INDEX
    with _LOCK:
        index = _read_index(index_path)
        texts = {key: _kernel_text(key) for key in (index or {}).values()}
        if index is None or any(text is None for text in texts.values()):
            generated = generate()
            index = store(generated.kernels, generated.preamble)
            write_verified(index_path, json.dumps(index, indent=1, sort_keys=True).encode())
            texts = {key: _kernel_text(key) for key in index.values()}
        unsealed = []
        for name, key in index.items():
            kernel = shared_kernel(name, key, texts[key])
            setattr(module, name, kernel)
            unsealed.append((_kernel_path(key), kernel))
        module._cnnc_unsealed = unsealed
        module._cnnc_kernel_files = {name: str(_kernel_path(key)) for name, key in index.items()}


def seal_compiled(module) -> None:
    """Seal the Numba cache files of the module's kernels that have been compiled (or
    loaded) since the last call: another process may use them from now on. Costs nothing
    once every kernel is sealed."""
    unsealed = getattr(module, "_cnnc_unsealed", None)
    if not unsealed:
        return
    with _LOCK:
        still = []
        for path, kernel in unsealed:
            if getattr(kernel, "signatures", None):
                seal(path)
            else:
                still.append((path, kernel))
        module._cnnc_unsealed = still
