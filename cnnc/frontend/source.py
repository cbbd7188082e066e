"""Reading model sources given as a path or as text."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CnncError, Diagnostic
from .checker import decode


def read_source(path_or_text: str | os.PathLike) -> tuple[str, str]:
    """(text, file name). A str with a newline is text; one naming an existing file is a
    path (even `{x}.cnn`); else one with a brace is text, anything else a path."""
    if isinstance(path_or_text, str) and ("\n" in path_or_text or (
            "{" in path_or_text and not _is_file(path_or_text))):
        return path_or_text.replace("\r\n", "\n").replace("\r", "\n"), "<string>"
    path = Path(path_or_text)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CnncError(Diagnostic("no such file", str(path))) from None
    except IsADirectoryError:
        raise CnncError(Diagnostic("is a directory, not a model file", str(path))) from None
    except OSError as e:
        raise CnncError(Diagnostic(f"cannot read: {e.strerror}", str(path))) from None
    return decode(data, str(path)), str(path)


def _is_file(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).is_file()
    except (OSError, ValueError):
        return False
