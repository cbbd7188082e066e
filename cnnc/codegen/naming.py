"""Identifiers in generated code: only from a safe alphabet, never raw user text.

Layer names are already restricted by the checker (letters, digits, `_`, `.`, `-`); they
are still mapped through :func:`ident` so that nothing from a model file reaches code as
anything but a plain identifier or a repr()-quoted string.
"""

from __future__ import annotations

import keyword
import re

_BAD = re.compile(r"[^A-Za-z0-9_]")
SHORT = {"bias_add": "bias", "maxpool2d": "maxpool", "avgpool2d": "avgpool",
         "global_avgpool2d": "gavgpool", "global_maxpool2d": "gmaxpool",
         "batchnorm": "bn", "leaky_relu": "lrelu"}


def ident(text: str) -> str:
    """A valid, non-keyword Python identifier derived from `text`."""
    name = _BAD.sub("_", text)[:64] or "_"
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_"
    return name


def constant(text: str) -> str:
    return ident(text).upper()


class Namer:
    """Hands out unique identifiers."""

    def __init__(self, taken=()):
        self.taken = set(taken)
        self._next: dict[tuple[str, str], int] = {}    # the next number to try per name

    def __call__(self, base: str, suffix: str = "") -> str:
        """`base + suffix`, or `base_1 + suffix`, ... when taken."""
        base = ident(base)
        name, i = base + suffix, self._next.get((base, suffix), 1)
        while name in self.taken:
            name = f"{base}_{i}{suffix}"
            i += 1
        self._next[base, suffix] = i
        self.taken.add(name)
        return name


def safe_comment(text: str) -> str:
    """Text made safe to sit after `# ` on one line of generated code."""
    out = []
    for ch in text:
        if ch == "\t":
            out.append("    ")
        elif ch.isprintable() and ch not in "\u2028\u2029\x85":
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    return "".join(out)
