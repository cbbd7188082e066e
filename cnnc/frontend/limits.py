"""Size limits: refuse, at check time, models the machine could not hold.

A model whose parameters or per-sample activations would not fit in memory is refused
with the estimate (instead of an out-of-memory crash at run time), and source text that
nests deeper than the parser can follow is refused before parsing. Every limit of what
`cnnc check` accepts is here: what it accepts, compile and train can build.
"""

from __future__ import annotations

import os

from ..errors import Diagnostics, Loc

MAX_NESTING = 200          # brackets and braces, checked before parsing
MAX_ELEMENTS = 2**31 - 1   # per tensor: kernels index with 32-bit integers on CUDA
MAX_INT = 2**31 - 1        # an integer argument (sizes, strides): kernels take it as a literal
MAX_NAME = 64              # characters of a model or layer name (they name files and code)
MAX_DEPTH = 64             # residual blocks inside residual blocks


def memory_bytes() -> int:
    """Physical memory of this machine (or $CNNC_MEMORY_LIMIT bytes if set)."""
    override = os.environ.get("CNNC_MEMORY_LIMIT")
    if override:
        return int(override)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def check_source(text: str, diags: Diagnostics) -> None:
    """Refuse nesting deeper than MAX_NESTING (outside comments and strings)."""
    depth = 0
    line, col = 1, 0
    in_comment = in_string = False
    escape = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
            in_comment = in_string = False
            continue
        if in_comment:
            continue
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if ch == "#":
            in_comment = True
        elif ch == '"':
            in_string = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                diags.error(f"brackets nested deeper than {MAX_NESTING}", Loc(line, col))
                diags.raise_if_any()
        elif ch in ")]}":
            depth = max(0, depth - 1)


def check_model(graph, layers, model_name: str, diags: Diagnostics) -> None:
    """Refuse tensors too large to index and models too large for this machine's memory."""
    budget = memory_bytes()
    by_layer = {layer.name: layer for layer in layers}
    for value in graph.values.values():
        if value.type.numel > MAX_ELEMENTS:
            layer = by_layer.get(value.name.split("/")[0])
            diags.error(f"tensor '{value.name}' of shape {value.type} has "
                        f"{value.type.numel:,} elements, more than cnnc supports "
                        f"({MAX_ELEMENTS:,})", layer.loc if layer else None)
            return
    param_bytes = 4 * sum(p.size for p in graph.params)
    if param_bytes > budget // 2:
        largest = max(layers, key=lambda layer: layer.param_count)
        diags.error(f"model '{model_name}' needs {human(param_bytes)} for its parameters "
                    f"alone; this machine has {human(budget)} of memory",
                    largest.loc, f"'{largest.name}' holds {largest.param_count:,} parameters")
        return
    act_bytes = sum(v.type.nbytes for v in graph.values.values() if v.type.batched)
    if act_bytes > budget // 4:
        largest = max(layers, key=lambda layer: layer.output.nbytes)
        diags.error(f"model '{model_name}' needs {human(act_bytes)} of activations for a "
                    f"single sample; this machine has {human(budget)} of memory",
                    largest.loc, f"'{largest.name}' outputs {largest.output}")
