"""The jinja2 environment for kernel and module templates.

Templates fail loudly (undefined variables raise). Code spliced into a template goes
through the `block` filter, which re-indents it to the column of the line it stands on,
so no template counts spaces for spliced code. Loops that a template's literal sizes
make run once (`for j in range(1):`, a register tile one column wide) become an
assignment of the index and their body, one level out.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..resources import templates_dir

if TYPE_CHECKING:
    import jinja2

_SENTINEL = "\x00BLOCK{}\x00"
_SENTINEL_LINE = re.compile(r"^([ \t]*)\x00BLOCK(\d+)\x00[ \t]*\n?", re.MULTILINE)


@cache
def environment() -> jinja2.Environment:
    # imported here: a warm start loads its cached module without rendering, and
    # importing jinja2 took 47 ms of it
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=False,
                             bytecode_cache=bytecode_cache(templates_dir() / "__pycache__"))
    # halves(8) == [4, 2, 1]: the steps of a tree reduction over 8 threads.
    env.globals["halves"] = lambda n: [n >> i for i in range(1, n.bit_length())]
    return env


def bytecode_cache(folder: Path) -> jinja2.BytecodeCache | None:
    """jinja2's cache of the templates' compiled Python code in `folder`, as Python keeps
    a module's beside it in __pycache__: compiling the templates took 0.41 s of a cold
    compile of mnist_cnn's inference (3.0 s). Its files are named by a hash of the
    template's name and hold the checksum of its source, so an edited template compiles
    again. None where the folder cannot be made or written (a read-only install), and a
    file that cannot be written is left out: each process then compiles the templates."""
    import jinja2

    class Cache(jinja2.FileSystemBytecodeCache):
        def dump_bytecode(self, bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    try:
        folder.mkdir(exist_ok=True)
    except OSError:
        return None
    return Cache(str(folder), "%s.jinja2") if os.access(folder, os.W_OK) else None


def render_code(template: str, **context) -> str:
    """Render `template`; `{{ code | block }}` splices code at that line's indentation."""
    env = environment()
    blocks: list[str] = []

    def block(code: str) -> str:
        blocks.append(code)
        return _SENTINEL.format(len(blocks) - 1)

    env.filters["block"] = block
    text = env.get_template(template).render(**context)

    def expand(match: re.Match) -> str:
        indent, index = match.group(1), int(match.group(2))
        code = blocks[index].rstrip("\n")
        if not code:
            return ""
        code = _SENTINEL_LINE.sub(expand, code + "\n").rstrip("\n")   # blocks in blocks
        return "".join(indent + line + "\n" if line.strip() else "\n"
                       for line in code.split("\n"))

    text = _SENTINEL_LINE.sub(expand, text)
    assert "\x00BLOCK" not in text, "a spliced block was not on a line of its own"
    return single_pass_loops(text)


_ONE_PASS = re.compile(r"^([ \t]*)for (\w+) in range\(1\):[ \t]*$")


def single_pass_loops(text: str) -> str:
    """`for v in range(1):` + body -> `v = 0` + the body dedented, unless the body breaks
    or continues (which would then mean the enclosing loop)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _ONE_PASS.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group(1)
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or
                                    len(lines[end]) - len(lines[end].lstrip()) > len(indent)):
            end += 1
        while end > i + 1 and not lines[end - 1].strip():   # trailing blank lines stay out
            end -= 1
        body = lines[i + 1:end]
        if any(line.strip() in ("break", "continue") for line in body):
            out.append(lines[i])
            i += 1
            continue
        step = len(body[0]) - len(body[0].lstrip()) - len(indent)
        out.append(f"{indent}{match.group(2)} = 0")
        out.extend(line[step:] if line.strip() else line for line in body)
        i = end
    return "\n".join(out)
