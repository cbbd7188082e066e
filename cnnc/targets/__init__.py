"""Compilation targets: everything that differs between the CPU and CUDA code lives here.

    target = targets.get("cuda")      # a Target; CnncError naming the known ones otherwise

See base.py for what a target decides. Outside this package no code asks which target it
has: it asks the target.
"""

from __future__ import annotations

from ..errors import CnncError, Diagnostic, did_you_mean
from .base import Target
from .cpu import CpuTarget
from .cuda import CudaTarget

CPU = CpuTarget()
CUDA = CudaTarget()
TARGETS: dict[str, Target] = {t.name: t for t in (CPU, CUDA)}


def get(target: str | Target) -> Target:
    if isinstance(target, Target):
        return target
    if target not in TARGETS:
        raise CnncError(Diagnostic(f"unknown target '{target}' ({' or '.join(TARGETS)})",
                                   hint=did_you_mean(str(target), TARGETS)))
    return TARGETS[target]


__all__ = ["CPU", "CUDA", "TARGETS", "Target", "get"]
