"""Small helpers shared across cnnc: atomic file writes, the standard streams."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def flush_standard_streams() -> None:
    """Flush stdout and stderr before a process ends early or skips its shutdown's work
    (a closed or broken stream is left as it is)."""
    import sys
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def is_source_text(path_or_text) -> bool:
    """Whether a model source given as a path or as text is the text: a str with a
    newline is text; one naming an existing file is a path (even `{x}.cnn`); else one
    with a brace is text, anything else a path."""
    return isinstance(path_or_text, str) and (
        "\n" in path_or_text or ("{" in path_or_text and not _is_file(path_or_text)))


def _is_file(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).is_file()
    except (OSError, ValueError):
        return False


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                      # not on Linux
        return os.cpu_count() or 1


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the new, never a part.

    The data goes to a temporary file in the same folder, is flushed to disk, and is
    renamed over the target; on any failure the target is left untouched. `durable=False`
    skips the flush to disk, for a cache file whose hash is checked when it is read: a
    crash may leave it empty or stale, and it is rebuilt.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output(path, *, inputs=(), directory: bool = False, flag: str = "-o") -> Path:
    """`path` as an output of a command reading `inputs`: a CnncError (exit 2, nothing
    written) when it is one of the inputs, when it is a folder where a file is wanted or a
    file where a folder is, or when a folder above it is a file."""
    from .errors import CnncError, Diagnostic
    path = Path(path)

    def refuse(problem: str):
        raise CnncError(Diagnostic(f"{flag} {path}: {problem}"))

    for given in inputs:
        if given is not None and _same_file(path, Path(given)):
            refuse(f"is the input file {given}; no command writes over its own input")
    for parent in path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            refuse(f"{parent} is a file, not a folder")
    if directory and path.exists() and not path.is_dir():
        refuse("is a file; a folder is wanted here")
    if not directory and path.is_dir():
        refuse("is a folder; a file is wanted here")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def cache_root() -> Path:
    """cnnc's cache folder: $CNNC_CACHE_DIR, else $XDG_CACHE_HOME/cnnc or ~/.cache/cnnc."""
    env = os.environ.get("CNNC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnc"
