"""The front end: source text -> syntax tree (parser) -> checked program with IR graphs
(checker). `parse` is the whole of it."""

from __future__ import annotations


def parse(path_or_text):
    """Parse and check a model file (a path, or the text itself); returns a Program.

    Raises CnncError with every diagnostic if the source is not a valid program.
    """
    from .checker import check
    from .source import read_source

    text, file = read_source(path_or_text)
    return check(text, file)
