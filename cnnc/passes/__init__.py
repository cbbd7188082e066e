"""The pass manager and the pipeline of IR-to-IR passes (placeholder until fusion lands)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    fuse_description: str = "none"
    decisions: list = field(default_factory=list)


def run_inference(graph, fuse="all"):
    return graph, Report()
