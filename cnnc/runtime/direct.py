"""A warm start without the compiler: a request compiled before loads its module directly.

`cnnc.compile(...)` parses, checks and lowers a model before it looks in the module cache,
and on a warm start that was some 0.1 s of a 0.5 s start (importing the front end and the
passes, parsing, lowering), spent to find a module already there. As ccache's direct mode
does, the request itself is hashed:

* the text, or the path with the file's bytes;
* the model, target, fusion rules, loss, optimizer and dtype;
* cnnc's version and its own code.

After a full compile, `remember` writes which module it loaded (`requests/<hash>.json`,
with its SHA-256 beside it). The next identical request loads that module straight from
the cache (`load`). Its compiled model lowers the source only when something asks for
its graph, program or report (`CompiledModel.from_cache`).

A request that would not be hashed the same way twice (an optimizer given as an object,
a path that cannot be read), a target whose model needs its graph to load (CUDA's), or a
missing or damaged record, module or kernel index: the full compile, as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..util import is_source_text
from .cache import cache_key, cache_root, read_verified, write_verified

FOLDER = "requests"
_MODULE = re.compile(r"(\w+)-([0-9a-f]{20})/\1\.py")


class _Stale(Exception):
    """The kernel index beside the module is missing: only the full compile can write it."""


def request_key(path_or_text, target, model, fuse, loss, optimizer, dtype) -> str | None:
    """The hash of a compile request, or None where it cannot stand for the request
    (or the target's model needs its lowered graph to load: Target.loads_direct)."""
    if not target.loads_direct:
        return None
    if is_source_text(path_or_text):             # as frontend.source reads it
        source = {"text": path_or_text}
    elif isinstance(path_or_text, (str, os.PathLike)):
        try:
            data = Path(path_or_text).read_bytes()
        except (OSError, ValueError):
            return None
        source = {"path": str(Path(path_or_text)),
                  "bytes": hashlib.sha256(data).hexdigest()}
    else:
        return None
    if isinstance(fuse, (list, tuple)):
        fuse = list(fuse)
    values = [model, loss, optimizer, dtype] + (fuse if isinstance(fuse, list) else [fuse])
    if not all(v is None or isinstance(v, str) for v in values):
        return None
    return cache_key(request=source, target=target.name, model=model, fuse=fuse, loss=loss,
                     optimizer=optimizer, dtype=dtype)


def _record(key: str) -> Path:
    return cache_root() / FOLDER / f"{key}.json"


def remember(key: str | None, loaded) -> None:
    """Record which module the request `key` loaded (best effort: a cache that cannot
    be written only means the next start compiles again)."""
    if key is None:
        return
    try:
        relative = Path(loaded.module_path).resolve().relative_to(cache_root().resolve())
    except (OSError, ValueError):
        return
    record = {"module": relative.as_posix(), "name": loaded.name,
              "module_name": loaded.module.__name__, "seed": loaded._seed()}
    try:
        write_verified(_record(key), json.dumps(record, sort_keys=True).encode("utf-8"))
    except OSError:
        pass


def load(key: str | None, target):
    """(name, module, path, source, seed) of the module the request `key` loaded before,
    or None (the full compile then runs)."""
    if key is None:
        return None
    data = read_verified(_record(key))
    if data is None:
        return None
    try:
        record = json.loads(data.decode("utf-8"))
        relative, name = record["module"], record["name"]
        module_name, seed = record["module_name"], record["seed"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    match = _MODULE.fullmatch(relative) if isinstance(relative, str) else None
    if (match is None or match.group(1) != name or not isinstance(seed, int)
            or module_name != f"cnnc_{name}_{match.group(2)}"):
        return None
    path = cache_root() / relative
    text = read_verified(path)
    if text is None:
        return None
    try:
        source = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        module = target.load(path, module_name, source, _stale)
    except _Stale:
        return None
    return name, module, path, source, seed


def _stale():
    raise _Stale
