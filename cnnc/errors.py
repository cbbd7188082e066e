"""Diagnostics: errors that point at a file, a line and a column.

Every problem with user input is reported as a :class:`Diagnostic` and rendered the way
compilers do::

    model.cnn:4:5: error: unknown op 'conv'
        conv(32, kernel=3)
        ^~~~
    hint: did you mean 'conv2d'?

A check collects diagnostics in a :class:`Diagnostics` sink and raises :class:`CnncError`
at the end, so one run reports every error it could recover from, not just the first.
Problems with data and weight files carry no position: they render as one line naming
the file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

MAX_ERRORS = 50


@dataclass(frozen=True)
class Loc:
    """A span in a source file: 1-based line and column, and its length on that line."""

    line: int
    col: int
    length: int = 1


@dataclass(frozen=True)
class Diagnostic:
    message: str
    file: str | None = None
    loc: Loc | None = None
    source_line: str | None = None
    hint: str | None = None
    severity: str = "error"
    notes: tuple["Diagnostic", ...] = ()

    def render(self) -> str:
        where = self.file or "cnnc"
        if self.loc is not None:
            where = f"{where}:{self.loc.line}:{self.loc.col}"
        lines = [f"{where}: {self.severity}: {self.message}"]
        if self.loc is not None and self.source_line is not None:
            text = self.source_line.rstrip("\n").expandtabs(1)
            # Long lines are cut around the column so the caret stays readable.
            col = self.loc.col - 1
            start = max(0, col - 60) if len(text) > 120 else 0
            shown = text[start:start + 120]
            prefix = "..." if start else ""
            suffix = "..." if start + 120 < len(text) else ""
            lines.append(f"    {prefix}{shown}{suffix}")
            width = max(1, min(self.loc.length, len(shown) - (col - start)))
            lines.append("    " + " " * (len(prefix) + col - start) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        for note in self.notes:
            lines.append(note.render())
        return "\n".join(lines)


class CnncError(Exception):
    """Bad user input: carries one or more diagnostics; the command exits with status 2."""

    exit_status = 2

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        text = "\n".join(d.render() for d in self.diagnostics)
        errors = sum(d.severity == "error" for d in self.diagnostics)
        if errors > 1:
            text += f"\n{errors} errors generated."
        return text


class FileError(CnncError):
    """A data, weight or checkpoint file that cannot be used: one line naming the file."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        super().__init__(Diagnostic(problem, file=self.path))


class CnncRuntimeError(Exception):
    """A failure while running (not the user's input): exit status 1."""

    exit_status = 1


@dataclass
class Diagnostics:
    """Collects diagnostics for one source file."""

    file: str
    lines: list[str]
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, loc: Loc | None = None, hint: str | None = None,
              notes: tuple[Diagnostic, ...] = ()) -> None:
        if len(self.items) >= MAX_ERRORS:
            return
        self.items.append(Diagnostic(message, self.file, loc, self._line(loc), hint,
                                     notes=notes))
        if len(self.items) == MAX_ERRORS:
            self.items.append(Diagnostic("too many errors; stopping", self.file,
                                         severity="note"))

    def note(self, message: str, loc: Loc | None) -> Diagnostic:
        return Diagnostic(message, self.file, loc, self._line(loc), severity="note")

    def _line(self, loc: Loc | None) -> str | None:
        if loc is None or not 1 <= loc.line <= len(self.lines):
            return None
        return self.lines[loc.line - 1]

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise CnncError(self.items)


def did_you_mean(word: str, choices) -> str | None:
    """A hint naming the closest of `choices` to a misspelled `word`, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
