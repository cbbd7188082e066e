"""The module cache: generated modules live in a directory keyed by what produced them.

`$CNNC_CACHE_DIR` (default: `$XDG_CACHE_HOME/cnnc`, else `~/.cache/cnnc`) holds one folder
per (model source, options, target, cnnc version) hash, with the module and Numba's
on-disk cache of its compiled kernels beside it (`__pycache__`), so a second process
imports the module and loads machine code instead of compiling.

Nothing is used from the cache unverified:

* a module and its kernel index are written with their SHA-256 beside them
  (`NAME.sha256`, written after the file, each atomically) and read only when the hash
  matches; otherwise they are generated again. A module is executed from its verified
  text, compiled once into a code file beside it (`__pycache__/NAME.TAG.code`, verified
  the same way, and used only for the same text, path and Python bytecode version);
* Numba's cache files (`__pycache__/*.nbi`, `*.nbc`) get the same sidecar once this
  process is done with them (at exit); before a module's kernels can load them, those
  without a matching sidecar -- truncated, emptied, overwritten, swapped -- are deleted,
  and Numba compiles again;
* the machine code of Numba's runtime (`numba-runtime/`, warm_load.py) is written with
  its hash beside it too, and compiled again where it does not verify.

A cache that cannot be written is a CnncRuntimeError naming it and what to do; a warm
read-only cache is used as it is (Numba then compiles into its own cache).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import json
import marshal
import os
import sys
import threading
import types
from pathlib import Path

from ..errors import CnncRuntimeError
from ..resources import grammar_path, templates_dir
from ..util import atomic_write_bytes, cache_root
from ..version import __version__

SIDECAR = ".sha256"
_LOCK = threading.RLock()            # imports and cache writes of this process


@functools.cache
def code_fingerprint() -> str:
    """A hash of cnnc's own code, grammar and templates: a cached module is reused only
    by the same compiler that wrote it (not just the same version number)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    files = _files(package, ".py") + _files(templates_dir(), ".j2") + [str(grammar_path())]
    for path in files:
        # the path from its folder ("runtime/cache.py"), as a string: pathlib took 3 ms
        folder, name = os.path.split(path)
        digest.update(os.path.join(os.path.basename(folder), name).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def _files(root, suffix: str) -> list[str]:
    """The files under `root` ending in `suffix`, in a fixed order (os.walk: a warm start
    took 7 ms in pathlib's rglob, 1 ms here)."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        found += [os.path.join(folder, n) for n in sorted(names) if n.endswith(suffix)]
    return found


def cache_key(**parts) -> str:
    blob = json.dumps(dict(parts, version=__version__, code=code_fingerprint()),
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def module_path(model_name: str, key: str) -> Path:
    return cache_root() / f"{model_name}-{key}" / f"{model_name}.py"


def _cannot_write(path: Path, error: OSError) -> CnncRuntimeError:
    root = cache_root()
    reason = error.strerror or str(error)
    if root.exists() and not root.is_dir():
        reason = "it is a file, not a folder"
    return CnncRuntimeError(
        f"cannot write the module cache {root} ({reason}, at {path}); point CNNC_CACHE_DIR "
        f"at a writable folder, or delete the cache to rebuild it")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_verified(path: Path, data: bytes, sidecar: bool = True, durable: bool = True) -> None:
    """`path` and its hash beside it, each written atomically (the hash last: a crash in
    between leaves a file that does not verify, and is rebuilt). `sidecar=False`: a file
    whose name is already its hash; `durable=False`: not flushed to disk (util's
    atomic_write_bytes)."""
    try:
        atomic_write_bytes(path, data, durable)
        if sidecar:
            atomic_write_bytes(path.with_name(path.name + SIDECAR), sha256(data).encode(),
                               durable)
    except OSError as e:
        raise _cannot_write(path, e) from None


def read_verified(path: Path) -> bytes | None:
    """The bytes of `path` if its hash beside it matches, else None."""
    try:
        data = path.read_bytes()
        recorded = path.with_name(path.name + SIDECAR).read_bytes().decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return data if sha256(data) == recorded else None


def ensure_module(path: Path, generate) -> str:
    """The module's source: read from the cache when it verifies, else generated (by
    `generate()`) and written with its hash."""
    with _LOCK:
        data = read_verified(path)
        if data is not None:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        source = generate()
        write_verified(path, source.encode("utf-8"))
        return source


def import_module(path: Path, name: str, source: str | None = None):
    """Import a generated module from `path` under the unique module name `name`,
    executing `source` (its verified text; read from `path` when not given) rather than
    any bytecode cache. Numba's cache files beside it are checked first (check_numba_cache).

    Numba looks modules up by name when it compiles or loads cached code, so the module is
    registered in sys.modules before it runs."""
    with _LOCK:
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        if source is None:
            source = Path(path).read_text(encoding="utf-8")
        check_numba_cache(Path(path))
        module = types.ModuleType(name)
        module.__file__ = str(path)
        sys.modules[name] = module
        try:
            exec(_compiled(Path(path), source), module.__dict__)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module


def _compiled(path: Path, source: str):
    """The code object of `source`, the verified text of the module at `path`: loaded from
    the code file beside it when that verifies and was compiled from the same text at the
    same path by the same bytecode version, else compiled and written there (compiling
    mnist_cnn's module and its kernel files took 18 ms of a 0.4 s warm start). A cache
    that cannot be written is left as it is: the text is compiled each time."""
    stamp = sha256(b"\0".join((importlib.util.MAGIC_NUMBER, str(path).encode("utf-8"),
                               source.encode("utf-8")))).encode("ascii") + b"\n"
    cached = path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.code"
    data = read_verified(cached)
    if data is not None and data.startswith(stamp):
        try:
            return marshal.loads(data[len(stamp):])
        except (EOFError, ValueError, TypeError):
            pass
    code = compile(source, str(path), "exec")
    try:
        # not flushed to disk: one that a crash damages does not verify, and is rebuilt
        # (two flushes per module, 1-3 ms, in runs that compile every module once: the
        # NUMBA_DISABLE_JIT tests)
        write_verified(cached, stamp + marshal.dumps(code), durable=False)
    except CnncRuntimeError:
        pass
    return code


# --- Numba's cache files -----------------------------------------------------------------

_SEALED: set[Path] = set()           # source files whose Numba cache is sealed at exit


def _numba_files(source: Path) -> list[Path]:
    folder = source.parent / "__pycache__"
    if not folder.is_dir():
        return []
    stem = source.stem + "."
    return sorted(p for p in folder.iterdir()
                  if p.name.startswith(stem) and p.suffix in (".nbi", ".nbc"))


def check_numba_cache(source: Path) -> None:
    """Delete Numba's cache files of `source` that do not match the hash this process
    family recorded beside them (or have none): Numba compiles those kernels again
    instead of loading damaged or misplaced machine code. Sealing at exit records the
    hashes of what this process leaves."""
    for path in _numba_files(source):
        if read_verified(path) is None:
            for stale in (path, path.with_name(path.name + SIDECAR)):
                try:
                    stale.unlink()
                except FileNotFoundError:
                    pass
                except OSError:                   # a read-only cache: Numba will not use
                    break                         # its files there either
    _SEALED.add(source)


def seal(source: Path) -> None:
    """Record the hash of each Numba cache file of `source` that has none (or a stale
    one); files already verified keep theirs."""
    for path in _numba_files(source):
        if read_verified(path) is None:
            try:
                data = path.read_bytes()
                atomic_write_bytes(path.with_name(path.name + SIDECAR), sha256(data).encode())
            except OSError:
                pass                              # read-only: nothing to record


def seal_numba_cache() -> None:
    """Seal the Numba cache files of every module this process loaded (run at exit;
    kernels are also sealed as soon as they are compiled: kernel_store.seal_compiled)."""
    for source in sorted(_SEALED):
        seal(source)


atexit.register(seal_numba_cache)
