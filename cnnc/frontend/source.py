"""Reading model sources given as a path or as text."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CnncError, Diagnostic
from ..util import is_source_text
from .checker import decode


def read_source(path_or_text: str | os.PathLike) -> tuple[str, str]:
    """(text, file name); which of the two it was given, util.is_source_text says."""
    if is_source_text(path_or_text):
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

