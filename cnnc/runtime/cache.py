"""The module cache: generated modules live in a directory keyed by what produced them.

`$CNNC_CACHE_DIR` (default: `$XDG_CACHE_HOME/cnnc`, else `~/.cache/cnnc`) holds one folder
per (model source, options, target, cnnc version) hash, with the module and Numba's
on-disk cache of its compiled kernels beside it (`__pycache__`), so a second process
imports the module and loads machine code instead of compiling.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from ..resources import grammar_path, templates_dir
from ..util import atomic_write_text
from ..version import __version__


def cache_root() -> Path:
    env = os.environ.get("CNNC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnc"


@functools.cache
def code_fingerprint() -> str:
    """A hash of cnnc's own code, grammar and templates: a cached module is reused only
    by the same compiler that wrote it (not just the same version number)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    files = sorted(package.rglob("*.py")) + sorted(templates_dir().rglob("*.j2")) + \
        [grammar_path()]
    for path in files:
        digest.update(str(path.relative_to(path.parents[1])).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(**parts) -> str:
    blob = json.dumps(dict(parts, version=__version__, code=code_fingerprint()),
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def module_path(model_name: str, key: str) -> Path:
    return cache_root() / f"{model_name}-{key}" / f"{model_name}.py"


def ensure_module(path: Path, generate) -> str:
    """The module's source: read from the cache, or generated and written atomically."""
    if path.exists():
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            pass
    source = generate()
    atomic_write_text(path, source)
    return source


def import_module(path: Path, name: str):
    """Import a generated module from `path` under the unique module name `name`.

    Numba looks modules up by name when it compiles or loads cached code, so the module is
    registered in sys.modules before it runs.
    """
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
