"""Where the grammar and the templates are.

In a source checkout they sit at the top of the repository (`grammar/`, `templates/`); an
installed package carries them inside as `cnnc/grammar` and `cnnc/templates` (pyproject
maps the folders there). Both layouts are looked up, installed first.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cnnc is installed without its '{name}' folder "
                            f"(looked in {_PACKAGE} and {_PACKAGE.parent})")


@cache
def grammar_path() -> Path:
    return _find("grammar") / "cnnc.lark"


@cache
def templates_dir() -> Path:
    return _find("templates")
