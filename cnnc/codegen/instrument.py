"""Timing hooks for the profiled variant of a generated module (`cnnc profile`).

The normal module has none: plan_host emits them only when given an Instrument, and
only the profiled variant (Options.profile, its own cache key) is generated with one.
Each kernel call of a host function becomes a *site*, numbered in the order the module
lists them, and is wrapped as

    # conv2d, max_pooling2d
    _start = _profile_start()
    conv2d_bias_relu_maxpool_fwd(x, ...)
    _profile_stop(0, _start)

The two helpers are the target's (templates/<target>/profile.py.j2: a host clock on the
CPU, CUDA events on the GPU); the module's PROFILE_SITES table says which kernel
function, host function, IR nodes, layers and source lines each site number is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

START = "_start"                  # the host variable holding a site's start mark


@dataclass(frozen=True)
class Site:
    kernel: str                   # the kernel function called
    host: str                     # the host function calling it (forward, train_batch, ...)
    nodes: tuple[str, ...]        # the IR nodes the kernel group computes (explain's)
    layers: tuple[str, ...]       # the layers of the group, in order
    lines: tuple[int, ...]        # their source lines


@dataclass
class Instrument:
    """Numbers the kernel calls of every host function planned with it."""

    sites: list[Site] = field(default_factory=list)

    def wrap(self, host: str, kernel, call_lines: list[str]) -> list[str]:
        """The lines of one kernel call (`call_lines`) with its timing hooks."""
        nodes = kernel.group.nodes
        body = kernel.group.node.body or (kernel.group.node,)
        site = Site(kernel.name, host, tuple(m.name for m in body),
                    tuple(dict.fromkeys(m.layer for m in nodes)),
                    tuple(sorted({m.loc.line for m in body if m.loc is not None})))
        self.sites.append(site)
        index = len(self.sites) - 1
        return [f"{START} = _profile_start()", *call_lines,
                f"_profile_stop({index}, {START})"]

    def table(self) -> str:
        """The entries of the module's PROFILE_SITES tuple, one site after another:
        (kernel, host function, nodes, layers, lines), wrapped to fit a line."""
        out = []
        for index, s in enumerate(self.sites):
            out.append(f"(  # site {index}")
            out.append(f"    {s.kernel!r}, {s.host!r},")
            out += [f"    {line}" for line in _wrapped(s.nodes)]
            out += [f"    {line}" for line in _wrapped(s.layers)]
            out += [f"    {line}" for line in _wrapped(s.lines)]
            out.append("),")
        return "\n".join(out)


def _wrapped(items: tuple, width: int = 80) -> list[str]:
    """`items` as a tuple literal followed by a comma: one line, or one line per ~width."""
    text = repr(tuple(items)) + ","
    if len(text) <= width:
        return [text]
    rows, row = [], ""
    for item in map(repr, items):
        if row and len(row) + len(item) + 2 > width:
            rows.append(row.rstrip())
            row = ""
        row += f"{item}, "
    rows.append(row.rstrip())
    return ["("] + [f"    {r}" for r in rows] + ["),"]
